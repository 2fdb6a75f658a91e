"""irqbalance's control socket: the protocol irqbalance-ui and scripts speak.

irqbalance 1.9 listens on ``/run/irqbalance/irqbalance<PID>.sock`` (falling
back to the abstract address of 108 NUL bytes), accepts one command per
connection from uid 0 only, and answers ``stats`` and ``setup`` with
space-separated records (irqbalance.c ``sock_handle``). This module reproduces that protocol to
the byte, with one deliberate difference: irqbalance serves the socket inside
its main loop with a blocking ``recvmsg``, so a client that connects and sends
nothing stalls the balancer; :class:`ControlSocket` serves it on its own
thread with non-blocking sockets and a deadline per connection, so no client
can hold up a balancing pass.

The pure half -- :func:`parse_command`, :func:`format_stats`,
:func:`format_setup` -- carries every parsing quirk; the daemon plugs into the
server through the small :class:`ControlTarget` interface.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..errors import PyirqbalanceError
from ..kernel.cnum import c_int, strtoul
from ..kernel.cpumask import format_mask
from ..supervise import ThreadHealth, supervise

if TYPE_CHECKING:
    from ..engine.topology import TopoObj

__all__ = [
    "ABSTRACT_ADDRESS",
    "DEFAULT_RUN_DIR",
    "RECV_SIZE",
    "BanCpus",
    "BanIrqs",
    "Command",
    "ControlSocket",
    "ControlSocketError",
    "ControlTarget",
    "Ignored",
    "SetInterval",
    "Setup",
    "SetupState",
    "Stats",
    "format_setup",
    "format_stats",
    "parse_command",
    "socket_path",
]

#: irqbalance 1.9.5's receive buffer; a read that fills it is "too long".
RECV_SIZE = 16384
#: The fallback address: an abstract name of 108 NUL bytes (full ``sun_path``).
ABSTRACT_ADDRESS = b"\0" * 108
#: Where irqbalance puts its socket (systemd ``RuntimeDirectory=irqbalance``).
DEFAULT_RUN_DIR = "/run/irqbalance"
#: Seconds a client may take from connecting to reading the whole reply.
DEFAULT_TIMEOUT = 10.0
#: Connections held at once; a new one beyond this closes the oldest.
MAX_CLIENTS = 256
#: Listen backlog: connections the kernel queues before the thread accepts them.
BACKLOG = 128

_ULONG_MAX = 2**64 - 1  # also uint64_t: LP64
_UCRED = struct.Struct("=iII")  # struct ucred: pid, uid, gid
_CPU = 0  # TopoObj.obj_type of a CPU: the tree's leaves


# ----------------------------------------------------------------------
# commands
# ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stats:
    """``stats``: reply with the topology tree and the IRQs on it."""


@dataclass(frozen=True, slots=True)
class Setup:
    """``setup``: reply with the interval, the banned IRQs and the banned CPUs."""


@dataclass(frozen=True, slots=True)
class SetInterval:
    """``settings sleep N``: new balancing interval, in seconds (>= 1)."""

    seconds: int


@dataclass(frozen=True, slots=True)
class BanIrqs:
    """``settings ban irqs ...``: the new banned-IRQ list, replacing ``--banirq`` too."""

    irqs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class BanCpus:
    """``settings cpus LIST``: banned CPU list text for the next rebuild; None = forget."""

    cpulist: str | None


@dataclass(frozen=True, slots=True)
class Ignored:
    """A message irqbalance does nothing with (closed without reply)."""

    reason: str


Command = Stats | Setup | SetInterval | BanIrqs | BanCpus | Ignored


def parse_command(data: bytes) -> Command:
    """What irqbalance 1.9 does with one received message.

    irqbalance treats the buffer as a C string, so everything from the first
    NUL on is ignored, and recognises commands by prefix (``statsXYZ`` is
    ``stats``). Numbers go through ``strtoul`` into a C ``int``: values wrap
    (4294967298 is 2) and negative ones become huge then wrap back.
    """
    text = data.split(b"\0", 1)[0]
    if text.startswith(b"stats"):
        return Stats()
    if text.startswith(b"setup"):
        return Setup()
    if not text.startswith(b"settings "):
        return Ignored("unknown command")
    rest = text[len(b"settings ") :]
    if rest.startswith(b"sleep "):
        seconds = c_int(strtoul(rest, len(b"sleep "))[0])
        if seconds < 1:
            return Ignored(f"sleep interval {seconds} is not >= 1")
        return SetInterval(seconds)
    if rest.startswith(b"ban irqs "):
        return BanIrqs(_parse_irq_list(rest[len(b"ban irqs ") :]))
    if rest.startswith(b"cpus "):
        # strtok(rest, " "): the first space-separated token only (the man
        # page's "<cpu1> <cpu2> ..." is wrong). irqbalance 1.9.2 dereferences
        # NULL when there is no token; 1.9.5 forgets the setting, as here.
        tokens = [t for t in rest[len(b"cpus ") :].split(b" ") if t]
        if not tokens or tokens[0].startswith(b"NULL"):
            return BanCpus(None)
        return BanCpus(tokens[0].decode("latin-1"))
    return Ignored("unknown setting")


def _parse_irq_list(text: bytes) -> tuple[int, ...]:
    """``settings ban irqs`` argument: NONE, or numbers until the first 0/non-number.

    The first ``strtoul`` result is banned unconditionally, so `` NONE``
    (irqbalance-ui's "unban all" with its extra space) or ``foo`` bans IRQ 0,
    and ``5,6`` bans only 5. Duplicates are kept once, in first-seen order.
    """
    if text.startswith(b"NONE"):
        return ()
    value, end = strtoul(text, 0)
    irqs = [c_int(value)]
    while True:
        value, end = strtoul(text, end)
        irq = c_int(value)
        if irq == 0:
            break
        if irq not in irqs:
            irqs.append(irq)
    return tuple(irqs)


# ----------------------------------------------------------------------
# replies
# ----------------------------------------------------------------------


def format_stats(nodes: Iterable[TopoObj]) -> bytes:
    """The ``stats`` reply: every object depth-first from each node, node -1 first.

    ``TYPE t NUMBER n LOAD l SAVE_MODE 0|1`` per object, followed by ``IRQ i
    LOAD l DIFF d CLASS c`` per IRQ assigned to it; every field ends with one
    space; no newline, no NUL (irqbalance ``get_object_stat``). Loads and diffs
    are printed as uint64, as irqbalance's ``PRIu64``.
    """
    parts: list[str] = []

    def visit(obj: TopoObj) -> None:
        parts.append(
            f"TYPE {int(obj.obj_type)} NUMBER {obj.number} LOAD {obj.load & _ULONG_MAX} "
            f"SAVE_MODE {int(obj.powersave)} "
        )
        parts.extend(
            f"IRQ {info.irq} LOAD {info.load & _ULONG_MAX} DIFF {info.diff & _ULONG_MAX} "
            f"CLASS {int(info.irq_class)} "
            for info in obj.interrupts
        )
        if obj.obj_type != _CPU:
            for child in obj.children:
                visit(child)

    for node in nodes:
        visit(node)
    return "".join(parts).encode("ascii")


def format_setup(interval: int, banned_irqs: Iterable[int], banned_mask: int) -> bytes:
    """The ``setup`` reply: ``SLEEP n``, one zeroed IRQ record per banned IRQ, ``BANNED mask``.

    The IRQs are the command-line/socket ban list (not IRQs banned by a
    policy script or for other reasons); their records are always zero. The
    mask is irqbalance's ``cpumask_scnprintf`` text, with no trailing space.
    """
    irqs = "".join(f"IRQ {irq} LOAD 0 DIFF 0 CLASS 0 " for irq in banned_irqs)
    return f"SLEEP {interval} {irqs}BANNED {format_mask(banned_mask)}".encode("ascii")


# ----------------------------------------------------------------------
# the daemon side
# ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetupState:
    """What a ``setup`` reply shows."""

    #: Balancing interval in seconds.
    interval: int
    #: ``--banirq`` list, or what the last ``settings ban irqs`` set.
    banned_irqs: tuple[int, ...]
    #: Banned CPUs of the current tree.
    banned_cpus: int


class ControlTarget(Protocol):
    """What the control socket needs from the daemon.

    Every method is called on the socket's thread, never on the balancing
    loop's, and must return quickly: take the balancer's lock only for as long
    as a read or a flag needs (or hand out a reply cached at the end of each
    pass), never across a pass.
    """

    def control_stats(self) -> bytes:
        """``format_stats(balancer.nodes)`` of the tree as the last pass left it."""
        ...

    def control_setup(self) -> SetupState:
        """Current interval, command-line/socket banned IRQs, banned CPU mask."""
        ...

    def control_set_interval(self, seconds: int) -> None:
        """New interval; irqbalance re-arms its timer with it after the next pass."""
        ...

    def control_ban_irqs(self, irqs: tuple[int, ...]) -> None:
        """Replace the banned-IRQ list (``--banirq`` included) and rescan at the next pass."""
        ...

    def control_ban_cpus(self, cpulist: str | None) -> None:
        """Set (None: clear) ``BalancerSettings.socket_banned_cpulist``; rescan at the next pass."""
        ...


class ControlSocketError(PyirqbalanceError, OSError):
    """The socket could not be set up (irqbalance exits 1 then)."""


def socket_path(run_dir: str = DEFAULT_RUN_DIR, pid: int | None = None) -> str:
    """``<run_dir>/irqbalance<PID>.sock``: where irqbalance-ui looks first."""
    return os.path.join(run_dir, f"irqbalance{os.getpid() if pid is None else pid}.sock")


@dataclass(slots=True, eq=False)
class _Client:
    sock: socket.socket
    deadline: float
    reply: memoryview | None = None
    #: The peer's uid (SO_PEERCRED at accept; None if unknown): whose log lines these are.
    uid: int | None = None


#: Log lines about one client uid's bad messages per :data:`LOG_WINDOW` seconds.
LOG_BURST = 10
LOG_WINDOW = 60.0


def _peer_uid(sock: socket.socket) -> int | None:
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError:
        return None
    return int(_UCRED.unpack_from(creds)[1])


class _LogLimit:
    """At most :data:`LOG_BURST` lines per client uid and window, then a count of the rest."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._windows: dict[int | None, list] = {}  # uid -> [start, lines, suppressed]

    def say(self, uid: int | None, level: int, message: str) -> None:
        now = time.monotonic()
        w = self._windows.get(uid)
        if w is None or now - w[0] >= LOG_WINDOW:
            if w is not None and w[2]:
                self.log.warning("control socket: %d more messages about clients of uid %s "
                                 "were not logged", w[2], uid)
            w = self._windows[uid] = [now, 0, 0]
            if len(self._windows) > 1024:  # forget old windows
                for key in [k for k, v in self._windows.items() if now - v[0] >= LOG_WINDOW]:
                    del self._windows[key]
        if w[1] < LOG_BURST:
            w[1] += 1
            self.log.log(level, "%s", message)
            if w[1] == LOG_BURST:
                self.log.warning("control socket: clients of uid %s sent %d bad messages: "
                                 "the next ones are not logged for %.0f s", uid, LOG_BURST,
                                 LOG_WINDOW)
        else:
            w[2] += 1


class ControlSocket:
    """The listening socket and the thread serving it.

    ``start()`` binds (file path, else the abstract address), then serves
    clients on a daemon thread until ``stop()``, which closes everything and
    unlinks the socket file. Usable as a context manager.
    """

    #: What the daemon calls it in a log line.
    label = "the control socket"

    def __init__(
        self,
        target: ControlTarget,
        *,
        run_dir: str = DEFAULT_RUN_DIR,
        pid: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        log: logging.Logger | None = None,
    ) -> None:
        self.target = target
        self.path = socket_path(run_dir, pid)
        self.timeout = timeout
        self.log = log or logging.getLogger("pyirqbalance")
        #: Address bound: the file path, or :data:`ABSTRACT_ADDRESS`.
        self.address: str | bytes | None = None
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread: threading.Thread | None = None
        self._stopping = False
        #: The serving thread's state (shown by /api/v1/health and the metrics).
        self.health = ThreadHealth("control socket")
        #: Connections closed to make room for newer ones.
        self.dropped = 0
        self._limit = _LogLimit(self.log)

    # -- life cycle ------------------------------------------------------

    def start(self) -> None:
        """Bind, listen and start serving; raise :class:`ControlSocketError` if no address works."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                listener.bind(self.path)
                self.address = self.path
            except OSError:
                self.log.warning("Daemon couldn't be bound to the file-based socket.")
                try:
                    listener.bind(ABSTRACT_ADDRESS)
                except OSError as err:
                    raise ControlSocketError(
                        err.errno, "Daemon couldn't be bound to the abstract socket, bailing out."
                    ) from err
                self.address = ABSTRACT_ADDRESS
            # The kernel then attaches the sender's credentials to every message.
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            listener.listen(BACKLOG)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            self._unlink()
            raise
        self._listener = listener
        self._thread = threading.Thread(
            target=supervise, args=(self._serve, self.health, self.log),
            kwargs={"stopping": lambda: self._stopping}, name="uisocket", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close every connection and the listener, unlink the file."""
        if self._thread is not None:
            self._stopping = True
            self._wake_w.send(b"x")
            self._thread.join()
            self._thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            self._unlink()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> ControlSocket:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _unlink(self) -> None:
        if self.address == self.path:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    # -- the serving thread ----------------------------------------------

    def _serve(self) -> None:
        """Serve until ``stop()``. The listener stays registered whatever the clients do:
        when :data:`MAX_CLIENTS` connections are open, a new one closes the oldest."""
        assert self._listener is not None
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ)
        sel.register(self._listener, selectors.EVENT_READ)
        clients: dict[socket.socket, _Client] = {}  # insertion order: oldest first
        try:
            while not self._stopping:
                now = time.monotonic()
                for client in [c for c in clients.values() if c.deadline <= now]:
                    self.log.debug(
                        "control socket: client timed out after %.1f s, closing", self.timeout
                    )
                    self._close(sel, clients, client)
                wait = min((c.deadline for c in clients.values()), default=now + 60) - now
                for key, _ in sel.select(max(wait, 0)):
                    if key.fileobj is self._wake_r:
                        self._wake_r.recv(64)
                    elif key.fileobj is self._listener:
                        self._accept(sel, clients)
                    elif key.fileobj in clients:
                        self._step(sel, clients, clients[key.fileobj])
        finally:
            for client in list(clients.values()):
                self._close(sel, clients, client)
            sel.close()

    def _step(
        self, sel: selectors.BaseSelector, clients: dict[socket.socket, _Client], client: _Client
    ) -> None:
        if client.reply is None:
            self._receive(sel, clients, client)
        else:
            self._send(sel, clients, client)

    def _accept(self, sel: selectors.BaseSelector, clients: dict[socket.socket, _Client]) -> None:
        assert self._listener is not None
        while True:
            try:
                conn, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno in (errno.ECONNABORTED, errno.EINTR):
                    continue
                self.log.warning("Connection couldn't be accepted.")
                return
            if len(clients) >= MAX_CLIENTS:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    self.log.warning("control socket: %d connections open, closing the oldest "
                                     "(%d closed so far)", len(clients), self.dropped)
                self._close(sel, clients, next(iter(clients.values())))
            conn.setblocking(False)
            clients[conn] = _Client(conn, time.monotonic() + self.timeout, uid=_peer_uid(conn))
            sel.register(conn, selectors.EVENT_READ)

    def _receive(
        self, sel: selectors.BaseSelector, clients: dict[socket.socket, _Client], client: _Client
    ) -> None:
        """irqbalance's single ``recvmsg`` and its checks, in its order."""
        try:
            data, ancdata, _, _ = client.sock.recvmsg(RECV_SIZE, socket.CMSG_SPACE(_UCRED.size))
        except BlockingIOError:
            return
        except OSError:
            self._limit.say(client.uid, logging.WARNING, "Error while receiving data.")
            self._close(sel, clients, client)
            return
        reply = self._answer(data, ancdata, client.uid)
        if not reply:
            self._close(sel, clients, client)
            return
        client.reply = memoryview(reply)
        sel.modify(client.sock, selectors.EVENT_WRITE)
        self._send(sel, clients, client)

    def _answer(self, data: bytes, ancdata: list[tuple[int, int, bytes]],
                uid: int | None = None) -> bytes:
        """Check size and credentials, run the command; the reply (b"" = none).

        irqbalance's log line for a bad message is written at most
        :data:`LOG_BURST` times a minute per client uid (:class:`_LogLimit`).
        """
        if len(data) == RECV_SIZE:
            self._limit.say(uid, logging.WARNING, "Received command too long.")
            return b""
        if not ancdata:
            self._limit.say(uid, logging.WARNING, "Connection no memory.")
            return b""
        level, kind, cred = ancdata[0]
        if (
            level != socket.SOL_SOCKET
            or kind != socket.SCM_CREDENTIALS
            or len(cred) < _UCRED.size
            or _UCRED.unpack_from(cred)[1] != 0
        ):
            self._limit.say(uid, logging.INFO, "Permission denied for user to connect to socket.")
            return b""
        command = parse_command(data)
        try:
            return self._run(command)
        except Exception as err:  # noqa: BLE001 - the daemon's side failed: keep serving others
            self.log.error("control socket: %s failed: %s", type(command).__name__, err)
            return b""

    def _run(self, command: Command) -> bytes:
        target = self.target
        if isinstance(command, Stats):
            return target.control_stats()
        if isinstance(command, Setup):
            state = target.control_setup()
            return format_setup(state.interval, state.banned_irqs, state.banned_cpus)
        if isinstance(command, SetInterval):
            target.control_set_interval(command.seconds)
        elif isinstance(command, BanIrqs):
            target.control_ban_irqs(command.irqs)
        elif isinstance(command, BanCpus):
            target.control_ban_cpus(command.cpulist)
        else:
            self.log.debug("control socket: ignored message (%s)", command.reason)
        return b""

    def _send(
        self, sel: selectors.BaseSelector, clients: dict[socket.socket, _Client], client: _Client
    ) -> None:
        assert client.reply is not None
        try:
            # MSG_NOSIGNAL: a client gone mid-reply gives EPIPE, never SIGPIPE.
            sent = client.sock.send(client.reply, socket.MSG_NOSIGNAL)
        except BlockingIOError:
            return
        except OSError as err:
            self.log.debug("control socket: client went away mid-reply (%s)", err.strerror)
            self._close(sel, clients, client)
            return
        client.reply = client.reply[sent:]
        if not client.reply:
            self._close(sel, clients, client)

    @staticmethod
    def _close(
        sel: selectors.BaseSelector, clients: dict[socket.socket, _Client], client: _Client
    ) -> None:
        sel.unregister(client.sock)
        del clients[client.sock]
        client.sock.close()
