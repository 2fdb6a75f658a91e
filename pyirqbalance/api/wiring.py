"""What the daemon adds for the ``history:``, ``api:`` and ``metrics:`` sections.

:func:`build_extras` turns the validated configuration into services (started
and stopped with the daemon) and per-pass listeners, plus the
:class:`OverrideRegistry` whose IRQs the balancer must treat as banned.
A pin or a release touches only that IRQ: the balancer bans it (or takes it
back to place it at the next pass) without rebuilding anything.

Turning the API on turns on the history store and the metrics too, unless
the configuration sets ``history.enabled`` / ``metrics.enabled`` to false:
windows are what the seed servers existed for. Under ``--sysroot`` the
default history path lies inside the tree, as the daemon's other state does.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from ..history.recorder import HistoryRecorder
from ..history.records import HistoryConfig
from ..kernel.procirq import write_smp_affinity
from ..kernel.sysroot import SysRoot
from ..service.config import Config, HistorySection, is_loopback
from ..supervise import StatusBoard
from .health import StatusCollector
from .metrics import Metrics
from .overrides import OverrideRegistry
from .server import ApiConfig, ApiContext, ApiService, LiveState, load_token

__all__ = ["DaemonExtras", "build_extras"]


@dataclass
class DaemonExtras:
    services: list[Any] = field(default_factory=list)
    listeners: list[Any] = field(default_factory=list)
    overrides: OverrideRegistry | None = None


class _PinnedIrqs:
    """Service: keeps the balancer's bans in step with the pins, one IRQ at a time.

    At start it writes the pinned masks again (after a restart) and bans those IRQs.
    """

    #: What the daemon calls it in a log line.
    label = "the API's pinned IRQs"

    def __init__(self, registry: OverrideRegistry, balancer: Any, root: SysRoot,
                 log: logging.Logger) -> None:
        self.registry, self.balancer, self.root, self.log = registry, balancer, root, log
        self.pinned: set[int] = set()

    def on_change(self, registry: OverrideRegistry) -> None:
        now = set(registry.irqs())
        for irq in sorted(now - self.pinned):
            self.balancer.pin_irq(irq)
        for irq in sorted(self.pinned - now):
            self.balancer.unpin_irq(irq)
        self.pinned = now

    def start(self) -> None:
        for irq, mask in self.registry.items().items():
            result = write_smp_affinity(self.root, irq, mask)
            if result.errno:
                self.log.warning("API override of IRQ %d not restored: %s", irq, result.reason)
        self.on_change(self.registry)

    def stop(self) -> None:
        """Overrides stay in the store for the next start."""


def _wanted(flag: bool | None, api_on: bool) -> bool:
    """An ``enabled`` key left unset follows the API."""
    return api_on if flag is None else flag


def history_path(section: HistorySection, root: SysRoot) -> str:
    """The configured path; the default one inside the tree under ``--sysroot``."""
    if root.base in ("", "/") or section.path != HistorySection().path:
        return section.path
    return os.path.join(root.base, section.path.lstrip("/"))


def build_extras(config: Config, root: SysRoot, balancer: Any,
                 log: logging.Logger, board: StatusBoard | None = None) -> DaemonExtras:
    """Services and listeners for the configured history, API and metrics.

    Raises :class:`~pyirqbalance.api.server.ApiConfigError` for an unusable
    token file, and ValueError for history values out of range. The threads
    started are added to ``board`` (health and metrics show it).
    """
    board = board if board is not None else StatusBoard()
    extras = DaemonExtras()
    # History, API and metrics all read each pass's /proc/interrupts text.
    balancer.keep_text = True
    history = None
    recorder = None
    api_on = config.api.enabled
    if _wanted(config.history.enabled, api_on):
        h = config.history
        path = history_path(h, root)
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        except OSError:
            pass  # the recorder reports the store it cannot open
        history = HistoryConfig(path, h.retention_days, h.resolution_s)
        recorder = HistoryRecorder(root, history, log)
        extras.services.append(recorder)
        extras.listeners.append(recorder.on_pass)
        board.threads.append(recorder.health)
    metrics = None
    if _wanted(config.metrics.enabled, api_on):
        metrics = Metrics(balancer, per_irq_limit=config.metrics.per_irq_limit,
                          hz=balancer.settings.hz)
        metrics.registry.register(StatusCollector(
            board, history_enabled=None if recorder is None else lambda: recorder.error is None))
    if config.api.enabled:
        a = config.api
        registry = OverrideRegistry(history.path if history else None, log=log)
        pins = _PinnedIrqs(registry, balancer, root, log)
        registry.on_change = pins.on_change
        extras.overrides = registry
        ctx = ApiContext(
            root=root, live=LiveState(root), balancer=balancer, overrides=registry,
            history=history,
            history_error=(lambda: recorder.error) if recorder is not None else (lambda: None),
            token=load_token(a.token_file) if a.token_file else None, metrics=metrics, log=log,
            local_root_writes=a.local_root_writes,
            daemon_status=board.to_json,
        )
        listen = (a.listen,) + ((f"unix:{a.unix_socket}",) if a.unix_socket else ())
        service = ApiService(ctx, ApiConfig(listen=listen,
                                            per_irq_metrics=config.metrics.per_irq_limit))
        board.threads.extend(service.health)
        remote = not is_loopback(a.listen.rpartition(":")[0])  # refused unless allowed
        if remote:
            log.warning("API reads are open to the network on %s (api.allow_remote_reads)",
                        a.listen)
        board.facts["api_remote_reads"] = lambda: remote
        extras.services += [pins, service]
        extras.listeners.append(service.on_pass)   # feeds the metrics too
    elif metrics is not None:
        log.warning("metrics: enabled, but they are served by the API, which is off")

    return extras

