"""What the daemon adds for the ``history:``, ``api:`` and ``metrics:`` sections.

:func:`build_extras` turns the validated configuration into services (started
and stopped with the daemon) and per-pass listeners, plus the
:class:`OverrideRegistry` whose IRQs the balancer must treat as banned.
Overrides change the balancer's ``banned_irqs`` (the configured bans plus the
pinned IRQs) and ask for a rescan, as the control socket's ``ban irqs`` does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ..history.recorder import HistoryRecorder
from ..history.store import HistoryConfig
from ..kernel.procirq import write_smp_affinity
from ..kernel.sysroot import SysRoot
from ..service.config import Config
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
    """Service: at start, ban the pinned IRQs and write their masks again (after a restart)."""

    def __init__(self, registry: OverrideRegistry, balancer: Any, root: SysRoot,
                 log: logging.Logger) -> None:
        self.registry, self.balancer, self.root, self.log = registry, balancer, root, log
        self.configured = tuple(balancer.settings.banned_irqs)

    def on_change(self, registry: OverrideRegistry) -> None:
        banned = tuple(sorted(set(self.configured) | set(registry.irqs())))
        self.balancer.update_settings(self.balancer.settings._replace(banned_irqs=banned))
        self.balancer.force_rescan()

    def start(self) -> None:
        for irq, mask in self.registry.items().items():
            result = write_smp_affinity(self.root, irq, mask)
            if result.errno:
                self.log.warning("API override of IRQ %d not restored: %s", irq, result.reason)
        if self.registry.items():
            self.on_change(self.registry)

    def stop(self) -> None:
        """Overrides stay in the store for the next start."""


def build_extras(config: Config, root: SysRoot, balancer: Any,
                 log: logging.Logger) -> DaemonExtras:
    """Services and listeners for the configured history, API and metrics.

    Raises :class:`~pyirqbalance.api.server.ApiConfigError` for an unusable
    token file, and ValueError for history values out of range.
    """
    extras = DaemonExtras()
    # History, API and metrics all read each pass's /proc/interrupts text.
    balancer.keep_text = True
    history = None
    recorder = None
    if config.history.enabled:
        h = config.history
        history = HistoryConfig(h.path, h.retention_days, h.resolution_s)
        recorder = HistoryRecorder(root, history, log)
        extras.services.append(recorder)
        extras.listeners.append(recorder.on_pass)
    metrics = None
    if config.metrics.enabled:
        metrics = Metrics(balancer, per_irq_limit=config.metrics.per_irq_limit,
                          hz=balancer.settings.hz)
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
        )
        listen = (a.listen,) + ((f"unix:{a.unix_socket}",) if a.unix_socket else ())
        service = ApiService(ctx, ApiConfig(listen=listen,
                                            per_irq_metrics=config.metrics.per_irq_limit))
        extras.services += [pins, service]
        extras.listeners.append(service.on_pass)   # feeds the metrics too
    elif metrics is not None:
        log.warning("metrics: enabled, but they are served by the API, which is off")

    return extras

