"""The control-socket protocol, pure half: parsing and reply formats.

Expected values come from irqbalance.c sock_handle and from the real irqbalance 1.9.2's replies
(tests/fixtures/uisocket, made by tools/capture_ui_replies.py): the
``settings`` script it was sent is replayed through :func:`parse_command`
and every ``setup`` reply must come out byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyirqbalance.api.uisocket import (
    BanCpus,
    BanIrqs,
    Ignored,
    SetInterval,
    Setup,
    Stats,
    format_setup,
    format_stats,
    parse_command,
)
from pyirqbalance.engine.classify import IrqInfo, IrqType
from pyirqbalance.engine.model import BalanceLevel, IrqClass
from pyirqbalance.engine.topology import ObjType, TopoObj
from pyirqbalance.kernel.cpumask import irqbalance_parse_cpulist

FIXTURES = Path(__file__).parent.parent / "fixtures"
CAPTURE = FIXTURES / "uisocket" / "irqbalance-1.9.2-a_desktop4" / "capture.json"


def _capture() -> dict:
    return json.loads(CAPTURE.read_text())


# ----------------------------------------------------------------------
# parse_command
# ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"stats", Stats()),
        (b"statsXYZ", Stats()),  # prefix matching
        (b"stats\0junk", Stats()),
        (b"setup", Setup()),
        (b"setup please", Setup()),
        (b"sta\0ts", Ignored("unknown command")),  # the buffer is a C string
        (b"stat", Ignored("unknown command")),
        (b"", Ignored("unknown command")),
        (b"\xff" * 100, Ignored("unknown command")),
        (b"settings", Ignored("unknown command")),
        (b"settings sleep", Ignored("unknown setting")),  # "sleep " needs its space
        (b"settings nap 5", Ignored("unknown setting")),
        (b"settings sleep 5\x007", SetInterval(5)),
        (b"settings sleep\t5", Ignored("unknown setting")),
        (b"settings sleep \t\n 12", SetInterval(12)),
        (b"settings sleep 1", SetInterval(1)),
        (b"settings sleep x", Ignored("sleep interval 0 is not >= 1")),
        (b"settings sleep -1", Ignored("sleep interval -1 is not >= 1")),
        (b"settings ban irqs  5 7 NONE", BanIrqs((5, 7))),  # irqbalance-ui's message
        (b"settings ban irqs NONE", BanIrqs(())),
        (b"settings ban irqs 5", BanIrqs((5,))),
        (b"settings ban irqs", Ignored("unknown setting")),
        (b"settings cpus 1,3,NULL", BanCpus("1,3,NULL")),  # irqbalance-ui's message
        (b"settings cpus NULL", BanCpus(None)),
        (b"settings cpus NULLx", BanCpus(None)),
        (b"settings cpus   2-3 5", BanCpus("2-3")),  # strtok: leading spaces skipped, first token
        (b"settings cpus 0\t1", BanCpus("0\t1")),  # only ' ' separates tokens
        (b"settings cpus ", BanCpus(None)),  # 1.9.5: no token = forget (1.9.2 crashes)
        (b"settings cpus", Ignored("unknown setting")),
        (b"settings cpusX 1", Ignored("unknown setting")),
        (b"settings cpus \xe9", BanCpus("\xe9")),
    ],
)
def test_parse_command(data: bytes, expected: object) -> None:
    assert parse_command(data) == expected


def test_parse_command_first_irq_is_banned_unconditionally() -> None:
    # irqbalance.c sock_handle: " NONE" (irqbalance-ui's unban-all) bans IRQ 0; "5,6" bans only 5
    assert parse_command(b"settings ban irqs  NONE") == BanIrqs((0,))
    assert parse_command(b"settings ban irqs 5,6") == BanIrqs((5,))
    assert parse_command(b"settings ban irqs 0 5") == BanIrqs((0, 5))
    assert parse_command(b"settings ban irqs 130 0 131") == BanIrqs((130,))


def test_parse_command_int_wrap() -> None:
    assert parse_command(b"settings sleep 4294967298") == SetInterval(2)
    assert parse_command(b"settings sleep -4294967295") == SetInterval(1)
    assert isinstance(parse_command(b"settings sleep 2147483648"), Ignored)
    # strtoul overflow -> ULONG_MAX -> int -1
    assert isinstance(parse_command(b"settings sleep 99999999999999999999999"), Ignored)
    assert parse_command(b"settings ban irqs -1 2147483648") == BanIrqs((-1, -(2**31)))


class _Daemon:
    """The state a ``setup`` reply shows, changed the way irqbalance changes it."""

    def __init__(self, interval: int, banned: tuple[int, ...]) -> None:
        self.interval, self.banned = interval, banned

    def apply(self, command: object) -> None:
        if isinstance(command, SetInterval):
            self.interval = command.seconds
        elif isinstance(command, BanIrqs):
            self.banned = command.irqs


def test_replayed_settings_script_matches_real_irqbalance_setup_replies() -> None:
    cap = _capture()
    assert cap["argv"] == ["irqbalance", "--foreground", "--debug", "--interval=5", "--banirq=9"]
    daemon = _Daemon(5, (9,))
    replayed = 0
    for step in cap["steps"]:
        if "send" not in step or "uid" in step:
            continue
        daemon.apply(parse_command(step["send"].encode()))
        # the CPU mask changes only at the next rebuild: 0 until then
        reply = format_setup(daemon.interval, daemon.banned, 0).decode()
        assert reply == step["setup"], step["send"]
        assert step["reply"] == ""  # settings never reply
        replayed += 1
    assert replayed == 20


def test_cpus_token_is_the_banned_cpulist_of_the_next_rebuild() -> None:
    cap = _capture()
    sent = [s["send"] for s in cap["steps"] if s.get("send", "").startswith("settings cpus")]
    last = parse_command(sent[-1].encode())
    assert last == BanCpus("1,3,NULL")
    after = cap["steps"][-1]
    assert after["rescan"] is True
    # irqbalance parsed "1,3,NULL" as CPUs 1 and 3 at the rescan
    banned = irqbalance_parse_cpulist(last.cpulist)
    assert after["setup"] == format_setup(2, (130,), banned).decode()
    assert after["setup"].endswith("BANNED 0000000a")


# ----------------------------------------------------------------------
# format_setup / format_stats
# ----------------------------------------------------------------------


def test_format_setup_spec_example() -> None:
    assert format_setup(10, (5,), 0) == b"SLEEP 10 IRQ 5 LOAD 0 DIFF 0 CLASS 0 BANNED 00000000"


def test_format_setup_no_irqs_wide_mask() -> None:
    assert format_setup(3, (), 0xA | 1 << 32) == b"SLEEP 3 BANNED 00000001,0000000a"
    assert format_setup(1, [-1, 0], 0) == (
        b"SLEEP 1 IRQ -1 LOAD 0 DIFF 0 CLASS 0 IRQ 0 LOAD 0 DIFF 0 CLASS 0 BANNED 00000000"
    )


def _obj(kind: ObjType, number: int, load: int, *children: TopoObj) -> TopoObj:
    obj = TopoObj(kind, number, 0)
    obj.load = load
    obj.children = list(children)
    return obj


def _irq(obj: TopoObj, irq: int, cls: IrqClass, load: int, count: int, last: int) -> None:
    info = IrqInfo(irq, cls, IrqType.MSIX, BalanceLevel.CORE)
    info.load, info.count, info.last_count = load, count, last
    obj.interrupts.append(info)


def test_format_stats_spec_example() -> None:
    cpu0 = _obj(ObjType.CPU, 0, 3000)
    cpu2 = _obj(ObjType.CPU, 2, 0)
    _irq(cpu0, 24, IrqClass.ETHERNET, 2999, 110, 100)
    cache = _obj(ObjType.CACHE, 0, 3000, cpu0, cpu2)
    package = _obj(ObjType.PACKAGE, 0, 3000, cache)
    node0 = _obj(ObjType.NODE, 0, 3000, package)
    no_node = _obj(ObjType.NODE, -1, 0)
    assert format_stats([no_node, node0]) == (
        b"TYPE 3 NUMBER -1 LOAD 0 SAVE_MODE 0 TYPE 3 NUMBER 0 LOAD 3000 SAVE_MODE 0 "
        b"TYPE 2 NUMBER 0 LOAD 3000 SAVE_MODE 0 TYPE 1 NUMBER 0 LOAD 3000 SAVE_MODE 0 "
        b"TYPE 0 NUMBER 0 LOAD 3000 SAVE_MODE 0 IRQ 24 LOAD 2999 DIFF 10 CLASS 4 "
        b"TYPE 0 NUMBER 2 LOAD 0 SAVE_MODE 0 "
    )


def test_format_stats_irqs_on_every_level_powersave_and_uint64() -> None:
    cpu = _obj(ObjType.CPU, 5, 7)
    cpu.powersave = True
    # a CPU's children are never walked (irqbalance stops at OBJ_TYPE_CPU)
    cpu.children = [_obj(ObjType.CPU, 99, 0)]
    package = _obj(ObjType.PACKAGE, 1, 9, cpu)
    _irq(package, 3, IrqClass.OTHER, 1, 0, 0)
    _irq(package, 4, IrqClass.LEGACY, 2, 5, 8)  # counter went down: uint64 wrap
    node = _obj(ObjType.NODE, 0, 9, package)
    _irq(node, 7, IrqClass.STORAGE, 0, 0, 0)
    assert format_stats([node]) == (
        b"TYPE 3 NUMBER 0 LOAD 9 SAVE_MODE 0 IRQ 7 LOAD 0 DIFF 0 CLASS 2 "
        b"TYPE 2 NUMBER 1 LOAD 9 SAVE_MODE 0 IRQ 3 LOAD 1 DIFF 0 CLASS 0 "
        b"IRQ 4 LOAD 2 DIFF 18446744073709551613 CLASS 1 "
        b"TYPE 0 NUMBER 5 LOAD 7 SAVE_MODE 1 "
    )


def test_format_stats_empty_tree() -> None:
    assert format_stats([]) == b""
