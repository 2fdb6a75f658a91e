"""Activation: the kernel's verdict on each write decides what happens next.

A SysRoot subclass makes chosen IRQs' smp_affinity writes fail with a chosen
errno, as the kernel does (EIO for managed IRQs, EINVAL without online CPU,
ENOSPC when the target CPU has no vector left).
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

from pyirqbalance.engine.activate import ERRNO_POLICY, errno_status
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
    machine = mkfake.Machine(json.loads(MACHINE.read_text()))
    mkfake.build_tree(machine, str(tmp_path / "t"), force=True)
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
    machine = mkfake.Machine(json.loads(MACHINE.read_text()))
    mkfake.build_tree(machine, str(tmp_path / "t"), force=True)
    root = FaultyRoot(tmp_path / "t", {})
    b = Balancer(root, BalancerSettings(), write=False)
    b.start()
    b.run_pass()
    assert root.attempts == []
    targets = {d.irq: d.target_mask for d in b.decisions()}
    assert targets[NIC_QUEUE] is not None


#: irqbalance 1.9.2 activate.c and the kernel's irq/proc.c, case by case: what a
#: refused smp_affinity write means for the IRQ.
_ERRNO_EXPECTED = [
    (0, WriteStatus.OK),
    (errno.EIO, WriteStatus.UNMANAGED),     # managed IRQ: irqbalance gives up on it
    (errno.EPERM, WriteStatus.UNMANAGED),   # per-CPU / managed
    (errno.ENOENT, WriteStatus.UNMANAGED),  # the IRQ went away
    (errno.EACCES, WriteStatus.UNMANAGED),  # read-only file
    (errno.EROFS, WriteStatus.UNMANAGED),
    (errno.EOVERFLOW, WriteStatus.UNMANAGED),
    (errno.EINVAL, WriteStatus.TRANSIENT),  # no online CPU in the mask: hotplug race
    (errno.EAGAIN, WriteStatus.TRANSIENT),
    (errno.EBUSY, WriteStatus.TRANSIENT),
    (errno.ERANGE, WriteStatus.TRANSIENT),
    (errno.ENOMEM, WriteStatus.TRANSIENT),
    (errno.ENOSPC, WriteStatus.NO_VECTORS),  # target CPU out of vectors
]


def test_errno_policy_case_by_case():
    for code, status in _ERRNO_EXPECTED:
        assert errno_status(code) is status, errno.errorcode.get(code, code)
    assert ERRNO_POLICY[errno.EIO] is WriteStatus.UNMANAGED  # named, not left to the default
