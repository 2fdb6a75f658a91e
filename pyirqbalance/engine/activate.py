"""Writing the decisions to the kernel (irqbalance activate.c).

For every IRQ that moved, in database order: mask = its object's CPUs that
are online; read ``smp_affinity``; leave it alone when it already says that
(or cannot be read); otherwise write the mask. The verdict of the kernel is
sorted by :data:`ERRNO_POLICY`: transient errors are retried next pass,
ENOSPC marks the target CPU as out of vectors and re-queues the IRQ,
anything else (EIO/EPERM for kernel-managed IRQs, ENOENT for a vanished one,
a read-only file) stops managing the IRQ until the next rebuild. One IRQ's
failure never stops the others.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import NamedTuple

from ..kernel import procirq
from ..kernel.procirq import WriteResult, WriteStatus
from ..kernel.sysroot import SysRoot
from .classify import IrqInfo
from .irqlist import force_rebalance
from .model import BalanceLevel, HintPolicy
from .topology import ObjType

__all__ = ["ERRNO_POLICY", "Activation", "activate_mappings", "errno_status", "hinted_target"]

#: errno of a refused smp_affinity write -> what to do (irqbalance activate.c).
#: Anything not listed makes the IRQ unmanaged until the next rebuild.
ERRNO_POLICY: dict[int, WriteStatus] = {
    errno.EAGAIN: WriteStatus.TRANSIENT,   # interrupted or busy for a moment: try again
    errno.EBUSY: WriteStatus.TRANSIENT,    # an affinity change is still pending (x86 vector move)
    errno.EINVAL: WriteStatus.TRANSIENT,   # the mask has no online CPU (CPU hotplug race)
    errno.ERANGE: WriteStatus.TRANSIENT,   # a CPU of the mask went away meanwhile
    errno.ENOMEM: WriteStatus.TRANSIENT,   # the kernel could not allocate a cpumask
    errno.ENOSPC: WriteStatus.NO_VECTORS,  # x86: no free interrupt vector on the target CPU
    errno.EIO: WriteStatus.UNMANAGED,      # kernel-managed IRQ (irqbalance's one named case)
    errno.EPERM: WriteStatus.UNMANAGED,    # kernel-managed or per-CPU IRQ
}


def errno_status(err: int) -> WriteStatus:
    """What the balancer does after a write that ended with ``err`` (0: written)."""
    if err == 0:
        return WriteStatus.OK
    return ERRNO_POLICY.get(err, WriteStatus.UNMANAGED)


class Activation(NamedTuple):
    """What activation did for one moved IRQ."""

    irq: int
    target: int
    #: Mask read before deciding (None: unreadable).
    current: int | None
    #: None when nothing was written (already in place, unreadable, dry run).
    write: WriteResult | None
    reason: str


def activate_mappings(
    root: SysRoot,
    irqs: list[IrqInfo],
    online: int,
    rebalance: list[IrqInfo],
    *,
    banned: int = 0,
    write: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[Activation]:
    """Apply every pending move; returns one :class:`Activation` per moved IRQ."""
    out: list[Activation] = []
    for info in irqs:
        if not info.moved or info.assigned is None:
            continue
        target = info.assigned.mask & online
        target, problem = hinted_target(info, target, banned)
        if problem is not None:
            # irqbalance 1.0-1.1: warn, write nothing, keep the IRQ pending
            if log is not None:
                log(problem)
            out.append(Activation(info.irq, target, None, None, problem))
            continue
        current = procirq.read_smp_affinity(root, info.irq)
        if current is None:
            # irqbalance 1.9.2 treats an unreadable file as "already right"
            # and keeps the IRQ pending, re-checking it every pass.
            out.append(Activation(info.irq, target, None, None,
                                  "smp_affinity unreadable: left alone"))
            continue
        if current == target:
            out.append(Activation(info.irq, target, current, None, "already in place"))
            continue
        if not write:
            info.moved = False
            out.append(Activation(info.irq, target, current, None, "dry run: would write"))
            continue
        result = procirq.write_smp_affinity(root, info.irq, target)
        result = result._replace(status=errno_status(result.errno))
        out.append(Activation(info.irq, target, current, result, _describe(result)))
        if result.status is WriteStatus.OK:
            info.moved = False
            continue
        if log is not None:
            log(f"Cannot change IRQ {info.irq} affinity: {result.reason}")
        if result.status is WriteStatus.TRANSIENT:
            continue  # stays pending, retried at the same object next pass
        if result.status is WriteStatus.NO_VECTORS and info.assigned.obj_type is ObjType.CPU:
            cpu = info.assigned
            cpu.slots_left = -1 if cpu.slots_left > 0 else cpu.slots_left - 1
            force_rebalance(info, rebalance)  # gives the slot back: net 0 = "full"
            continue
        if result.status is WriteStatus.NO_VECTORS:
            continue  # ENOSPC on a wider object: treated as transient
        info.level = BalanceLevel.NONE
        info.moved = False
        info.unmanaged_reason = result.reason
        if log is not None:
            log(f"IRQ {info.irq} affinity is now unmanaged")
    return out


def hinted_target(info: IrqInfo, target: int, banned: int) -> tuple[int, str | None]:
    """The mask written for an IRQ placed on ``target`` under its ``--hintpolicy``
    (``exact``: the hint; ``subset``: target ∩ hint), and why nothing can be written if so
    (irqbalance 1.0-1.1's ``activate_mapping``). IRQs without a hint, or with policy
    ``ignore``, get ``target``."""
    if not info.hint or info.hintpolicy is HintPolicy.IGNORE:
        return target, None
    if info.hintpolicy is HintPolicy.EXACT:
        if info.hint & banned:
            return info.hint, f"irq {info.irq} affinity_hint and banned cpus confict"
        return info.hint, None
    subset = target & info.hint
    if not subset & ~banned:
        return subset, f"irq {info.irq} affinity_hint subset empty"
    return subset, None


def _describe(result: WriteResult) -> str:
    status = result.status or errno_status(result.errno)
    if status is WriteStatus.OK:
        return "written"
    return {
        WriteStatus.TRANSIENT: "kernel refused for now, retried next pass",
        WriteStatus.NO_VECTORS: "target CPU out of vectors, re-placed",
        WriteStatus.UNMANAGED: "kernel refused for good, IRQ unmanaged until rescan",
    }[status] + f" ({result.reason})"
