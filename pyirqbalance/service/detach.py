"""Leaving the terminal the way irqbalance does without ``--foreground``."""

from __future__ import annotations

import os
import sys

__all__ = ["daemonize"]


def daemonize() -> None:
    """irqbalance's ``daemon(0, 0)``: fork, new session, cwd /, stdio on /dev/null."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork():
        os._exit(0)  # the parent: no cleanup, the child owns the lock now
    os.setsid()
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)
