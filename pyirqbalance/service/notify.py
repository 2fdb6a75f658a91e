"""systemd integration: ``sd_notify`` and the journal, with or without systemd-python.

``sd_notify(3)`` is one datagram of ``KEY=value`` lines to
``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace), sent
directly: systemd-python would add nothing but a C extension. For the
journal, systemd-python's ``JournalHandler`` (the optional ``[systemd]``
extra) is used when installed; otherwise pure Python speaks:

* the journal's native protocol (``systemd-journald.service(8)``): one
  datagram of fields to ``/run/systemd/journal/socket``, a sealed memfd
  passed over it when the entry is too big for a datagram;
* ``<N>`` syslog-priority prefixes on stderr when stderr *is* the journal
  stream (``$JOURNAL_STREAM`` names stderr's device and inode).

Nothing here raises on a missing socket: outside systemd every call is a
cheap no-op returning False.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

# socket (and the rest of the journal's protocol) is imported where it is used:
# a oneshot outside systemd sends nothing, and start-up time is most of its CPU.
if TYPE_CHECKING:
    import socket

__all__ = [
    "JOURNAL_SOCKET",
    "NativeJournalHandler",
    "Notifier",
    "PriorityPrefixFormatter",
    "journal_handler",
    "journal_stream_is_stderr",
    "syslog_priority",
    "watchdog_interval",
]

JOURNAL_SOCKET = "/run/systemd/journal/socket"


def _systemd_journal():
    """systemd-python's ``journal`` module, or None (looked for only when the journal is used)."""
    try:  # systemd-python; PyPI's unrelated "systemd" package has no JournalHandler
        journal = importlib.import_module("systemd.journal")
    except ImportError:
        return None
    return journal if hasattr(journal, "JournalHandler") else None


def syslog_priority(levelno: int) -> int:
    """logging level -> syslog priority (``LOG_DEBUG`` 7 ... ``LOG_CRIT`` 2)."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


# --------------------------------------------------------------------------
# sd_notify
# --------------------------------------------------------------------------


class Notifier:
    """``sd_notify`` to ``$NOTIFY_SOCKET``; a no-op (returning False) when unset."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        if address and address.startswith("@"):
            address = "\0" + address[1:]
        self.address = address
        self._socket: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``READY=1``, ``STATUS=...`` etc. as one datagram; False if not sent.

        Never blocks: the socket is non-blocking, so when the receiver's queue
        is full (``net.unix.max_dgram_qlen`` unread datagrams, 10 by default)
        the datagram is dropped (EAGAIN) instead of stopping the main loop --
        a blocked send would also keep SIGTERM from ending the daemon.
        """
        if self.address is None:
            return False
        message = "\n".join(assignments).encode("utf-8", "replace")
        try:
            if self._socket is None:
                import socket

                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
            self._socket.sendto(message, self.address)
        except OSError:  # EAGAIN (queue full), ECONNREFUSED, ENOENT: dropped
            return False
        return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``WatchdogSec``), or None.

    ``sd_watchdog_enabled(3)``: ``$WATCHDOG_USEC`` set and ``$WATCHDOG_PID``
    unset or this process.
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid is not None and pid != str(os.getpid()):
        return None
    return int(usec) / 2e6


# --------------------------------------------------------------------------
# journal
# --------------------------------------------------------------------------


def journal_stream_is_stderr(environ: Mapping[str, str] | None = None) -> bool:
    """True when systemd connected stderr to the journal (``$JOURNAL_STREAM`` = dev:ino)."""
    env = os.environ if environ is None else environ
    value = env.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


class PriorityPrefixFormatter(logging.Formatter):
    """``<N>message`` on every line: journald reads the priority from the prefix."""

    def format(self, record: logging.LogRecord) -> str:
        prio = syslog_priority(record.levelno)
        return "\n".join(f"<{prio}>{line}" for line in super().format(record).split("\n"))


def _field(name: str, value: str) -> bytes:
    data = value.encode("utf-8", "replace")
    if b"\n" in data:  # binary-safe form: name, newline, 64-bit LE length, data
        return name.encode() + b"\n" + len(data).to_bytes(8, "little") + data + b"\n"
    return name.encode() + b"=" + data + b"\n"


class NativeJournalHandler(logging.Handler):
    """A logging handler speaking journald's native protocol (no systemd-python)."""

    def __init__(self, identifier: str = "pyirqbalance", path: str = JOURNAL_SOCKET) -> None:
        import socket

        super().__init__()
        self.identifier = identifier
        self.path = path
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def entry(self, record: logging.LogRecord) -> bytes:
        """The datagram for ``record``."""
        fields = [
            _field("MESSAGE", self.format(record)),
            _field("PRIORITY", str(syslog_priority(record.levelno))),
            _field("SYSLOG_IDENTIFIER", self.identifier),
            _field("LOGGER", record.name),
            _field("CODE_FILE", record.pathname or ""),
            _field("CODE_LINE", str(record.lineno)),
            _field("CODE_FUNC", record.funcName or ""),
        ]
        return b"".join(fields)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = self.entry(record)
            try:
                self._socket.sendto(data, self.path)
            except OSError as err:
                if err.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                    raise
                self._send_memfd(data)
        except Exception:  # noqa: BLE001 - logging must never take the daemon down
            self.handleError(record)

    def _send_memfd(self, data: bytes) -> None:
        """Too big for a datagram: hand journald a sealed memfd instead."""
        import array
        import fcntl
        import socket

        fd = os.memfd_create("journal-entry", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.write(fd, data)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
                        | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
            fds = array.array("i", [fd])
            self._socket.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)], 0, self.path)
        finally:
            os.close(fd)

    def close(self) -> None:
        self._socket.close()
        super().close()


def journal_handler(identifier: str = "pyirqbalance",
                    environ: Mapping[str, str] | None = None) -> logging.Handler:
    """The best way to reach the journal from here.

    stderr already is the journal stream -> ``<N>``-prefixed stderr (keeps the
    order with anything else on stderr); else systemd-python's JournalHandler,
    else the native protocol when journald's socket exists, else ``<N>`` on
    stderr (what systemd makes of it if it is listening after all).
    """
    if not journal_stream_is_stderr(environ) and os.path.exists(JOURNAL_SOCKET):
        sd_journal = _systemd_journal()
        if sd_journal is not None:
            return sd_journal.JournalHandler(SYSLOG_IDENTIFIER=identifier)
        return NativeJournalHandler(identifier)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PriorityPrefixFormatter("%(message)s"))
    return handler
