"""/proc/irq/N/* and /proc/irq/default_smp_affinity (kernel/irq/proc.c).

Reading affinity masks, and the one write pyirqbalance makes to the kernel:
``smp_affinity``. A write never raises: its errno is sorted by
:data:`ERRNO_POLICY` (irqbalance activate.c) into what the balancer does next.
"""

from __future__ import annotations

import enum
import errno
import os
from dataclasses import dataclass

from .cpumask import MaskError, format_mask, irqbalance_parse_mask, parse_cpulist, parse_mask
from .sysroot import SysRoot

__all__ = [
    "IrqAffinity",
    "read_irq_affinity",
    "read_smp_affinity",
    "read_irq_node",
    "read_default_smp_affinity",
    "list_irq_dirs",
    "WriteStatus",
    "WriteResult",
    "ERRNO_POLICY",
    "write_smp_affinity",
]


@dataclass(frozen=True, slots=True)
class IrqAffinity:
    """What /proc/irq/N says about one IRQ (None: file missing or unreadable)."""

    irq: int
    smp_affinity: int | None
    smp_affinity_list: int | None
    effective_affinity: int | None
    effective_affinity_list: int | None
    affinity_hint: int | None
    node: int | None
    spurious: str | None
    #: smp_affinity may be written (newer kernels make it 0444 for unmovable IRQs).
    writable: bool


def _mask(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_mask(text)
    except MaskError:
        return None


def _cpulist(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_cpulist(text)
    except MaskError:
        return None


def _int(text: str | None) -> int | None:
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def read_irq_affinity(root: SysRoot, irq: int) -> IrqAffinity:
    d = str(irq)
    read = lambda name: root.try_read_text(root.proc("irq", d, name))  # noqa: E731
    path = root.proc("irq", d, "smp_affinity")
    try:
        writable = bool(os.stat(path).st_mode & 0o222)
    except OSError:
        writable = False
    return IrqAffinity(
        irq=irq,
        smp_affinity=_mask(read("smp_affinity")),
        smp_affinity_list=_cpulist(read("smp_affinity_list")),
        effective_affinity=_mask(read("effective_affinity")),
        effective_affinity_list=_cpulist(read("effective_affinity_list")),
        affinity_hint=_mask(read("affinity_hint")),
        node=_int(read("node")),
        spurious=read("spurious"),
        writable=writable,
    )


def read_smp_affinity(root: SysRoot, irq: int) -> int | None:
    """The mask as irqbalance reads it before a write (first line, its parser)."""
    line = root.read_first_line(root.proc("irq", str(irq), "smp_affinity"))
    return None if line is None else irqbalance_parse_mask(line)


def read_irq_node(root: SysRoot, irq: int) -> int | None:
    """/proc/irq/N/node, parsed like irqbalance's strtoul (so "-1" is -1)."""
    line = root.read_first_line(root.proc("irq", str(irq), "node"))
    if line is None:
        return None
    s = line.strip()
    sign = -1 if s.startswith("-") else 1
    digits = s.lstrip("+-")
    k = 0
    while k < len(digits) and digits[k].isdigit():
        k += 1
    return sign * int(digits[:k]) if k else 0


def read_default_smp_affinity(root: SysRoot) -> int | None:
    return _mask(root.try_read_text(root.proc("irq", "default_smp_affinity")))


def list_irq_dirs(root: SysRoot) -> list[int]:
    return [int(n) for n in root.listdir(root.proc("irq")) or [] if n.isdigit()]


class WriteStatus(enum.Enum):
    OK = "ok"
    #: Retry at the same place next pass.
    TRANSIENT = "transient"
    #: The target CPU has no free interrupt vector: place the IRQ elsewhere.
    NO_VECTORS = "no_vectors"
    #: The kernel will never take it: stop managing the IRQ until the next rescan.
    UNMANAGED = "unmanaged"


#: errno of a refused smp_affinity write -> what to do (irqbalance activate.c).
ERRNO_POLICY: dict[int, WriteStatus] = {
    errno.EAGAIN: WriteStatus.TRANSIENT,  # interrupted by a signal
    errno.EBUSY: WriteStatus.TRANSIENT,   # an affinity change is already in progress
    errno.EINVAL: WriteStatus.TRANSIENT,  # the mask has no online CPU (hotplug race)
    errno.ERANGE: WriteStatus.TRANSIENT,  # a CPU in the mask went offline
    errno.ENOMEM: WriteStatus.TRANSIENT,  # the kernel could not allocate a cpumask
    errno.ENOSPC: WriteStatus.NO_VECTORS,  # x86: target CPU's vector space is full
}

_REASONS = {
    errno.EIO: "kernel-managed or per-CPU IRQ, its affinity cannot be changed",
    errno.EPERM: "kernel-managed or per-CPU IRQ, its affinity cannot be changed",
    errno.EINVAL: "the mask has no online CPU",
    errno.ENOSPC: "no free interrupt vector on the target CPU",
    errno.ENOENT: "the IRQ vanished",
    errno.EOVERFLOW: "the mask names CPUs beyond nr_cpu_ids",
    errno.EACCES: "smp_affinity is not writable",
    errno.EROFS: "smp_affinity is read-only (file system mounted read-only?)",
    errno.EBUSY: "an affinity change is already in progress",
}


@dataclass(frozen=True, slots=True)
class WriteResult:
    irq: int
    text: str
    errno: int
    status: WriteStatus

    @property
    def reason(self) -> str:
        if self.errno == 0:
            return "written"
        name = errno.errorcode.get(self.errno, str(self.errno))
        return f"{name}: {_REASONS.get(self.errno, os.strerror(self.errno))}"


def write_smp_affinity(root: SysRoot, irq: int, mask: int) -> WriteResult:
    """Write ``mask`` in irqbalance's format; never raises."""
    text = format_mask(mask)
    err = root.write(root.proc("irq", str(irq), "smp_affinity"), text)
    if err == 0:
        return WriteResult(irq, text, 0, WriteStatus.OK)
    return WriteResult(irq, text, err, ERRNO_POLICY.get(err, WriteStatus.UNMANAGED))
