"""Which requests reach the API's worker threads, and when.

waitress hands a connection's next request to its pool of worker threads
(``server.add_task``). :class:`Gate` stands in that call:

* **light** requests -- ``/api/v1/health``, ``/metrics`` and every request
  that is not a GET or HEAD (writes) -- go to the pool at once;
* **readers** (everything else) may hold at most :data:`READER_SHARE` of the
  workers together (all but one: health and writes always find a free
  worker) and :data:`READERS_PER_CLIENT` each per client; the others wait
  in the gate, in arrival order, not on a worker;
* **sampling** requests (``GET /get_interrupt_by_cpu?second=N``, which
  measure the next N seconds) wait in :class:`Sampler`: one thread takes
  the first reading, parks the connection without a worker for the N
  seconds and then hands it to the gate as a reader, which only reads
  /proc/interrupts again and subtracts. Parked requests are bounded per
  client and in total, and so are the bytes of first readings they hold;
  beyond that the request is answered 503 at once.

A client is the peer's uid on this host (unix socket: ``SO_PEERCRED``;
loopback TCP: the owner of the peer's socket) or, for other peers, its
address.
"""

from __future__ import annotations

import heapq
import math
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from ..engine.model import Snapshot
from ..kernel.procnet import diag_owner, loopback_peer, owner_in_tables, read_tcp_tables

__all__ = [
    "FIRST_READING_KEY",
    "PARKED_BYTES",
    "PARKED_LIMIT",
    "PARKED_PER_CLIENT",
    "READERS_PER_CLIENT",
    "REFUSED_KEY",
    "Gate",
    "Sampler",
]

#: Readers hold at most all workers but this many (kept for health and writes).
RESERVED_WORKERS = 1
#: Readers one client may have on workers at once.
READERS_PER_CLIENT = 2
#: Sampling requests parked at once, in all, and per client.
PARKED_LIMIT = 64
PARKED_PER_CLIENT = 8
#: Bytes of first readings parked requests may hold together.
PARKED_BYTES = 64 << 20
#: Seconds between looks at whether parked requests' clients are still there.
GONE_CHECK = 1.0
#: Parked requests arriving within this many seconds share one first reading.
SHARE_READING = 1.0
#: WSGI environ keys: the sampling request's first reading (a Snapshot), or
#: why the gate refused to park it (the route answers 503).
FIRST_READING_KEY = "pyirqbalance.first_reading"
REFUSED_KEY = "pyirqbalance.refused"

_SAMPLING_PATHS = ("/get_interrupt_by_cpu",)
_LIGHT_PATHS = ("/api/v1/health", "/metrics")


def sampling_seconds(request: Any, max_seconds: Callable[[], float]) -> float | None:
    """The seconds a sampling request waits for; None for any other request (or a bad value).

    A value the route would refuse is not parked: the route answers it.
    """
    if request.command != "GET" or request.path not in _SAMPLING_PATHS:
        return None
    values = parse_qs(request.query or "", keep_blank_values=True).get("second")
    text = values[0] if values else ""
    if not text:
        text = "5"  # the route's default
    try:
        seconds = float(text) if len(text) <= 32 and text.isascii() else math.nan
    except ValueError:
        return None
    if not 0 < seconds <= max_seconds():
        return None
    return seconds


def is_light(request: Any) -> bool:
    return request.command not in ("GET", "HEAD") or request.path in _LIGHT_PATHS


