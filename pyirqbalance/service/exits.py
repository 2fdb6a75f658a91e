"""Exit statuses of ``pyirqbalance``, shared by the command line and the daemon.

irqbalance exits 0 and 1 (irqbalance.c ``main``: 1 for a bad option or a failed start);
2 and 3 are pyirqbalance's own, so a unit's ``RestartPreventExitStatus=`` or a script can
tell a bad configuration from a run that failed.
"""

from __future__ import annotations

from ..errors import PyirqbalanceError

__all__ = ["EXIT_CONFIG", "EXIT_OK", "EXIT_RUNTIME", "EXIT_USAGE", "UsageError"]

#: Exit statuses: irqbalance uses 0 and 1; 2 and 3 are pyirqbalance's.
EXIT_OK, EXIT_USAGE, EXIT_CONFIG, EXIT_RUNTIME = 0, 1, 2, 3


class UsageError(PyirqbalanceError):
    """A bad command line (exit status 1, like irqbalance)."""
