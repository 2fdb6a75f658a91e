"""Records shared by the balancer and everything around it.

The balancer's inputs (settings, per-IRQ policy) and outputs (one report per
pass, one decision per IRQ) are immutable records: the daemon, ``--dry-run``,
the history store, the API and the control socket all read the same values.
They are ``NamedTuple`` classes, not frozen dataclasses: every one is defined
at each start-up, and defining a NamedTuple costs a fifth of a frozen
dataclass (which ``exec``s generated methods), making an instance half (see
docs/architecture.md). Change one with ``record._replace(field=value)``.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

__all__ = [
    "BalanceLevel",
    "BalancerSettings",
    "Decision",
    "HintPolicy",
    "IrqClass",
    "IrqPolicy",
    "PassReport",
    "Snapshot",
]


class IrqClass(enum.IntEnum):
    """irqbalance's IRQ classes (types.h); the value is the sort key."""

    OTHER = 0
    LEGACY = 1
    STORAGE = 2
    VIDEO = 3
    ETHERNET = 4
    GBETH = 5
    TENGBETH = 6
    VIRT_EVENT = 7

    @property
    def label(self) -> str:
        """Name used in irqbalance's debug dump (``classes[]`` in classify.c)."""
        return _CLASS_LABELS[self]


_CLASS_LABELS = {
    IrqClass.OTHER: "other",
    IrqClass.LEGACY: "legacy",
    IrqClass.STORAGE: "storage",
    IrqClass.VIDEO: "video",
    IrqClass.ETHERNET: "ethernet",
    IrqClass.GBETH: "gbit-ethernet",
    IrqClass.TENGBETH: "10gbit-ethernet",
    IrqClass.VIRT_EVENT: "virt-event",
}


class BalanceLevel(enum.IntEnum):
    """How far down the topology tree an IRQ is placed."""

    NONE = 0
    PACKAGE = 1
    CACHE = 2
    CORE = 3

    @classmethod
    def from_name(cls, name: str) -> BalanceLevel:
        return cls[name.strip().upper()]


class HintPolicy(enum.Enum):
    """``--hintpolicy`` of irqbalance 1.0-1.1 (irqbalance.c ``parse_command_line`` of 1.0-1.4)."""

    EXACT = "exact"
    SUBSET = "subset"
    IGNORE = "ignore"


class IrqPolicy(NamedTuple):
    """What a policy script (or banscript) said about one IRQ; None = not said."""

    ban: bool | None = None
    balance_level: BalanceLevel | None = None
    numa_node: int | None = None
    hintpolicy: HintPolicy | None = None


class BalancerSettings(NamedTuple):
    """Everything that changes the balancer's decisions (resolved by the CLI)."""

    deepestcache: int = 2
    #: ``--powerthresh``; None = off (irqbalance's default).
    powerthresh: int | None = None
    migrateval: int = 0
    #: ``--banirq`` plus IRQs banned through the control socket.
    banned_irqs: tuple[int, ...] = ()
    banmod: tuple[str, ...] = ()
    hintpolicy: HintPolicy = HintPolicy.IGNORE
    #: Raw IRQBALANCE_BANNED_CPUS value (None = unset).
    banned_cpus_env: str | None = None
    #: Raw IRQBALANCE_BANNED_CPULIST value (None = unset; "-" = ban none).
    banned_cpulist_env: str | None = None
    #: ``settings cpus`` from the control socket (None = not set).
    socket_banned_cpulist: str | None = None
    #: USER_HZ, the unit of /proc/stat.
    hz: int = 100
    #: Use NUMA nodes from sysfs (irqbalance built with libnuma on a NUMA kernel).
    numa: bool = True
    #: ``--placement``: "irqbalance" (irqbalance 1.9.2's decisions) or "balanced".
    placement: str = "irqbalance"
    #: Balanced placement: a move must lower the busiest CPU's time by more than this share.
    placement_min_gain: float = 0.05
    #: Balanced placement: at most this many moves a pass (IRQs on CPUs they may not use aside).
    placement_max_moves: int = 16


class Decision(NamedTuple):
    """What the balancer did (or would do) with one IRQ in one pass, and why."""

    irq: int
    name: str
    irq_class: str
    level: str
    node: int
    #: Affinity read from the kernel before the pass (None = unreadable/not read).
    current_mask: int | None
    #: Mask written or to be written; None = left untouched.
    target_mask: int | None
    #: The topology object the IRQ is assigned to ("cpu 3", "cache 1", ...), if any.
    assigned: str | None
    reason: str
    load: int = 0
    diff: int = 0


class Snapshot(NamedTuple):
    """The raw kernel text one pass read, shared with history/metrics."""

    taken_at: float
    interrupts: bytes
    stat: str | None


class PassReport(NamedTuple):
    """Outcome of one balancing pass (irqbalance's ``scan()``)."""

    cycle: int
    rescanned: bool
    decisions: tuple[Decision, ...] = ()
    #: Results of the smp_affinity writes attempted this pass (procirq.WriteResult).
    writes: tuple = ()
    snapshot: Snapshot | None = None
    #: Wall time of the pass (a rescan pass includes its one-interval wait).
    duration_s: float = 0.0
    notes: tuple[str, ...] = ()
    #: CPU time the pass took (its thread's; the wait of a rescan costs none).
    cpu_s: float = 0.0

    @property
    def moved(self) -> int:
        return sum(1 for w in self.writes if w.errno == 0)
