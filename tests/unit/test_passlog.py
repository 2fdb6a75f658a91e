"""The pass report in the log (service/passlog.py): one line per changed affinity, one summary.

Expected values come from the fake machines' files, read by the test itself: which
smp_affinity files a pass changed and from what to what, which CPUs the machine isolates
(e_isolated_nohz.json: isolated 2-3, nohz_full 12-15, so banned 2-3,12-15), and the irq +
softirq jiffies of /proc/stat (USER_HZ 100: one jiffy is 10 ms).
"""

from __future__ import annotations

import errno
import json
import logging
import re
from pathlib import Path

from pyirqbalance.engine.balancer import Balancer
from pyirqbalance.engine.model import BalancerSettings, PassReport
from pyirqbalance.kernel.sysroot import SysRoot
from pyirqbalance.service.passlog import FIRST_MOVES, PassLog
from tests.oracle import mkfake
from tests.unit.test_activate import FaultyRoot

MACHINES = Path(__file__).resolve().parents[1] / "machines"
NIC_QUEUE = 128   # a_desktop4's enp3s0-TxRx-0: placed on one CPU by the first pass
LOG = "pyirqbalance.test.passlog"


def cpulist(text: str) -> str:
    """A kernel mask file's CPUs as a list ("0-3", "2", "0,2")."""
    mask = int(text.strip().replace(",", ""), 16)
    cpus = [c for c in range(mask.bit_length()) if mask >> c & 1]
    runs: list[list[int]] = []
    for c in cpus:
        if runs and runs[-1][1] == c - 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def masks(root: SysRoot) -> dict[int, str]:
    base = Path(root.proc("irq"))
    return {int(p.parent.name): cpulist(p.read_text()) for p in base.glob("*/smp_affinity")}


def tree(tmp_path: Path, name: str, faults: dict[int, int] | None = None) -> FaultyRoot:
    machine = mkfake.Machine(json.loads((MACHINES / f"{name}.json").read_text()))
    mkfake.build_tree(machine, str(tmp_path / name), force=True)
    return FaultyRoot(tmp_path / name, faults or {})


def records(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOG and r.levelno == level]


def moves(lines: list[str]) -> dict[int, tuple[str, str]]:
    """{irq: (before, after)} of the move lines."""
    out = {}
    for line in lines:
        m = re.match(r"IRQ (\d+)( \(.*?\))?: CPUs (\S+) -> (\S+) \(", line)
        if m:
            out[int(m.group(1))] = (m.group(3), m.group(4))
    return out


def test_each_change_logged_first_few_at_info_rest_at_debug_and_a_summary(tmp_path, caplog):
    root = tree(tmp_path, "a_desktop4", {NIC_QUEUE: errno.EIO})
    log = logging.getLogger(LOG)
    caplog.set_level(logging.DEBUG, logger=LOG)
    b = Balancer(root, BalancerSettings(), log=logging.getLogger(LOG + ".engine"))
    b.start()
    before = masks(root)
    report = b.run_pass()
    after = masks(root)
    changed = {irq: (before[irq], after[irq]) for irq in before if before[irq] != after[irq]}
    assert len(changed) > FIRST_MOVES               # enough to see the rate limit

    PassLog(b, log)(report)
    info, debug = records(caplog, logging.INFO), records(caplog, logging.DEBUG)
    assert len(moves(info)) == FIRST_MOVES
    assert {**moves(info), **moves(debug)} == changed     # every change, from -> to, once
    assert not set(moves(info)) & set(moves(debug))
    hidden = len(changed) - FIRST_MOVES
    assert info[-1] == (f"pass 1: moved {len(changed)} IRQs, 1 refused by the kernel "
                        f"({hidden} moves logged at debug level only)")
    assert all("first placement" in line for line in info[:-1])
    nic = next(line for line in info + debug if line.startswith("IRQ 131 "))
    # a_desktop4's IRQ 131 is the igc NIC queue enp3s0-TxRx-3: a network class, one CPU
    assert nic.startswith("IRQ 131 (enp3s0-TxRx-3): CPUs 0-3 -> ")
    assert "(ethernet, core level" in nic


def test_moves_off_isolated_cpus_say_so(tmp_path, caplog):
    root = tree(tmp_path, "e_isolated_nohz")
    log = logging.getLogger(LOG)
    caplog.set_level(logging.DEBUG, logger=LOG)
    b = Balancer(root, BalancerSettings(), log=logging.getLogger(LOG + ".engine"))
    b.start()
    before = masks(root)
    report = b.run_pass()
    PassLog(b, log, first_moves=1000)(report)
    lines = records(caplog, logging.INFO)[:-1]
    banned = {2, 3, 12, 13, 14, 15}
    assert lines
    for line in lines:
        irq = int(line.split()[1])
        cpus = set()
        for part in before[irq].split(","):
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
        assert ("off banned CPUs" in line) == bool(cpus & banned), line


def stat_jiffies(root: SysRoot) -> dict[int, int]:
    """irq + softirq jiffies per CPU in /proc/stat."""
    out = {}
    for line in Path(root.proc("stat")).read_text().splitlines():
        fields = line.split()
        if fields and fields[0].startswith("cpu") and fields[0] != "cpu":
            out[int(fields[0][3:])] = int(fields[6]) + int(fields[7])
    return out


def test_summary_names_the_busiest_cpu_and_its_share_of_the_time(tmp_path, caplog,
                                                                counter_simulator):
    root = tree(tmp_path, "a_desktop4")
    machine = mkfake.Machine(json.loads((MACHINES / "a_desktop4.json").read_text()))
    sim = counter_simulator(root, machine)
    log = logging.getLogger(LOG)
    caplog.set_level(logging.DEBUG, logger=LOG)
    b = Balancer(root, BalancerSettings(), log=logging.getLogger(LOG + ".engine"))
    b.start()
    now = [100.0]
    passlog = PassLog(b, log, clock=lambda: now[0])
    first = stat_jiffies(root)
    passlog(b.run_pass())
    sim.advance(10.0)
    second = stat_jiffies(root)
    now[0] += 10.0
    caplog.clear()
    passlog(b.run_pass())
    delta = {cpu: second[cpu] - first[cpu] for cpu in first}
    busiest = max(delta, key=lambda c: delta[c])
    ms = delta[busiest] * 10.0
    summary = [m for m in records(caplog, logging.INFO) + records(caplog, logging.DEBUG)
               if m.startswith("pass 2:")]
    assert len(summary) == 1
    assert summary[0].endswith(f"busiest CPU {busiest}: {ms:.1f} ms of interrupts in 10.0 s "
                               f"({ms / 10_000:.1%})")


def test_a_pass_that_changed_nothing_is_summarised_at_debug_level_only(tmp_path, caplog):
    root = tree(tmp_path, "a_desktop4")
    log = logging.getLogger(LOG)
    caplog.set_level(logging.DEBUG, logger=LOG)
    b = Balancer(root, BalancerSettings(), log=logging.getLogger(LOG + ".engine"))
    b.start()
    PassLog(b, log)(PassReport(cycle=3, rescanned=False))
    assert records(caplog, logging.INFO) == []
    assert records(caplog, logging.DEBUG) == ["pass 1: moved 0 IRQs"]
    PassLog(b, log, oneshot=True)(PassReport(cycle=0, rescanned=True))   # --oneshot: always
    assert records(caplog, logging.INFO) == ["pass 1: moved 0 IRQs"]
