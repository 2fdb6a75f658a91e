"""/proc/irq/N/* and /proc/irq/default_smp_affinity (kernel/irq/proc.c).

Reading affinity masks, and the one write pyirqbalance makes to the kernel:
``smp_affinity``. A write never raises: it returns the kernel's errno, which
the balancer sorts into what it does next (``engine.activate.ERRNO_POLICY``).
"""

from __future__ import annotations

import enum
import errno
import os
import re
from functools import lru_cache
from typing import NamedTuple

from .cpumask import MaskError, format_mask, irqbalance_parse_mask, parse_cpulist, parse_mask
from .sysfs import parse_int
from .sysroot import SysRoot

__all__ = [
    "IrqAffinity",
    "Spurious",
    "WriteResult",
    "WriteStatus",
    "affinity_writable",
    "list_irq_dirs",
    "parse_spurious",
    "read_action_names",
    "read_default_smp_affinity",
    "read_irq_affinity",
    "read_irq_node",
    "read_smp_affinity",
    "write_smp_affinity",
]


class Spurious(NamedTuple):
    """/proc/irq/N/spurious: how often the IRQ fired with no handler claiming it."""

    count: int  # type: ignore[assignment]  # the field shadows tuple.count on purpose
    unhandled: int
    last_unhandled_ms: int


