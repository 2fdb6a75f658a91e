"""REST API: Flask routes served by waitress on threads of the daemon process.

The balancing loop never waits for the API: each pass hands its snapshot to
:class:`LiveState` (``on_pass``, a lock and a list append), and requests
parse that snapshot, query the history store on their own connection, or
read /proc/irq through :class:`~pyirqbalance.kernel.sysroot.SysRoot`. Two
families of routes: the seed servers' wire contract on the unversioned paths
(:mod:`.routes_seed`) and the richer versioned API under ``/api/v1``
(:mod:`.routes_v1`). Requests that change state need ``Authorization: Bearer
<token>`` (the content of a root-only file), or a peer that is uid 0 on this
host (``local_root_writes``). Every error is a JSON object with a 4xx/5xx
status; no traceback ever reaches a client. See docs/api.md.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import waitress.server
from flask import Flask, Response, jsonify, request
from waitress.channel import ClientDisconnected, HTTPChannel
from waitress.task import WSGITask
from werkzeug.exceptions import HTTPException

from ..engine.model import PassReport
from ..errors import PyirqbalanceError
from ..history.records import HistoryBusy, HistoryError
from ..supervise import ThreadHealth, supervise
from .context import (
    MAX_BODY,
    PEER_KEY,
    ApiContext,
    ApiError,
    LiveState,
    parse_time,
)
from .gate import FIRST_READING_KEY, REFUSED_KEY, Gate, Sampler
from .metrics import CONTENT_TYPE, Metrics
from .routes_seed import seed_blueprint, seed_json
from .routes_v1 import v1_blueprint

__all__ = [
    "DEFAULT_LISTEN",
    "ApiConfig",
    "ApiConfigError",
    "ApiContext",
    "ApiError",
    "ApiService",
    "LiveState",
    "create_app",
    "load_token",
    "parse_time",
]

DEFAULT_LISTEN = "127.0.0.1:9199"


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """The ``api:`` section (off unless the daemon is told to start it)."""

    #: "host:port" (TCP) or "unix:/path" entries.
    listen: tuple[str, ...] = (DEFAULT_LISTEN,)
    token_file: str | None = None
    #: Serve /metrics on its own listener too ("host:port"); it is always on the API's.
    metrics_listen: str | None = None
    per_irq_metrics: int = 256
    threads: int = 4
    unix_socket_perms: str = "600"


class ApiConfigError(PyirqbalanceError):
    """A listener or token file that cannot be used (the daemon reports it and exits 2)."""


#: Largest token file read.
TOKEN_LIMIT = 4096


def load_token(path: str) -> str:
    """The bearer token: the content of a regular file only root may read."""
    from ..service.statefiles import NotAStateFile, read_small

    try:
        # Without blocking (a FIFO), and bounded (/dev/zero, a huge file).
        data = read_small(path, TOKEN_LIMIT)
        st = os.stat(path)
    except OSError as err:
        raise ApiConfigError(f"api token file {path}: {err.strerror}") from err
    except NotAStateFile as err:
        raise ApiConfigError(f"api token file {path}: {err}") from err
    if data is None:
        raise ApiConfigError(f"api token file {path}: No such file or directory")
    try:
        token = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ApiConfigError(f"api token file {path}: not UTF-8 text") from None
    if not stat.S_ISREG(st.st_mode):
        raise ApiConfigError(f"api token file {path}: not a regular file")
    if st.st_mode & 0o077 or st.st_uid != 0:
        raise ApiConfigError(
            f"api token file {path}: must be owned by root and readable by root only "
            f"(it is mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid}): "
            f"chown root {path}; chmod 600 {path}"
        )
    if not token:
        raise ApiConfigError(f"api token file {path}: empty")
    return token


class Peer(NamedTuple):
    """The other end of an API connection: its uid when the socket says (unix sockets)."""

    family: int
    uid: int | None


def _peer_of(sock: socket.socket) -> Peer:
    if sock.family != socket.AF_UNIX:
        return Peer(sock.family, None)
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return Peer(sock.family, None)
    return Peer(sock.family, struct.unpack("3i", creds)[1])


class _PeerTask(WSGITask):
    """waitress's task, with the connection's :class:`Peer` in the environ."""

    def get_environment(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environment()
        environ[PEER_KEY] = getattr(self.channel, "peer", None)
        if hasattr(self.request, "first_reading"):  # parked by the gate's sampler
            environ[FIRST_READING_KEY] = self.request.first_reading
            environ[REFUSED_KEY] = getattr(self.request, "refused", None)
        return environ


class PeerChannel(HTTPChannel):
    """waitress's channel: who is connected (SO_PEERCRED), the gate, a send timeout.

    A reply the client does not take for :data:`SEND_TIMEOUT` seconds is
    abandoned and the connection closed, so a client that pipelines requests
    and never reads the replies cannot hold a worker.
    """

    task_class = _PeerTask

    def __init__(self, server: Any, sock: socket.socket, addr: Any, adj: Any,
                 map: Any = None) -> None:
        self.peer = _peer_of(sock)
        #: time.monotonic() at accept (gate.SocketTables: which table read shows its peer).
        self.accepted = time.monotonic()
        self.abandoned = False
        super().__init__(server, sock, addr, adj, map=map)

    def service(self) -> None:
        slot, self.gate_slot = getattr(self, "gate_slot", None), None
        try:
            super().service()
        finally:
            if slot is not None:
                self.server.gate.done(slot)

    def handle_close(self) -> None:
        if self.abandoned:
            # Reset rather than close: the unsent reply is dropped by the kernel
            # too, instead of waiting behind a window the client never opens.
            try:
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            except OSError:
                pass
        super().handle_close()

    def write_soon(self, data: Any) -> int:
        if self.abandoned:
            raise ClientDisconnected
        written: int = super().write_soon(data)
        if self.abandoned:
            raise ClientDisconnected
        return written

    def _flush_outbufs_below_high_watermark(self) -> None:
        """waitress waits here, without a limit, for the client to take the output."""
        if self.total_outbufs_len <= self.adj.outbuf_high_watermark:
            return
        with self.outbuf_lock:
            _, failed = self._flush_exception(self._flush_some, do_close=False)
            if failed:
                self.server.pull_trigger()
                self.outbuf_lock.wait(SEND_TIMEOUT)
                return
            left, since = self.total_outbufs_len, time.monotonic()
            while self.connected and self.total_outbufs_len > self.adj.outbuf_high_watermark:
                self.server.pull_trigger()
                self.outbuf_lock.wait(0.5)
                if self.total_outbufs_len < left:
                    left, since = self.total_outbufs_len, time.monotonic()
                elif time.monotonic() - since > SEND_TIMEOUT:
                    self.abandoned = True
                    self.will_close = True  # the server's thread closes it
                    self.server.pull_trigger()
                    return


# --------------------------------------------------------------------------
# the application
# --------------------------------------------------------------------------


def create_app(ctx: ApiContext) -> Flask:
    """The WSGI application: the seed routes at /, the versioned API at /api/v1, /metrics."""
    app = Flask("pyirqbalance.api")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.register_blueprint(seed_blueprint(ctx))
    app.register_blueprint(v1_blueprint(ctx), url_prefix="/api/v1")
    app.add_url_rule("/metrics", view_func=lambda: _metrics(ctx))
    app.register_error_handler(ApiError, _on_api_error)
    app.register_error_handler(HistoryError, _on_history_error)
    app.register_error_handler(HTTPException, _on_http_error)
    app.register_error_handler(Exception, lambda err: _on_crash(ctx, err))
    return app


def _metrics(ctx: ApiContext) -> Response:
    if ctx.metrics is None:
        raise ApiError(404, "metrics are not enabled in this process")
    return Response(ctx.metrics.render(), content_type=CONTENT_TYPE)


def _error(status: int, message: str, parameter: str | None = None) -> Response:
    body: dict[str, Any] = {"error": message}
    if parameter is not None:
        body["parameter"] = parameter
    if not request.path.startswith("/api/"):
        body["message"] = message  # what the seed clients print
        return seed_json(body, status)
    resp = jsonify(body)
    resp.status_code = status
    return resp


def _on_api_error(err: ApiError) -> Response:
    resp = _error(err.status, err.message, err.parameter)
    if err.status == 401:
        resp.headers["WWW-Authenticate"] = "Bearer"
    return resp


def _on_history_error(err: HistoryError) -> Response:
    """The history store failed or is locked by another process: 503 at once."""
    resp = _error(503, str(err))
    if isinstance(err, HistoryBusy):
        resp.headers["Retry-After"] = "5"
    return resp


def _on_http_error(err: HTTPException) -> Response:
    return _error(err.code or 500, f"{err.name}: {err.description}")


def _on_crash(ctx: ApiContext, err: Exception) -> Response:
    ctx.log.error("API: %s %s failed", request.method, request.path[:200], exc_info=err)
    return _error(500, f"internal error ({type(err).__name__}); see the daemon log")


# --------------------------------------------------------------------------
# the daemon service
# --------------------------------------------------------------------------


#: Connections the API holds at once (slow or idle ones included).
CONNECTION_LIMIT = 512
#: Near the limit, the oldest connections not being answered are closed to keep
#: this many slots for new clients.
RESERVED_SLOTS = 64
#: Seconds a client may take to send one whole request (headers and body).
REQUEST_READ_TIMEOUT = 10.0
#: Seconds an idle keep-alive connection is kept.
IDLE_TIMEOUT = 30.0
#: Seconds a reply may go without the client taking a byte of it; then it is
#: abandoned and the connection closed.
SEND_TIMEOUT = 10.0
#: Bytes of replies buffered per connection before the worker waits for the
#: client to take them (waitress's default is 16 MiB).
OUTBUF_HIGH_WATERMARK = 4 << 20


def _guard_slow_clients(srv: Any, limit: int = CONNECTION_LIMIT) -> None:
    """Bound the time a request may take to arrive, and keep slots free for new clients.

    waitress closes connections idle for ``channel_timeout``, but a client
    sending a byte a second is never idle; and at ``connection_limit`` it
    stops accepting. Its periodic ``maintenance`` (every ``cleanup_interval``)
    is extended: a request still arriving after :data:`REQUEST_READ_TIMEOUT`
    is closed, and above ``limit - RESERVED_SLOTS`` connections the oldest
    ones not being answered are closed.
    """
    base = srv.maintenance
    reading_since: dict[int, float] = {}

    def maintenance(now: float) -> None:
        base(now)
        channels = list(srv.active_channels.values())
        reading = set()
        for ch in channels:
            if getattr(ch, "abandoned", False) or (
                    ch.total_outbufs_len and now - ch.last_activity > SEND_TIMEOUT):
                # A reply nobody takes. Its socket is not writable, so waitress's
                # loop would never get to close it: ApiService._serve resets it.
                ch.abandoned = True
                continue
            if ch.requests or ch.request is None:
                continue  # being answered, or between requests (channel_timeout's job)
            reading.add(id(ch))
            if now - reading_since.setdefault(id(ch), now) > REQUEST_READ_TIMEOUT:
                ch.will_close = True
        for key in [k for k in reading_since if k not in reading]:
            del reading_since[key]
        excess = len(channels) - (limit - RESERVED_SLOTS)
        if excess > 0:
            waiting = sorted((c for c in channels if not c.requests and not c.will_close),
                             key=lambda c: c.creation_time)
            for ch in waiting[:excess]:
                ch.will_close = True

    srv.maintenance = maintenance


def _reset_abandoned(srv: Any) -> None:
    """Close the connections whose replies were abandoned (between two polls of the loop)."""
    for ch in list(srv.active_channels.values()):
        if getattr(ch, "abandoned", False):
            ch.handle_close()


class ApiService:
    """Serves :func:`create_app` on every ``listen`` entry, each on its own thread.

    ``start``/``stop`` with the daemon; ``on_pass`` is the per-pass listener.
    Each serving thread is supervised (restarted after a failure, disabled
    after three in a row); slow and idle clients are bounded by
    :func:`_guard_slow_clients`.
    """

    #: What the daemon calls it in a log line.
    label = "the HTTP API"

    def __init__(self, ctx: ApiContext, config: ApiConfig) -> None:
        self.ctx = ctx
        self.config = config
        self.app = create_app(ctx)
        self._servers: list[Any] = []
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        from . import routes_seed  # the sampling route's longest window, as it stands

        self.sampler = Sampler(ctx.live.read_now, lambda: routes_seed.MAX_SECONDS)
        self.sampler.release = lambda channel: channel.server.gate.add_task(channel)
        entries = list(config.listen)
        if config.metrics_listen and ctx.metrics is not None:
            entries.append(config.metrics_listen)
        #: One per listener (shown by /api/v1/health and the metrics).
        self.health = [ThreadHealth(f"api {entry}") for entry in entries]

    def on_pass(self, report: PassReport) -> None:
        self.ctx.live.on_pass(report)
        if self.ctx.metrics is not None:
            self.ctx.metrics.on_pass(report)

    @property
    def addresses(self) -> list[str]:
        """Where the servers listen ("http://host:port" or "unix:/path")."""
        out = []
        for srv in self._servers:
            if getattr(srv.adj, "unix_socket", None):
                out.append(f"unix:{srv.adj.unix_socket}")
            else:
                out.append(f"http://{srv.effective_host}:{srv.effective_port}")
        return out

    def _server(self, app: Any, entry: str, sampler: Sampler | None = None) -> Any:
        opts: dict[str, Any] = {"threads": self.config.threads, "ident": "pyirqbalance",
                                "clear_untrusted_proxy_headers": True, "asyncore_loop_timeout": 0.2,
                                "connection_limit": CONNECTION_LIMIT, "cleanup_interval": 1,
                                "channel_timeout": IDLE_TIMEOUT,
                                "outbuf_high_watermark": OUTBUF_HIGH_WATERMARK}
        if entry.startswith("unix:"):
            opts.update(unix_socket=entry[5:], unix_socket_perms=self.config.unix_socket_perms)
        else:
            host, sep, port = entry.rpartition(":")
            if not sep or not port.isdigit():
                raise ApiConfigError(f"api listen {entry!r}: expected host:port or unix:/path")
            opts.update(host=host.strip("[]") or "127.0.0.1", port=int(port))
        opts["max_request_body_size"] = MAX_BODY
        try:
            srv = waitress.server.create_server(app, **opts)
        except (OSError, ValueError) as err:
            raise ApiConfigError(f"api listen {entry}: {err}") from err
        srv.channel_class = PeerChannel
        srv.gate = Gate(srv.add_task, self.config.threads, sampler)
        srv.add_task = srv.gate.add_task
        _guard_slow_clients(srv)
        return srv

    def start(self) -> None:
        """Listen on every entry that can be listened on, and serve.

        An entry that cannot (a port in use, a socket directory missing) is
        logged, and its health says ``disabled`` with the reason
        (``/api/v1/health``, the metrics); the others serve and the daemon
        balances on: the API is beside the balancer, never in its way.
        """
        apps: list[tuple[Any, str]] = [(self.app, entry) for entry in self.config.listen]
        if self.config.metrics_listen and self.ctx.metrics is not None:
            apps.append((_metrics_app(self.ctx.metrics), self.config.metrics_listen))
        serving = []
        for (app, entry), health in zip(apps, self.health):
            try:
                self._servers.append(self._server(app, entry,
                                                  self.sampler if app is self.app else None))
            except ApiConfigError as err:
                health.set("disabled", str(err))
                self.ctx.log.error("API not started on %s: %s; balancing goes on without it",
                                   entry, str(err).removeprefix(f"api listen {entry}: "))
                continue
            serving.append(health)
        self._stopping.clear()
        self.sampler.start()
        try:
            # A first reading before the first pass: the seed windows of the daemon's
            # first seconds count from it.
            self.ctx.live.latest()
        except ApiError as err:
            self.ctx.log.warning("API: %s", err.message)
        for srv, health in zip(self._servers, serving):
            t = threading.Thread(
                target=supervise, args=(lambda srv=srv: self._serve(srv), health, self.ctx.log),
                kwargs={"stopping": self._stopping.is_set,
                        "on_disable": lambda why, srv=srv: self._close(srv)},
                name="pyirqbalance-api", daemon=True)
            t.start()
            self._threads.append(t)
        if self._servers:
            self.ctx.log.info("API listening on %s", ", ".join(self.addresses))

    def _serve(self, srv: Any) -> None:
        # waitress's own run() loops until its map is empty; closing the sockets
        # from another thread would pull them from under select(). Polling in
        # short rounds lets stop() end the loop; the sockets are closed in stop().
        while not self._stopping.is_set():
            _reset_abandoned(srv)
            waitress.server.wasyncore.loop(timeout=0.2, map=srv._map, count=1,
                                           use_poll=srv.adj.asyncore_use_poll)

    @staticmethod
    def _close(srv: Any) -> None:
        srv.task_dispatcher.shutdown(timeout=5)
        waitress.server.wasyncore.close_all(srv._map)

    def stop(self) -> None:
        self._stopping.set()
        self.sampler.stop()
        for t in self._threads:
            t.join(timeout=10)
        for srv in self._servers:
            self._close(srv)
            path = getattr(srv.adj, "unix_socket", None)
            if path and os.path.exists(path):
                os.unlink(path)
        self._servers, self._threads = [], []


def _metrics_app(metrics: Metrics) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"metrics are at /metrics\n"]
        start_response("200 OK", [("Content-Type", CONTENT_TYPE)])
        return [metrics.render()]

    return app
