"""Activation: the kernel's verdict on each write decides what happens next.

A SysRoot subclass makes chosen IRQs' smp_affinity writes fail with a chosen
errno, as the kernel does (EIO for managed IRQs, EINVAL without online CPU,
ENOSPC when the target CPU has no vector left).
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

from pyirqbalance.engine.balancer import Balancer
from pyirqbalance.engine.model import BalanceLevel, BalancerSettings
from pyirqbalance.kernel.procirq import WriteStatus
from tests.oracle import mkfake
from tests.oracle.kernfs import KernfsSysRoot

MACHINE = Path(__file__).resolve().parents[1] / "fixtures" / "irqbalance-1.9.2" / "a_desktop4.json"
# a_desktop4: NIC queues 127-131, SATA 126, GPU 132 go to single CPUs on the first pass
NIC_QUEUE, OTHER_NIC_QUEUE = 128, 130


class FaultyRoot(KernfsSysRoot):
    __slots__ = ("attempts", "faults")

    def __init__(self, base, faults: dict[int, int]):
        super().__init__(base)
        self.faults = faults
        self.attempts: list[int] = []

    def write(self, path: str, data: str) -> int:
        irq = int(Path(path).parent.name)
        self.attempts.append(irq)
        if irq in self.faults:
            return self.faults[irq]
        return super().write(path, data)


def _balancer(tmp_path, faults):
    mkfake.build_tree(mkfake.Machine(json.loads(MACHINE.read_text())), str(tmp_path / "t"), force=True)
    root = FaultyRoot(tmp_path / "t", faults)
    b = Balancer(root, BalancerSettings())
    b.start()
    return b, root


def _status(report, irq):
    return next(w.status for w in report.writes if w.irq == irq)


def test_eio_makes_the_irq_unmanaged_and_others_still_written(tmp_path):
    b, root = _balancer(tmp_path, {NIC_QUEUE: errno.EIO})
    report = b.run_pass()
    assert _status(report, NIC_QUEUE) is WriteStatus.UNMANAGED
    assert _status(report, OTHER_NIC_QUEUE) is WriteStatus.OK
    info = b.irq_info(NIC_QUEUE)
    assert info.level is BalanceLevel.NONE and not info.moved
    decision = next(d for d in b.decisions() if d.irq == NIC_QUEUE)
    assert "EIO" in decision.reason and decision.target_mask is None
    root.attempts.clear()
    b.run_pass()
    assert NIC_QUEUE not in root.attempts  # never tried again until a rescan


def test_einval_is_retried_next_pass(tmp_path):
    b, root = _balancer(tmp_path, {NIC_QUEUE: errno.EINVAL})
    report = b.run_pass()
    assert _status(report, NIC_QUEUE) is WriteStatus.TRANSIENT
    assert b.irq_info(NIC_QUEUE).moved
    root.attempts.clear()
    b.run_pass()
    assert NIC_QUEUE in root.attempts


def test_enospc_marks_cpu_full_and_replaces_the_irq(tmp_path):
    b, root = _balancer(tmp_path, {NIC_QUEUE: errno.ENOSPC})
    report = b.run_pass()
    assert _status(report, NIC_QUEUE) is WriteStatus.NO_VECTORS
    full_cpu = next(c for c in b.topo.cpus if c.slots_left == 0)
    info = b.irq_info(NIC_QUEUE)
    assert info.assigned is None and info in b.rebalance
    del root.faults[NIC_QUEUE]
    b.run_pass()
    assert b.irq_info(NIC_QUEUE).assigned is not full_cpu


def test_dry_run_writes_nothing(tmp_path):
    mkfake.build_tree(mkfake.Machine(json.loads(MACHINE.read_text())), str(tmp_path / "t"), force=True)
    root = FaultyRoot(tmp_path / "t", {})
    b = Balancer(root, BalancerSettings(), write=False)
    b.start()
    b.run_pass()
    assert root.attempts == []
    targets = {d.irq: d.target_mask for d in b.decisions()}
    assert targets[NIC_QUEUE] is not None
