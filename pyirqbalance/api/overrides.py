"""Affinities pinned by hand through the API: IRQ -> mask, banned from balancing.

The daemon builds one :class:`OverrideRegistry` and hands it to the API
(which sets and releases entries) and to the balancer (which treats the
IRQs in it as banned). ``on_change`` is called after every change so the
daemon can update the balancer's ban list and ask for a rescan. Entries are
kept in the history store when it is usable, so they survive a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..history.records import HistoryError
from ..history.store import HistoryStore

__all__ = ["OverrideRegistry"]


class OverrideRegistry:
    """Thread-safe ``irq -> mask`` map, persisted in the history store at ``path``."""

    def __init__(self, path: str | None = None,
                 on_change: Callable[[OverrideRegistry], None] | None = None,
                 log: logging.Logger | None = None) -> None:
        self.path = path
        self.on_change = on_change
        self.log = log or logging.getLogger("pyirqbalance")
        self._lock = threading.Lock()
        self._masks: dict[int, int] = {}
        if path is not None:
            try:
                with HistoryStore(path) as store:
                    self._masks = store.overrides()
                    bad = store.bad_overrides
                if bad:
                    self.log.warning("API overrides in %s left out (not an IRQ number and a hex "
                                     "mask): %s", path,
                                     ", ".join(f"{str(i)[:16]!r}: {str(m)[:32]!r}"
                                               for i, m in bad[:5]))
            except HistoryError as err:
                self.log.warning("API overrides not loaded: %s", err)

    def irqs(self) -> tuple[int, ...]:
        """The IRQs the balancer must leave alone."""
        with self._lock:
            return tuple(sorted(self._masks))

    def items(self) -> dict[int, int]:
        with self._lock:
            return dict(self._masks)

    def get(self, irq: int) -> int | None:
        with self._lock:
            return self._masks.get(irq)

    def set(self, irq: int, mask: int) -> None:
        with self._lock:
            self._masks[irq] = mask
        self._persist(lambda s: s.set_override(irq, mask))
        self._changed()

    def release(self, irq: int) -> bool:
        """Hand the IRQ back to the balancer; False when it had no override."""
        with self._lock:
            if self._masks.pop(irq, None) is None:
                return False
        self._persist(lambda s: s.delete_override(irq))
        self._changed()
        return True

    def _persist(self, change: Callable[[HistoryStore], None]) -> None:
        if self.path is None:
            return
        try:
            with HistoryStore(self.path) as store:
                change(store)
        except HistoryError as err:
            self.log.warning("API override not persisted (kept until restart): %s", err)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)
