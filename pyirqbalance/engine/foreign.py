"""Foreign writes: ``smp_affinity`` changes pyirqbalance did not make.

Another irqbalance, tuned, a driver reset or a script may move IRQs behind the
balancer's back; two balancers then fight, each undoing the other. Every pass
compares each balanced IRQ's ``smp_affinity`` with what pyirqbalance expects
there: what it found when it last looked (activation reads the file before
deciding) or, after its own write, what the kernel kept -- read back, because
the kernel may keep something else than was written (a mask without online
CPUs becomes the default affinity) and that is not somebody else's doing. A
refused write (EIO/EPERM for a kernel-managed IRQ) changes nothing, so it is
never counted either.

A difference is a foreign write: counted per IRQ, the first one of each IRQ
logged at warning level (IRQ, name, expected -> found), and the new mask is
what is expected from then on (one change, one count). After
``max_changes`` foreign writes to the same IRQ within ``window_s`` seconds
the balancer leaves that IRQ alone (bans it) and says so; a reload or a
restart hands it back.

What is not compared: IRQs the balancer does not manage (banned, pinned
through the API, refused by the kernel), IRQs whose file cannot be read,
and nothing on the pass after a topology rebuild (CPU hotplug changes
masks; expectations are learnt again from the first activation).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import NamedTuple

from ..kernel import procirq
from ..kernel.cpumask import format_mask
from ..kernel.sysroot import SysRoot
from .activate import Activation
from .classify import IrqInfo
from .model import BalanceLevel

__all__ = ["FIRST_WARNINGS", "ForeignIrq", "ForeignSettings", "ForeignWrite", "ForeignWrites"]

#: First foreign writes of IRQs logged at warning level in one pass; the rest of that
#: pass's are at debug level, summed up in one warning (another balancer moving
#: everything at once must not flood the log).
FIRST_WARNINGS = 5


class ForeignSettings(NamedTuple):
    """The ``foreign_writes:`` configuration section, as the balancer uses it."""

    #: Foreign writes to one IRQ within ``window_s`` after which it is left alone (0: never).
    max_changes: int = 3
    window_s: float = 3600.0


class ForeignWrite(NamedTuple):
    """One change of an IRQ's smp_affinity that pyirqbalance did not make."""

    irq: int
    #: Its /proc/interrupts name, or its PCI device (BDF) for a device's IRQ.
    name: str
    expected: int
    found: int
    #: Wall-clock time of the pass that saw it (epoch seconds).
    at: float


class ForeignIrq(NamedTuple):
    """Everything seen of one IRQ's foreign writes (metrics, health)."""

    irq: int
    name: str
    changes: int
    first: ForeignWrite
    last: ForeignWrite
    left_alone: bool

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "changes": self.changes,
            "expected": format_mask(self.last.expected),
            "found": format_mask(self.last.found),
            "first_at": self.first.at,
            "last_at": self.last.at,
            "left_alone": self.left_alone,
        }


