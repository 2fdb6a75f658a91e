"""The daemon's side of irqbalance's control socket (what irqbalance-ui asks and sets)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .uisocket import SetupState, format_stats

if TYPE_CHECKING:
    from ..engine.model import PassReport
    from ..service.daemon import Daemon

__all__ = ["ControlAdapter"]


class ControlAdapter:
    """The daemon side of irqbalance's control socket (irqbalance-ui, scripts).

    Called on the socket's thread. ``stats`` is what the last pass left,
    formatted at the first request after it (not by the loop: most passes
    are never asked for), so a client waits for a pass at most, as with
    irqbalance's single loop; changes only set values the loop picks up
    (interval) or ask for a rescan, as irqbalance does.
    """

    #: What the daemon calls it in a log line.
    label = "the control socket"

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.balancer = daemon.balancer
        self._lock = threading.Lock()
        self._stats = b""
        self._stale = True

    def start(self) -> None:
        self.refresh(None)

    def stop(self) -> None:
        pass

    def refresh(self, report: PassReport | None) -> None:
        """Per-pass listener: the stats are out of date."""
        self._stale = True

    def control_stats(self) -> bytes:

        with self._lock:
            if self._stale:
                with self.balancer.lock:
                    # mid-rescan (the pass waits with the lock let go) the tree
                    # has no placements yet: answer with the last pass's stats
                    if not self.balancer.waiting:
                        self._stats = format_stats(self.balancer.nodes)
                        self._stale = False
            return self._stats

    def control_setup(self) -> SetupState:

        b = self.balancer
        return SetupState(self.daemon.interval, tuple(b.settings.banned_irqs), b.banned_cpus)

    def control_set_interval(self, seconds: int) -> None:
        self.daemon.set_interval(seconds)

    def control_ban_irqs(self, irqs: tuple[int, ...]) -> None:
        b = self.balancer
        # IRQs pinned through the REST API stay banned: the balancer adds its pins itself.
        b.update_settings(b.settings._replace(banned_irqs=tuple(irqs)))
        b.force_rescan()

    def control_ban_cpus(self, cpulist: str | None) -> None:
        b = self.balancer
        b.update_settings(b.settings._replace(socket_banned_cpulist=cpulist))
        b.force_rescan()
