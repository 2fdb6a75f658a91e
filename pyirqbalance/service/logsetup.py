"""Where the daemon's messages go, as irqbalance decides it.

* ``--journal`` (or started by systemd, ``$INVOCATION_ID``): the journal,
  by the best available route (:func:`notify.journal_handler`);
* in the foreground (``--foreground``, ``--debug``, ``--oneshot``, dry
  runs): stderr, plain lines;
* detached (daemon mode): syslog (``/dev/log``, facility daemon), else the
  journal's socket, else nowhere (stderr is /dev/null by then).

``--debug`` lowers the level to DEBUG: irqbalance's console messages and
the tree dump after each pass. Otherwise INFO and above are logged.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

__all__ = ["LOGGER_NAME", "SYSLOG_SOCKET", "setup_logging"]

LOGGER_NAME = "pyirqbalance"
SYSLOG_SOCKET = "/dev/log"


def _syslog_or_journal(environ: Mapping[str, str] | None) -> logging.Handler:
    # deferred: only a detached daemon logs there (logging.handlers pulls socket,
    # pickle, ...: start-up cost)
    import logging.handlers

    from .notify import JOURNAL_SOCKET, journal_handler

    if os.path.exists(SYSLOG_SOCKET):
        try:
            handler = logging.handlers.SysLogHandler(
                SYSLOG_SOCKET, facility=logging.handlers.SysLogHandler.LOG_DAEMON
            )
            handler.setFormatter(logging.Formatter("pyirqbalance[%(process)d]: %(message)s"))
            return handler
        except OSError:
            pass
    if os.path.exists(JOURNAL_SOCKET):
        return journal_handler(environ=environ)
    return logging.NullHandler()


def setup_logging(
    *, debug: bool, journal: bool, detached: bool, environ: Mapping[str, str] | None = None
) -> logging.Logger:
    """Configure and return the ``pyirqbalance`` logger (replacing earlier handlers)."""
    log = logging.getLogger(LOGGER_NAME)
    for old in list(log.handlers):
        log.removeHandler(old)
        old.close()
    if journal:
        from .notify import journal_handler  # deferred: only the journal needs it

        handler = journal_handler(environ=environ)
    elif detached:
        handler = _syslog_or_journal(environ)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if debug else logging.INFO)
    log.propagate = False
    return log