class ForeignWrites:
    """Expected masks between passes, and the foreign writes seen.

    ``view`` is an immutable tuple replaced after each pass, so readers on
    other threads (metrics, health) never need a lock.
    """

    def __init__(self, settings: ForeignSettings | None = None, *,
                 log: logging.Logger | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.settings = settings or ForeignSettings()
        self.log = log or logging.getLogger("pyirqbalance")
        self._clock, self._wall = clock, wall
        #: IRQ -> the mask pyirqbalance expects in its smp_affinity.
        self.expected: dict[int, int] = {}
        self._recent: dict[int, deque[float]] = {}
        self._seen: dict[int, ForeignIrq] = {}
        #: IRQs left alone; the balancer bans them.
        self.left_alone: frozenset[int] = frozenset()
        self.view: tuple[ForeignIrq, ...] = ()
        self._firsts = 0  # first foreign writes of IRQs seen by the running check

    @property
    def total(self) -> int:
        return sum(f.changes for f in self.view)

    def forget(self) -> None:
        """A rebuilt topology: learn every expectation again (counts are kept)."""
        self.expected.clear()

    def reset(self) -> None:
        """A reload: hand back the IRQs left alone and start their windows again."""
        self.left_alone = frozenset()
        self._recent.clear()
        self._seen = {irq: f._replace(left_alone=False) for irq, f in self._seen.items()}
        self.view = tuple(self._seen[irq] for irq in sorted(self._seen))

    def disown(self, irq: int) -> None:
        """pyirqbalance itself is about to write ``irq`` outside a pass (an API pin)."""
        self.expected.pop(irq, None)

    def check(self, root: SysRoot, irqs: Iterable[IrqInfo]) -> list[int]:
        """Compare the balanced IRQs' masks with the expected ones.

        Returns the IRQs that have now reached ``max_changes`` and are to be
        left alone (the caller bans them). Expectations of IRQs no longer
        balanced are dropped.
        """
        expected = self.expected
        kept: dict[int, int] = {}
        newly: list[int] = []
        found_any = False
        self._firsts = 0
        for info in irqs:
            want = expected.get(info.irq)
            if want is None or (info.level is BalanceLevel.NONE and info.unmanaged_reason):
                continue
            found = procirq.read_smp_affinity(root, info.irq)
            if not found:
                # unreadable (or no CPU, which the kernel never keeps): nothing to say
                kept[info.irq] = want
                continue
            kept[info.irq] = found
            if found != want:
                found_any = True
                # PCI IRQs have no name of their own: their device (BDF) names them
                name = info.name or info.device or ""
                if self._record(ForeignWrite(info.irq, name, want, found, self._wall())):
                    newly.append(info.irq)
        self.expected = kept
        if self._firsts > FIRST_WARNINGS:
            self.log.warning("%d more IRQs changed by something else for the first time this "
                             "pass (listed at debug level)", self._firsts - FIRST_WARNINGS)
        if found_any:
            self.view = tuple(self._seen[irq] for irq in sorted(self._seen))
        return newly

    def _record(self, change: ForeignWrite) -> bool:
        """Count one foreign write; True when its IRQ is now to be left alone."""
        s = self.settings
        old = self._seen.get(change.irq)
        if old is None:
            self._firsts += 1
            level = logging.WARNING if self._firsts <= FIRST_WARNINGS else logging.DEBUG
            self.log.log(
                level,
                "IRQ %d (%s): smp_affinity changed by something else: expected %s, found %s "
                "(another balancer, tuned, a script?)", change.irq, change.name or "no name",
                format_mask(change.expected), format_mask(change.found))
            entry = ForeignIrq(change.irq, change.name, 1, change, change, False)
        else:
            self.log.debug("IRQ %d (%s): smp_affinity changed by something else again: "
                           "expected %s, found %s", change.irq, change.name or "no name",
                           format_mask(change.expected), format_mask(change.found))
            entry = old._replace(changes=old.changes + 1, last=change)
        now = self._clock()
        recent = self._recent.setdefault(change.irq, deque())
        recent.append(now)
        while recent and now - recent[0] > s.window_s:
            recent.popleft()
        leave = (s.max_changes > 0 and len(recent) >= s.max_changes
                 and change.irq not in self.left_alone)
        if leave:
            entry = entry._replace(left_alone=True)
            self.left_alone = self.left_alone | {change.irq}
            self.log.warning(
                "IRQ %d (%s): smp_affinity changed by something else %d times in %g s; "
                "leaving it alone until a reload or restart (foreign_writes.max_changes)",
                change.irq, change.name or "no name", len(recent), s.window_s)
        self._seen[change.irq] = entry
        return leave

    def learn(self, root: SysRoot, activations: Iterable[Activation]) -> None:
        """What this pass's activation found or left in each IRQ's smp_affinity.

        After a write, accepted or refused, the file is read back: the kernel's
        own version of the mask is what the next pass compares with.
        """
        expected = self.expected
        for act in activations:
            if act.write is not None:
                kept = procirq.read_smp_affinity(root, act.irq)
            else:
                kept = act.current
            if kept is None:
                expected.pop(act.irq, None)
            else:
                expected[act.irq] = kept
