"""The IRQ database and the counts each pass takes into it (irqbalance procinterrupts.c).

:class:`IrqDb` holds the IRQs a build found -- the balanced ones in
insertion order, the banned ones apart -- with their database entries and
last activations, and takes the per-IRQ totals of a /proc/interrupts scan
into them: a column count that is not the number of online CPUs or a
counter going backwards asks for a rescan, an IRQ no longer listed leaves
the database. An IRQ the database does not know is handed to a hotplug
callback (the balancer classifies it like a build would).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from ..kernel.procinterrupts import IrqCount
from .activate import Activation
from .classify import DbEntry, IrqInfo
from .topology import TopoObj

__all__ = ["Hotplug", "IrqDb"]

#: Adds an IRQ the database does not know; None when it cannot (then: rescan).
Hotplug = Callable[[IrqCount], "IrqInfo | None"]


class IrqDb:
    """Balanced and banned IRQs, their entries, activations and count steps."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.irqs: list[IrqInfo] = []  # balanced IRQs, in insertion order
        self.by_irq: dict[int, IrqInfo] = {}
        self.banned: dict[int, IrqInfo] = {}  # banned IRQs (bare records)
        self.entries: dict[int, DbEntry] = {}
        self.activations: dict[int, Activation] = {}
        #: IRQs whose count moved at the last parse (their last_count lags).
        self.stepped: list[IrqInfo] = []
        #: Just built: every row must be looked at once.
        self.fresh = True
        #: (IRQ, CPU columns, CPUs online) of the last row whose columns were not
        #: the online CPUs (reset by the balancer before each parse).
        self.mismatch: tuple[int, int, int] | None = None

    def clear(self) -> None:
        """Empty, before a build fills it again (activations are kept)."""
        self.irqs, self.by_irq, self.banned, self.entries = [], {}, {}, {}
        self.stepped, self.fresh = [], True

    def known(self) -> set[int]:
        """Every IRQ number in the database (a set: C-speed lookups in the scanner)."""
        return self.by_irq.keys() | self.banned.keys()

    def find(self, irq: int) -> IrqInfo | None:
        return self.by_irq.get(irq) or self.banned.get(irq)

    def add(self, entry: DbEntry, info: IrqInfo, node: TopoObj | None) -> None:
        """Record ``info`` (made from ``entry``) on ``node``; banned ones apart."""
        self.entries[entry.irq] = entry
        info.node = node
        if entry.banned:
            self.banned[entry.irq] = info
            return
        self.irqs.append(info)
        self.by_irq[entry.irq] = info
        self.log.debug("Adding IRQ %d to database", entry.irq)

    def ban(self, irq: int, rebalance: list[IrqInfo]) -> None:
        """Take a balanced IRQ out of the tree (its counts go on), touching no other IRQ."""
        info = self.by_irq.pop(irq, None)
        if info is None:
            return
        self.irqs.remove(info)
        if info in rebalance:
            rebalance.remove(info)
        if info.assigned is not None:
            info.assigned.interrupts.remove(info)
            info.assigned = None
        self.activations.pop(irq, None)
        self.banned[irq] = info

    def unban(self, irq: int, readd: Callable[[DbEntry], IrqInfo]) -> IrqInfo | None:
        """Back among the balanced IRQs through ``readd`` (None: it has no balanced entry).

        It keeps its counts, so its first load is not everything since boot.
        """
        old = self.banned.get(irq)
        entry = self.entries.get(irq)
        if old is None or entry is None or entry.banned:
            return None
        del self.banned[irq]
        info = readd(entry)
        info.count, info.last_count, info.existing = old.count, old.last_count, old.existing
        info.seq = old.seq
        return info

    # ------------------------------------------------------------------
    # taking a scan's counts
    # ------------------------------------------------------------------

    def take_rows(
        self,
        rows: Iterable[IrqCount],
        online: int,
        hotplug: Hotplug,
        rebalance: list[IrqInfo],
        *,
        rescan_pending: bool = False,
    ) -> bool:
        """Every row: counts, hotplugged IRQs, vanished IRQs. True: rescan needed.

        Vanished IRQs are dropped only when no rescan is pending (a rebuild
        starts the database again anyway).
        """
        stepped: list[IrqInfo] = []
        for row in rows:
            info = self.find(row.irq) or hotplug(row)
            if info is None:
                self.stepped = stepped
                return True
            info.existing = True
            if not self._count(info, row, online):
                self.stepped = stepped
                return True
            if info.last_count != info.count:
                stepped.append(info)
        self.stepped = stepped
        if not rescan_pending:
            self._drop_vanished(rebalance)
            self.fresh = False
        return False

    def take_changed(self, changed: Sequence[IrqCount], online: int) -> bool | None:
        """:meth:`take_rows` when the scanner saw the same IRQs, in the same order.

        Only the ``changed`` rows differ from the last pass; every other row
        has the count it had, so its last count catches up (once: after that
        both are equal). No IRQ appeared or vanished. Returns None (nothing
        done) if an IRQ is not in the database after all, else whether a
        rescan is needed.
        """
        infos = [self.find(row.irq) for row in changed]
        known = [info for info in infos if info is not None]
        if len(known) != len(infos):
            return None
        for info in self.stepped:
            info.last_count = info.count
        self.stepped = known
        return not all(self._count(info, row, online) for info, row in zip(known, changed))

    def _count(self, info: IrqInfo, row: IrqCount, online: int) -> bool:
        """Take a row's total for an IRQ; False: a rescan is needed."""
        if row.ncols != online:
            self.mismatch = (row.irq, row.ncols, online)
            self.log.debug(
                "IRQ %d has %d CPU columns, %d CPUs online: rescanning", row.irq, row.ncols, online
            )
            return False
        if row.total < info.count:
            self.log.debug("IRQ %d count went backwards: rescanning", row.irq)
            return False
        info.last_count = info.count
        info.count = row.total
        return True

    def _drop_vanished(self, rebalance: list[IrqInfo]) -> None:
        gone = [i for i in self.irqs if not i.existing]
        gone_banned = [n for n, i in self.banned.items() if not i.existing]
        for info in self.irqs:
            info.existing = False
        for info in self.banned.values():
            info.existing = False
        for info in gone:
            self.log.debug("IRQ %d is removed from interrupts_db.", info.irq)
            self.irqs.remove(info)
            del self.by_irq[info.irq]
            if info in rebalance:
                rebalance.remove(info)
            if info.assigned is not None:
                info.assigned.interrupts.remove(info)
            self.activations.pop(info.irq, None)
        for irq in gone_banned:
            self.log.debug("IRQ %d is removed from banned_irqs.", irq)
            del self.banned[irq]
