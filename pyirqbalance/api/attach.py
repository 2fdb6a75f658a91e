"""What the configuration adds around a daemon's loop: history, API, metrics and
irqbalance's control socket (a :class:`~pyirqbalance.service.daemon.Attach`, handed to the
daemon by the composition root :mod:`pyirqbalance.app`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..service.exits import EXIT_CONFIG
from .control import ControlAdapter
from .uisocket import ControlSocket

if TYPE_CHECKING:
    from ..kernel.sysroot import SysRoot
    from ..service.config import Options
    from ..service.daemon import Daemon

__all__ = ["attach"]


def attach(opts: Options, root: SysRoot, daemon: Daemon, log: logging.Logger) -> int | None:
    """Add the configured services and pass listeners to ``daemon``; returns
    :data:`~pyirqbalance.service.exits.EXIT_CONFIG` when the configuration cannot be served
    (logged), else None."""
    cfg = opts.config
    board = daemon.board
    if cfg.history.enabled or cfg.api.enabled or cfg.metrics.enabled:
        # Imported only when asked for: the HTTP stack is not free to load.
        from .server import ApiConfigError
        from .wiring import build_extras

        try:
            extras = build_extras(cfg, root, daemon.balancer, log, board)
        except (ApiConfigError, ValueError) as err:
            log.error("%s", err)
            return EXIT_CONFIG
        daemon.services += extras.services
        daemon.listeners += extras.listeners
    if cfg.socket.enabled:
        control = ControlAdapter(daemon)
        daemon.services.append(control)
        daemon.listeners.append(control.refresh)
        sock = ControlSocket(control, run_dir=opts.run_dir, log=log)
        board.threads.append(sock.health)
        daemon.services.append(sock)
    return None
