"""What the history store takes and gives: its configuration, errors and records.

Plain immutable values with no SQLite in them, so that the API, the recorder and
``pyirqbalancectl`` can name them without the store's machinery
(:mod:`pyirqbalance.history.store`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import PyirqbalanceError

__all__ = [
    "JIFFIES_IRQ",
    "JIFFIES_SOFTIRQ",
    "Boot",
    "HistoryBusy",
    "HistoryConfig",
    "HistoryError",
    "IrqMeta",
    "IrqTotal",
    "LastReading",
    "Reading",
    "Recorded",
    "SeriesRow",
    "WindowSummary",
    "iso_time",
]

#: Series labels of the per-CPU /proc/stat irq and softirq jiffies.
JIFFIES_IRQ = "jiffies:irq"
JIFFIES_SOFTIRQ = "jiffies:softirq"


@dataclass(frozen=True, slots=True)
class HistoryConfig:
    """The ``history:`` section: where, how long, how fine."""

    path: str = "/var/lib/pyirqbalance/history.sqlite"
    retention_days: float = 30
    #: Shortest spacing of recorded readings (passes in between are summed).
    resolution_s: float = 60

    def __post_init__(self) -> None:
        if not self.retention_days > 0:
            raise ValueError(f"history retention_days must be > 0, got {self.retention_days}")
        if not self.resolution_s > 0:
            raise ValueError(f"history resolution_s must be > 0, got {self.resolution_s}")


class HistoryError(PyirqbalanceError):
    """The store cannot be opened, is not a history store, or is corrupt."""


class HistoryBusy(HistoryError):
    """Another process holds the store's lock longer than this connection waits."""


@dataclass(frozen=True, slots=True)
class SeriesRow:
    """One counter per CPU: an IRQ's /proc/interrupts row or a jiffies column."""

    label: str
    cpus: tuple[int, ...]
    counts: tuple[int, ...]
    #: Counter width: 32 for /proc/interrupts (unsigned int), 64 for jiffies.
    bits: int = 32


@dataclass(frozen=True, slots=True)
class IrqMeta:
    """Who an IRQ is and where it may run, as of one reading."""

    irq: int
    name: str
    chip: str = ""
    hwirq: str = ""
    #: smp_affinity and effective_affinity as CPU lists (None: unreadable).
    affinity: str | None = None
    effective: str | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """The counters of one pass, with the boot they belong to."""

    ts: float
    boot_id: str
    btime: float | None
    rows: tuple[SeriesRow, ...]
    meta: tuple[IrqMeta, ...] = ()


@dataclass(frozen=True, slots=True)
class Recorded:
    sample: int
    baseline: bool
    cells: int
    wraps: int
    resets: int
    #: Counters left out: a value outside the counter's width (not a count the
    #: kernel prints); the counter keeps its last good value, so the next good
    #: reading's delta covers the gap.
    invalid: int = 0


@dataclass(frozen=True, slots=True)
class LastReading:
    """The current boot's last recorded counters: label -> CPU -> value (absent: 0)."""

    boot_id: str
    ts: float
    values: dict[str, dict[int, int]]


@dataclass(frozen=True, slots=True)
class Boot:
    boot_id: str
    btime: float | None
    first_ts: float
    last_ts: float


@dataclass(frozen=True, slots=True)
class IrqTotal:
    irq: int
    name: str
    total: int
    per_cpu: dict[int, int]


@dataclass(frozen=True, slots=True)
class WindowSummary:
    """Interrupts per CPU and per IRQ in ``(start, stop]``, summed per boot."""

    start: float
    stop: float
    #: The span the summed samples actually cover (None: no sample in the window).
    covered_from: float | None
    covered_to: float | None
    samples: int
    boots: tuple[Boot, ...]
    wraps: int
    resets: int
    per_cpu: dict[int, int]
    irqs: tuple[IrqTotal, ...]
    irq_jiffies: dict[int, int]
    softirq_jiffies: dict[int, int]
    notes: tuple[str, ...] = field(default=())

    @property
    def reboots(self) -> int:
        return max(0, len(self.boots) - 1)

    def to_json(self) -> dict[str, Any]:
        return {
            "start": iso_time(self.start),
            "stop": iso_time(self.stop),
            "covered_from": iso_time(self.covered_from),
            "covered_to": iso_time(self.covered_to),
            "samples": self.samples,
            "reboots": self.reboots,
            "boots": [
                {"boot_id": b.boot_id, "btime": iso_time(b.btime),
                 "first_sample": iso_time(b.first_ts), "last_sample": iso_time(b.last_ts)}
                for b in self.boots
            ],
            "wraps": self.wraps,
            "resets": self.resets,
            "total": sum(self.per_cpu.values()),
            "per_cpu": {str(c): n for c, n in sorted(self.per_cpu.items())},
            "irqs": [
                {"irq": t.irq, "name": t.name, "total": t.total,
                 "per_cpu": {str(c): n for c, n in sorted(t.per_cpu.items())}}
                for t in self.irqs
            ],
            "irq_jiffies": {str(c): n for c, n in sorted(self.irq_jiffies.items())},
            "softirq_jiffies": {str(c): n for c, n in sorted(self.softirq_jiffies.items())},
            "notes": list(self.notes),
        }


def iso_time(ts: float | None) -> str | None:
    """UTC ISO-8601 with milliseconds (None stays None)."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"