class SocketTables:
    """The host's TCP socket tables, read once for a burst of new connections.

    Reading /proc/net/tcp takes milliseconds on a busy host, and the gate asks
    on the server's I/O thread, which every other client waits for meanwhile.
    A table read after a connection was accepted lists its peer's socket, so
    a connection accepted before the last read (younger than
    :data:`TABLE_REUSE`) is looked up in that table; only a peer not found
    there makes a new read.
    """

    def __init__(self, read: Callable[[], tuple[str, ...]] = read_tcp_tables,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.read = read
        self.clock = clock
        self._lock = threading.Lock()
        self._tables: tuple[str, ...] = ()
        self._read_at = -math.inf

    def owner(self, host: str, port: int, server_port: int, accepted: float | None,
              server_host: str | None = None) -> int | None:
        """uid owning the loopback peer ``host:port`` of our ``server_port``, if found.

        With our end's address (``server_host``), the kernel is asked for that
        one socket first (:func:`~pyirqbalance.kernel.procnet.diag_owner`).
        """
        if loopback_peer(host) is None:
            return None
        if server_host is not None:
            uid = diag_owner(host, port, server_host, server_port)
            if uid is not None:
                return uid
        with self._lock:
            if (accepted is not None and accepted < self._read_at
                    and self.clock() - self._read_at < TABLE_REUSE):
                uid = owner_in_tables(self._tables, host, port, server_port)
                if uid is not None:
                    return uid
            started = self.clock()
            self._tables = self.read()
            self._read_at = started
            return owner_in_tables(self._tables, host, port, server_port)


#: Seconds a read of the socket tables answers for connections accepted before it.
TABLE_REUSE = 1.0
_TABLES = SocketTables()


def _local_host(channel: Any) -> str | None:
    """Our end's address of a TCP connection (the one its peer connected to)."""
    sock = getattr(channel, "socket", None)
    try:
        name = sock.getsockname() if sock is not None else None
    except OSError:
        return None
    return name[0] if isinstance(name, tuple) and name else None


def client_of(channel: Any, tables: SocketTables = _TABLES) -> object:
    """Who a connection belongs to (cached on the channel)."""
    key = getattr(channel, "client_key", None)
    if key is not None:
        return key
    peer = getattr(channel, "peer", None)
    if peer is not None and peer.uid is not None:
        key = ("uid", peer.uid)
    else:
        addr = channel.addr
        host = addr[0] if isinstance(addr, tuple) and addr else str(addr)
        key = ("addr", host)
        if isinstance(addr, tuple) and len(addr) >= 2:
            server_port = getattr(channel.server, "effective_port", None)
            uid = (tables.owner(host, int(addr[1]), int(server_port),
                                getattr(channel, "accepted", None), _local_host(channel))
                   if server_port else None)
            if uid is not None:
                key = ("uid", uid)
    channel.client_key = key
    return key


def _hung_up(channel: Any) -> bool:
    """Whether the client closed its end (EOF or reset waiting on the socket)."""
    try:
        return channel.socket.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class Gate:
    """Stands in waitress's ``server.add_task``: lets readers onto workers within bounds."""

    def __init__(self, add_task: Callable[[Any], None], threads: int,
                 sampler: Sampler | None = None) -> None:
        self._add = add_task
        self.limit = max(1, threads - RESERVED_WORKERS)
        self.sampler = sampler
        self._lock = threading.Lock()
        self._running: dict[object, int] = {}
        self._total = 0
        self._waiting: deque[Any] = deque()

    def add_task(self, channel: Any) -> None:
        if not channel.requests:
            return  # cancelled while it waited (the server is stopping)
        request = channel.requests[0]
        if request.error or is_light(request):
            self._add(channel)
            return
        if (self.sampler is not None and not hasattr(request, "first_reading")
                and self.sampler.park(channel, request)):
            return
        client = client_of(channel)
        with self._lock:
            if not self._admit(channel, client):
                self._waiting.append(channel)
                return
        self._add(channel)

    def _admit(self, channel: Any, client: object) -> bool:
        if self._total >= self.limit or self._running.get(client, 0) >= READERS_PER_CLIENT:
            return False
        self._total += 1
        self._running[client] = self._running.get(client, 0) + 1
        channel.gate_slot = client
        return True

    def done(self, client: object) -> None:
        """A worker finished a reader of ``client``: its slot goes to the next waiting reader."""
        admitted = []
        with self._lock:
            self._total -= 1
            left = self._running[client] - 1
            if left:
                self._running[client] = left
            else:
                del self._running[client]
            for waiting in list(self._waiting):
                if self._total >= self.limit:
                    break
                if self._admit(waiting, client_of(waiting)):
                    self._waiting.remove(waiting)
                    admitted.append(waiting)
        for ch in admitted:
            self._add(ch)

    @property
    def waiting(self) -> int:
        return len(self._waiting)


class Sampler:
    """Parks sampling requests off the worker pool until their window has passed.

    ``read`` takes a reading (``LiveState.read_now``); ``release`` hands a
    connection back to the gate when its time is up.
    """

    def __init__(self, read: Callable[[], Snapshot], max_seconds: Callable[[], float]) -> None:
        self.read = read
        self.max_seconds = max_seconds
        self.release: Callable[[Any], None] = lambda channel: None
        self._cond = threading.Condition()
        self._new: list[tuple[Any, Any, float, object]] = []
        self._heap: list[tuple[float, int, tuple[Any, Any]]] = []
        self._seq = 0
        self._per_client: dict[object, int] = {}
        self._readings: dict[int, list[Any]] = {}  # id(snapshot) -> [snapshot, users]
        self._bytes = 0
        self._last: tuple[float, Snapshot] | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- the server thread's side -----------------------------------------

    def park(self, channel: Any, request: Any) -> bool:
        """Take a sampling request off the pool (True), or leave it to the gate (False)."""
        seconds = sampling_seconds(request, self.max_seconds)
        if seconds is None:
            return False
        client = client_of(channel)
        with self._cond:
            parked = sum(self._per_client.values())
            if self._stopping or self._thread is None:
                return False
            if parked >= PARKED_LIMIT or self._per_client.get(client, 0) >= PARKED_PER_CLIENT:
                request.first_reading = None
                request.refused = (f"too many sampling requests are waiting (at most "
                                   f"{PARKED_PER_CLIENT} per client, {PARKED_LIMIT} in all)")
                return False
            self._per_client[client] = self._per_client.get(client, 0) + 1
            self._new.append((channel, request, seconds, client))
            self._cond.notify()
        return True

    # -- its own thread ---------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="pyirqbalance-sampler",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _reading(self) -> Snapshot | None:
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < SHARE_READING:
            return self._last[1]
        try:
            snap = self.read()
        except Exception:  # noqa: BLE001 - the route reads again and answers the error
            return None
        self._last = (now, snap)
        return snap

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._new and not self._stopping and (
                        not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    if self._cond.wait(min(timeout, GONE_CHECK) if timeout else GONE_CHECK):
                        continue
                    self._drop_gone()
                if self._stopping:
                    due = [entry[2] for entry in self._heap]
                    self._heap.clear()
                    new = [(ch, req) for ch, req, _, _ in self._new]
                    self._new, arrived = [], []
                else:
                    due, new = [], []
                    while self._heap and self._heap[0][0] <= time.monotonic():
                        due.append(heapq.heappop(self._heap)[2])
                    arrived, self._new = self._new, []
            for channel, request in due + new:
                self._hand_back(channel, request)
            if self._stopping:
                return
            if arrived:
                self._take_first_readings(arrived)

    def _drop_gone(self) -> None:
        """Parked requests whose client hung up give their place back (the lock is held)."""
        kept = []
        for entry in self._heap:
            channel, request = entry[2]
            if _hung_up(channel):
                request.first_reading = None
                request.refused = "the client closed the connection"
                channel.will_close = True
                entry = (0.0, entry[1], entry[2])  # due now
            kept.append(entry)
        heapq.heapify(kept)
        self._heap = kept

    def _take_first_readings(self, arrived: list[tuple[Any, Any, float, object]]) -> None:
        snap = self._reading()
        start = time.monotonic()
        with self._cond:
            for channel, request, seconds, client in arrived:
                request.parked_client = client
                if snap is None:
                    request.first_reading = None
                    self._release_later(channel, request, start)
                    continue
                held = self._readings.get(id(snap))
                if held is None:
                    if self._bytes + len(snap.interrupts) > PARKED_BYTES:
                        request.first_reading = None
                        request.refused = (f"sampling requests waiting hold {PARKED_BYTES >> 20} "
                                           "MiB of readings already")
                        self._release_later(channel, request, start)
                        continue
                    held = self._readings[id(snap)] = [snap, 0]
                    self._bytes += len(snap.interrupts)
                held[1] += 1
                request.first_reading = snap
                self._release_later(channel, request, start + seconds)

    def _release_later(self, channel: Any, request: Any, when: float) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, (channel, request)))
        self._cond.notify()

    def _hand_back(self, channel: Any, request: Any) -> None:
        with self._cond:
            client = getattr(request, "parked_client", None)
            if client is not None:
                left = self._per_client.get(client, 1) - 1
                if left > 0:
                    self._per_client[client] = left
                else:
                    self._per_client.pop(client, None)
            snap = getattr(request, "first_reading", None)
            if snap is not None:
                held = self._readings.get(id(snap))
                if held is not None:
                    held[1] -= 1
                    if held[1] <= 0:
                        del self._readings[id(snap)]
                        self._bytes -= len(snap.interrupts)
        if not hasattr(request, "first_reading"):
            request.first_reading = None  # stopping before the first reading
        self.release(channel)
