"""The ``pyirqbalance`` command: the composition root.

The layers below know nothing of each other's upper neighbours: the command line and the
daemon (:mod:`pyirqbalance.service`) balance on their own, and what the configuration adds
around the loop -- history, the HTTP API, metrics, irqbalance's control socket
(:mod:`pyirqbalance.api`) -- is handed to the daemon from here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .service import cli

if TYPE_CHECKING:
    from .kernel.sysroot import SysRoot
    from .service.config import Options
    from .service.daemon import Daemon

__all__ = ["main"]


def _attach(opts: Options, root: SysRoot, daemon: Daemon, log: logging.Logger) -> int | None:
    # Imported by a daemon only: a oneshot or dry run never loads the API (start-up cost).
    from .api.attach import attach

    return attach(opts, root, daemon, log)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``pyirqbalance`` command; returns the exit status."""
    return cli.main(argv, environ, attach=_attach)
