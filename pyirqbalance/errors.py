"""The exceptions pyirqbalance raises on purpose, under one base class.

Every error meant for a user (a bad file, a kernel file in an unexpected
shape, a daemon that cannot start) derives from :class:`PyirqbalanceError`,
so the command-line boundary can turn any of them into one line and an exit
status; anything else is a bug and is logged as one.
"""

from __future__ import annotations


class PyirqbalanceError(Exception):
    """Base of every error pyirqbalance reports to its user."""


class StartError(PyirqbalanceError):
    """The daemon cannot start (exit status 3); one line."""
