"""Rescans: CPU hotplug, IRQs appearing and vanishing, counters going backwards."""

from __future__ import annotations

import json
from pathlib import Path

from pyirqbalance.engine.balancer import Balancer, RescanWait
from pyirqbalance.engine.model import BalancerSettings
from pyirqbalance.kernel.cpumask import cpus_of
from tests.oracle import mkfake
from tests.oracle.kernfs import KernfsSysRoot

MACHINE = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "irqbalance-1.9.2" / "a_desktop4.json")
    .read_text()
)


def _tree(tmp_path: Path, name: str, desc: dict) -> KernfsSysRoot:
    mkfake.build_tree(mkfake.Machine(desc), str(tmp_path / name), force=True)
    return KernfsSysRoot(tmp_path / name)


def _balancer(root):
    b = Balancer(root, BalancerSettings())
    b.start()
    return b


def _waited_pass(b: Balancer):
    """A pass as the daemon runs it: the number of rescan waits, and the report."""
    waits = 0
    step = b.begin_pass()
    while isinstance(step, RescanWait):
        assert b.waiting  # the lock is free, readers see the pass is half done
        waits += 1
        step = b.resume_pass()
    assert not b.waiting
    return waits, step


def test_cpu_going_offline_rebuilds_and_keeps_balancing(tmp_path):
    full = _tree(tmp_path, "full", MACHINE)
    hot = dict(MACHINE, topology=dict(MACHINE["topology"], offline="3"))
    offline = _tree(tmp_path, "offline", hot)
    b = _balancer(full)
    assert not b.run_pass().rescanned
    b.root = offline  # the machine's files now show CPU 3 offline
    waits, report = _waited_pass(b)
    assert report.rescanned
    assert waits == 1  # irqbalance 1.9.2 waits one interval inside the rescan pass
    assert [c.number for c in b.topo.cpus] and 3 not in [c.number for c in b.topo.cpus]
    assert cpus_of(b.online_cpus) == [0, 1, 2]
    for w in report.writes:
        assert 3 not in cpus_of(int(w.text.replace(",", ""), 16))
    assert not b.run_pass().rescanned


def test_vanished_irq_is_dropped_and_new_irq_is_placed(tmp_path):
    root = _tree(tmp_path, "t", MACHINE)
    b = _balancer(root)
    b.run_pass()
    path = Path(root.proc("interrupts"))
    lines = path.read_text().splitlines(keepends=True)
    gone = next(line for line in lines if line.lstrip().startswith("131:"))
    new = gone.replace("131:", "140:", 1)
    path.write_text("".join(new if line is gone else line for line in lines))
    (Path(root.proc("irq")) / "140").mkdir()
    (Path(root.proc("irq")) / "140" / "smp_affinity").write_text("f\n")
    (Path(root.proc("irq")) / "140" / "node").write_text("0\n")
    report = b.run_pass()
    assert not report.rescanned
    assert b.irq_info(131) is None
    info = b.irq_info(140)
    # no PCI device claims it: class other, placed on its package in the same pass
    assert info is not None and info.assigned is b.topo.packages[0]
    assert info.irq_class.label == "other"


def test_counter_going_backwards_triggers_rescan(tmp_path):
    root = _tree(tmp_path, "t", MACHINE)
    b = _balancer(root)
    b.run_pass()
    st = mkfake.SimState(mkfake.Machine(MACHINE))
    m = mkfake.Machine(MACHINE)
    for n in st.counts:
        st.counts[n] = {}
    path = Path(root.proc("interrupts"))
    path.write_text(mkfake.render_interrupts(m, st))  # every counter back to 0
    waits, report = _waited_pass(b)
    assert report.rescanned and waits == 1


def test_sighup_before_first_pass_is_ignored(tmp_path):
    b = _balancer(_tree(tmp_path, "t", MACHINE))
    b.request_rescan()
    assert not b.run_pass().rescanned
    b.request_rescan()
    assert b.run_pass().rescanned


def test_a_stop_during_the_rescan_wait_balances_with_the_rebuilt_tree(tmp_path):
    full = _tree(tmp_path, "full", MACHINE)
    offline = _tree(tmp_path, "offline", dict(MACHINE, topology=dict(MACHINE["topology"],
                                                                       offline="3")))
    b = _balancer(full)
    b.run_pass()
    b.root = offline
    assert isinstance(b.begin_pass(), RescanWait)
    report = b.resume_pass(fresh=False)  # asked to stop while waiting
    assert report.rescanned and report.cycle == 0
    assert cpus_of(b.online_cpus) == [0, 1, 2]
