"""IRQ classification tables and the database plan (classify.c)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pyirqbalance.engine.classify import (
    DEFAULT_LEVEL,
    IrqType,
    classify_line,
    heap_ranks,
    pci_irq_class,
    plan_irq_db,
)
from pyirqbalance.engine.model import BalanceLevel, IrqClass, IrqPolicy

V = {"vendor": 0x8086, "device": 0x1234, "subsystem_vendor": 0x8086, "subsystem_device": 0}


@pytest.mark.parametrize(
    "code, want",
    [
        (0x000000, IrqClass.OTHER),     # unclassified
        (0x010802, IrqClass.STORAGE),   # NVMe
        (0x020000, IrqClass.ETHERNET),
        (0x030000, IrqClass.VIDEO),
        (0x040300, IrqClass.OTHER),     # audio
        (0x060400, IrqClass.LEGACY),    # PCI bridge
        (0x090000, IrqClass.LEGACY),    # input
        (0x0C0330, IrqClass.LEGACY),    # USB xHCI
        (0x0C0400, IrqClass.STORAGE),   # Fibre Channel
        (0x0C0600, IrqClass.STORAGE),   # InfiniBand
        (0x0C0500, IrqClass.LEGACY),    # SMBus
        (0x0C0A00, None),               # serial sub-class 0x0a..0x7f: NODEF
        (0x0C8000, IrqClass.LEGACY),
        (0x0C8100, None),
        (0x0D0000, IrqClass.ETHERNET),  # wireless
        (0x0E0000, IrqClass.STORAGE),   # intelligent I/O
        (0x120000, IrqClass.LEGACY),    # processing accelerator
        (0x130000, IrqClass.LEGACY),
        (0x140000, None),               # first unknown base class
        (0x400000, None),               # co-processor
        (0xFF0000, None),               # unassigned
    ],
)
def test_pci_class_table(code, want):
    assert pci_irq_class(code, **V) is want


def test_unreadable_ids_are_nodef():
    assert pci_irq_class(0x020000, 0x8086, None, 0x8086, 0) is None
    assert pci_irq_class(0xFFFFFFFF, **V) is None


def test_emc_quirks_make_storage():
    assert pci_irq_class(0x060400, 0x10B5, 0x8619, 0x1120, 0x055B) is IrqClass.STORAGE
    assert pci_irq_class(0x060400, 0x10B5, 0x8619, 0x1120, 0x1111) is IrqClass.LEGACY
    assert pci_irq_class(0x0B4000 & 0x0BFFFF, 0x177D, 0x0093, 0x1120, 0x0568) is IrqClass.STORAGE


def test_levels_by_class():
    assert DEFAULT_LEVEL[IrqClass.OTHER] is BalanceLevel.PACKAGE
    assert DEFAULT_LEVEL[IrqClass.LEGACY] is BalanceLevel.CACHE
    assert DEFAULT_LEVEL[IrqClass.ETHERNET] is BalanceLevel.CORE


def test_classify_line_real_rows():
    # from tests/fixtures: an IO-APIC row and a Xen event channel row
    t, c, name = classify_line("  1:          9          0   IO-APIC   1-edge      i8042\n")
    assert (t, c, name) == (IrqType.LEGACY, IrqClass.OTHER, "i8042\n")
    xen = " 60:  0  0  xen-dyn-lateeoi     -event     vif13.0-q1-tx\n"
    # irqbalance 1.9.2 checks "-event" in the LAST token: this real shape stays OTHER
    assert classify_line(xen)[1] is IrqClass.OTHER
    assert classify_line(" 61:  0  xen-dyn  -event\n")[1] is IrqClass.VIRT_EVENT


@dataclass(frozen=True)
class _Row:
    irq: int
    line: bytes


@dataclass(frozen=True)
class _Dev:
    name: str
    msi_irqs: tuple | None
    legacy_irq: int | None = None
    class_code: int | None = 0x020000
    vendor: int | None = 0x8086
    device: int | None = 1
    subsystem_vendor: int | None = 0x8086
    subsystem_device: int | None = 0
    numa_node: int | None = 1
    driver: str | None = "ixgbe"


def _plan(rows, devices, **kw):
    args = {
        "banned_irqs": (), "banmod": (), "policy": None, "irq_node": lambda irq: 0, "numa": True,
        "device_path": lambda n: "/sys" if n is None else f"/sys/bus/pci/devices/{n}",
    }
    args.update(kw)
    return plan_irq_db(rows, devices, **args)


def test_plan_order_first_device_wins_and_bans():
    rows = [_Row(n, f"{n:3d}: 1 2 IO-APIC {n}-edge dev{n}\n".encode()) for n in (1, 30, 31, 32)]
    devs = [
        _Dev("0000:01:00.0", (31, 30)),
        _Dev("0000:02:00.0", None, legacy_irq=30, class_code=0x0C0330, driver="xhci_hcd"),
        _Dev("0000:03:00.0", None, legacy_irq=32, class_code=0xFF0000),
    ]
    plan = _plan(rows, devs, banmod=("dev1",))
    assert [e.irq for e in plan] == [31, 30, 32, 1]          # msi_irqs order, then rows
    assert plan[1].device == "0000:01:00.0"                   # first device claims IRQ 30
    assert plan[0].irq_class is IrqClass.ETHERNET and plan[0].node == 1
    assert plan[2].level is BalanceLevel.NONE                 # unknown class: never touched
    assert plan[3].banned and "banmod" in plan[3].why         # non-PCI name "dev1\n"


def test_policy_overrides_and_runs_for_banned_irqs():
    seen = []

    def policy(path, irq):
        seen.append((path, irq))
        return IrqPolicy(balance_level=BalanceLevel.PACKAGE, numa_node=0) if irq == 31 else None

    rows = [_Row(5, b"  5: 1 2 IO-APIC 5-edge x\n")]
    plan = _plan(rows, [_Dev("0000:01:00.0", (31,))], policy=policy, banned_irqs=(5,))
    # PCI IRQs get the device path, others the sysfs root -- banned ones too
    assert seen == [("/sys/bus/pci/devices/0000:01:00.0", 31), ("/sys", 5)]
    assert plan[0].level is BalanceLevel.PACKAGE and plan[0].node == 0
    assert plan[1].banned


def test_heap_ranks_switch_to_the_hole_at_first_legacy_device():
    rows = []
    devs = [_Dev("a", (40, 41)), _Dev("b", None, legacy_irq=16), _Dev("c", (42,))]
    plan = _plan(rows, devs)
    ranks = heap_ranks(plan)
    assert [e.irq for e in plan] == [40, 41, 16, 42]
    # 40, 41 before the legacy device: top of heap; 16 and 42 from the hole below them
    assert ranks[0] > ranks[2] and ranks[1] > ranks[3] and ranks[3] > ranks[2]


def test_policy_numa_node_that_does_not_exist_is_ignored():
    """classify.c get_irq_user_policy: numa_node accepted only if that node object exists."""
    plan = _plan([], [_Dev("0000:01:00.0", (31,))],
                 policy=lambda path, irq: IrqPolicy(numa_node=7),
                 node_exists=lambda n: n in (-1, 0, 1))
    assert plan[0].node == 1  # the device's own numa_node
