"""The exceptions pyirqbalance raises on purpose, under one base class.

Every error meant for a user (a bad file, a kernel file in an unexpected
shape, a daemon that cannot start) derives from :class:`PyirqbalanceError`,
so the command-line boundary can turn any of them into one line and an exit
status; anything else is a bug and is logged as one.

The families::

    PyirqbalanceError
      StartError             the daemon cannot start
      KernelReadError        a kernel file that had to be read could not be (an OSError)
      DataError              text not in the shape expected (a ValueError): file, line
        ParseError           a whole kernel file (/proc/interrupts, /proc/stat)
        MaskError            a CPU mask or CPU list

The service, API and history layers derive their own (UsageError,
ConfigError, ApiError, ControlSocketError, HistoryError, ...) from the base
in their modules.
"""

from __future__ import annotations

__all__ = [
    "DataError",
    "KernelReadError",
    "MaskError",
    "ParseError",
    "PyirqbalanceError",
    "StartError",
]


class PyirqbalanceError(Exception):
    """Base of every error pyirqbalance reports to its user."""


class StartError(PyirqbalanceError):
    """The daemon cannot start (exit status 3); one line."""


class KernelReadError(PyirqbalanceError, OSError):
    """A kernel file that had to be read could not be (``errno``, ``strerror``)."""


class DataError(PyirqbalanceError, ValueError):
    """Text not in the shape expected; names the file and line when known.

    ``DataError("no CPU", path="/proc/stat", lineno=3, line="cpu x\\n")``
    reads ``/proc/stat line 3: no CPU: 'cpu x'``.
    """

    def __init__(self, message: str, *, path: str = "", lineno: int = 0, line: str = "") -> None:
        self.path = path
        self.lineno = lineno
        self.line = line
        where = f"{path} line {lineno}" if path and lineno else path
        text = f"{where}: {message}" if where else message
        if lineno:
            text += f": {line.rstrip()!r}"
        super().__init__(text)


class ParseError(DataError):
    """A kernel file (/proc/interrupts, /proc/stat) that is not in the kernel's shape."""


class MaskError(DataError):
    """Malformed mask or CPU list text."""