def parse_spurious(text: str) -> Spurious | None:
    """``count N / unhandled N / last_unhandled N ms``; None if not that shape."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[1].isascii() and fields[1].isdigit():
            values[fields[0]] = int(fields[1])
    try:
        return Spurious(values["count"], values["unhandled"], values["last_unhandled"])
    except KeyError:
        return None


class IrqAffinity(NamedTuple):
    """What /proc/irq/N says about one IRQ (None: file missing or unreadable)."""

    irq: int
    smp_affinity: int | None
    smp_affinity_list: int | None
    effective_affinity: int | None
    effective_affinity_list: int | None
    affinity_hint: int | None
    node: int | None
    spurious: Spurious | None
    #: smp_affinity exists with a write permission bit (0644 in kernel/irq/proc.c;
    #: a copied tree may differ). Says nothing about what the kernel accepts.
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
    if text is None or not _INT.fullmatch(text.strip()):
        return None
    return int(text)


_INT = re.compile(r"-?[0-9]{1,19}")


def read_irq_affinity(root: SysRoot, irq: int) -> IrqAffinity:
    """Everything /proc/irq/N shows (strict parsers: a malformed file reads as None)."""
    d = str(irq)
    read = lambda name: root.try_read_text(root.proc("irq", d, name))  # noqa: E731
    # Newer kernels (2024 change) create smp_affinity 0444 for IRQs userspace may not move.
    writable = root.has_write_bit(root.proc("irq", d, "smp_affinity"))
    return IrqAffinity(
        irq=irq,
        smp_affinity=_mask(read("smp_affinity")),
        smp_affinity_list=_cpulist(read("smp_affinity_list")),
        effective_affinity=_mask(read("effective_affinity")),
        effective_affinity_list=_cpulist(read("effective_affinity_list")),
        affinity_hint=_mask(read("affinity_hint")),
        node=_int(read("node")),
        spurious=None if (text := read("spurious")) is None else parse_spurious(text),
        writable=writable,
    )


def affinity_writable(root: SysRoot, irq: int) -> bool:
    """Whether /proc/irq/N/smp_affinity has a write bit: the kernel creates it 0444 for an
    IRQ userspace may not move (kernel-managed, per-CPU), and refuses the write (EIO)."""
    return root.has_write_bit(root.irq_file(irq, "smp_affinity"))


def read_smp_affinity(root: SysRoot, irq: int) -> int | None:
    """The mask as irqbalance reads it before a write (first line, its parser)."""
    line = root.read_first_line(root.irq_file(irq, "smp_affinity"))
    return None if line is None else _parsed_mask(line)


@lru_cache(maxsize=1024)
def _parsed_mask(line: str) -> int:
    """:func:`irqbalance_parse_mask`, remembered: many IRQs share a mask, and an
    IRQ kept "moved" (irqbalance 1.9.2) has its unchanged file re-read every pass."""
    return irqbalance_parse_mask(line)


def read_irq_node(root: SysRoot, irq: int) -> int | None:
    """/proc/irq/N/node as irqbalance's ``get_int`` reads it (so "-1" is -1).

    None when the file is missing, empty or has no number (the same rule as
    the sysfs ``numa_node`` reader).
    """
    line = root.read_first_line(root.irq_file(irq, "node"))
    return None if line is None else parse_int(line)


def read_default_smp_affinity(root: SysRoot) -> int | None:
    """/proc/irq/default_smp_affinity (strict parse; None if missing or malformed)."""
    return _mask(root.try_read_text(root.proc("irq", "default_smp_affinity")))


def read_action_names(root: SysRoot, irq: int) -> list[str]:
    """The names of IRQ ``irq``'s handlers: its ``/proc/irq/N/<name>/`` directories
    (kernel/irq/proc.c ``register_handler_proc``), sorted."""
    return sorted(root.scandir_dirs(root.proc("irq", str(irq))) or [])


def list_irq_dirs(root: SysRoot) -> list[int]:
    """IRQ numbers with a /proc/irq/N directory, in readdir order (never sorted)."""
    return [int(n) for n in root.listdir(root.proc("irq")) or [] if n.isascii() and n.isdigit()]


class WriteStatus(enum.Enum):
    """What the balancer does after a write (see ``engine.activate.ERRNO_POLICY``)."""

    OK = "ok"
    #: Retry at the same place next pass.
    TRANSIENT = "transient"
    #: The target CPU has no free interrupt vector: place the IRQ elsewhere.
    NO_VECTORS = "no_vectors"
    #: The kernel will never take it: stop managing the IRQ until the next rescan.
    UNMANAGED = "unmanaged"


_REASONS = {
    errno.EIO: "kernel-managed IRQ, affinity cannot be changed",
    errno.EPERM: "kernel-managed or per-CPU IRQ, affinity cannot be changed",
    errno.EINVAL: "mask has no online CPU",
    errno.ENOSPC: "no free vector on target CPU",
    errno.ENOENT: "IRQ vanished",
    errno.ENOTDIR: "IRQ vanished",
    errno.EOVERFLOW: "mask names CPUs beyond nr_cpu_ids",
    errno.EACCES: "smp_affinity is read-only",
    errno.EROFS: "smp_affinity is read-only",
    errno.EISDIR: "smp_affinity is not a file",
    errno.EBUSY: "an affinity change is still pending",
    errno.EAGAIN: "kernel busy, try again",
    errno.ERANGE: "a CPU of the mask went away",
    errno.ENOMEM: "kernel out of memory",
}


class WriteResult(NamedTuple):
    """The outcome of one smp_affinity write: the text written and the kernel's errno."""

    irq: int
    text: str
    errno: int
    #: OK for a write the kernel took; a refusal is None until the balancer
    #: sorts it (``engine.activate.ERRNO_POLICY``).
    status: WriteStatus | None

    @property
    def reason(self) -> str:
        """``"EIO: kernel-managed IRQ, affinity cannot be changed"``, or "written"."""
        if self.errno == 0:
            return "written"
        name = errno.errorcode.get(self.errno, str(self.errno))
        return f"{name}: {_REASONS.get(self.errno, os.strerror(self.errno))}"


def write_smp_affinity(root: SysRoot, irq: int, mask: int) -> WriteResult:
    """Write ``mask`` as irqbalance does (:func:`format_mask`, no newline).

    Kernel refusals come back as the result (their errno, status None), never
    as an exception; only a negative ``mask`` (a caller bug) raises MaskError.
    """
    text = format_mask(mask)
    err = root.write(root.irq_file(irq, "smp_affinity"), text)
    return WriteResult(irq, text, err, WriteStatus.OK if err == 0 else None)
