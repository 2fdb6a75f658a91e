"""What every API route shares: the context, the live snapshots, request checks, writes.

Inputs are checked strictly and errors echo at most a short prefix of what
was sent: IRQ and CPU numbers are ASCII digits only, times must fall in the
range a calendar can show, bodies are JSON or form data of bounded size.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import json
import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import request

from ..engine.model import PassReport, Snapshot
from ..errors import PyirqbalanceError
from ..history.records import HistoryConfig, HistoryError
from ..history.store import HistoryStore
from ..kernel.cpumask import MaskError, format_cpulist, format_mask, parse_cpulist, parse_mask
from ..kernel.procinterrupts import Interrupts, ParseError, parse_interrupts
from ..kernel.procirq import write_smp_affinity
from ..kernel.procnet import read_tcp_owner
from ..kernel.procstat import parse_stat
from ..kernel.sysfs import parse_strict_cpulist
from ..kernel.sysroot import KernelReadError, SysRoot
from .metrics import Metrics
from .overrides import OverrideRegistry

__all__ = [
    "ECHO_LIMIT",
    "MAX_BODY",
    "MAX_TIME",
    "ApiContext",
    "ApiError",
    "LiveState",
    "authorize",
    "digits",
    "echo",
    "parse_time",
]

#: Bytes of pass snapshots kept for the live views (older ones: history store).
LIVE_BUDGET = 32 << 20
LIVE_MAX_AGE = 3600.0
#: Largest request body accepted (413 above).
MAX_BODY = 64 << 10
#: Characters of a client's value shown back in an error message.
ECHO_LIMIT = 64
#: Latest time accepted in a window: 9999-12-31T23:59:59Z.
MAX_TIME = 253402300799.0
#: Seconds a request waits for a lock another process holds on the history
#: store before it is answered 503.
QUERY_BUSY_TIMEOUT = 0.25
#: WSGI environ key of the connection's peer (set by the server's channels).
PEER_KEY = "pyirqbalance.peer"


class ApiError(PyirqbalanceError):
    """A request the API answers with ``status`` and a JSON error."""

    def __init__(self, status: int, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.parameter = parameter


def echo(value: object) -> str:
    """``repr`` of a client's value, cut to :data:`ECHO_LIMIT` characters."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > ECHO_LIMIT:
        return repr(text[:ECHO_LIMIT]) + f"... ({len(text)} characters)"
    return repr(text)


_DIGITS = re.compile(r"[0-9]+")


def digits(name: str, value: str | None, *, default: int | None = None) -> int:
    """A decimal number of ASCII digits only (no sign, blank, ``_`` or other scripts)."""
    if value is None or value == "":
        if default is None:
            raise ApiError(400, f"{name}: required", name)
        return default
    if not _DIGITS.fullmatch(value) or len(value) > 10:
        raise ApiError(400, f"{name}: not a number of ASCII digits: {echo(value)}", name)
    return int(value)


def number(name: str, value: str | None, default: float, lo: float, hi: float) -> float:
    """A decimal number within ``[lo, hi]``."""
    if value is None or value == "":
        return default
    try:
        x = float(value) if len(value) <= 32 and value.isascii() else math.nan
    except ValueError:
        x = math.nan
    if not (lo <= x <= hi):
        raise ApiError(400, f"{name}: expected a number from {lo:g} to {hi:g}, got {echo(value)}",
                       name)
    return x


# --------------------------------------------------------------------------
# times and windows
# --------------------------------------------------------------------------

_RELATIVE = re.compile(r"-([0-9]{1,12}(?:\.[0-9]{1,9})?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SEED_DATE = re.compile(r"[0-9]{8}")
_EPOCH = re.compile(r"[0-9]{1,15}(?:\.[0-9]{0,9})?|[0-9.]+[eE][+-]?[0-9]+")


class TimeFormatError(ApiError):
    """A time in none of the accepted forms (the seed routes answer it their own way)."""


def _in_range(value: float, text: str, parameter: str) -> float:
    if not (0 <= value <= MAX_TIME) or not math.isfinite(value):
        raise ApiError(400, f"{parameter}: {echo(text)} is outside the times a window can have "
                            "(1970 to 9999)", parameter)
    return value


def _seed_date(text: str, now: float) -> float | None:
    """``mmddHHMM`` in local time of the current year (irqRestServer's form)."""
    year = datetime.fromtimestamp(now).year
    try:
        return datetime.strptime(f"{year}{text}", "%Y%m%d%H%M").timestamp()
    except ValueError:
        return None


def parse_time(text: str, parameter: str, now: float | None = None) -> float:
    """Epoch seconds, ``mmddHHMM`` (8 digits), ISO-8601 (naive = local) or ``-N[smhd]``."""
    now = time.time() if now is None else now
    t = text.strip()
    m = _RELATIVE.fullmatch(t)
    if m:
        return _in_range(now - float(m[1]) * _UNITS[m[2]], text, parameter)
    if _SEED_DATE.fullmatch(t):
        value = _seed_date(t, now)
        if value is None:
            raise TimeFormatError(400, f"{parameter}: {echo(text)} is not a valid mmddHHMM date",
                                  parameter)
        return value
    if _EPOCH.fullmatch(t):
        try:
            value = float(t)
        except ValueError:  # "1.2.3e5", ".e5": digits and dots that are no number
            raise TimeFormatError(
                400, f"{parameter}: {echo(text)} is not a number of epoch seconds",
                parameter) from None
        return _in_range(value, text, parameter)
    if t[:1] == "-":
        raise ApiError(400, f"{parameter}: {echo(text)} is not -N[smhd] within 1970 to 9999",
                       parameter)
    try:
        return _in_range(datetime.fromisoformat(t).timestamp(), text, parameter)
    except (ValueError, OverflowError, OSError):
        raise TimeFormatError(
            400, f"{parameter}: expected epoch seconds, mmddHHMM, ISO-8601 or -N[smhd], "
                 f"got {echo(text)}", parameter) from None


# --------------------------------------------------------------------------
# the passes' snapshots
# --------------------------------------------------------------------------


class LiveState:
    """The passes' snapshots, shared by the balancing loop (writer) and the API (readers)."""

    def __init__(self, root: SysRoot) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._snapshots: deque[Snapshot] = deque()
        self._bytes = 0
        self._parsed: tuple[int, Interrupts] | None = None
        self.last_report: PassReport | None = None

    def on_pass(self, report: PassReport) -> None:
        with self._lock:
            self.last_report = report
        if report.snapshot is not None:
            self.add(report.snapshot)

    def add(self, snap: Snapshot) -> None:
        with self._lock:
            self._snapshots.append(snap)
            self._bytes += len(snap.interrupts)
            while len(self._snapshots) > 2 and (
                self._bytes > LIVE_BUDGET
                or snap.taken_at - self._snapshots[0].taken_at > LIVE_MAX_AGE
            ):
                self._bytes -= len(self._snapshots.popleft().interrupts)

    def read_now(self) -> Snapshot:
        """/proc/interrupts and /proc/stat as they are now (not kept)."""
        try:
            data = self.root.read_bytes(self.root.proc("interrupts"))
        except KernelReadError as err:
            raise ApiError(503, f"cannot read /proc/interrupts: {err}") from err
        return Snapshot(time.time(), data, self.root.try_read_text(self.root.proc("stat")))

    def refresh(self) -> Snapshot:
        """Read /proc now (no daemon passes feed this process: the client's local mode)."""
        snap = self.read_now()
        self.add(snap)
        return snap

    def latest(self) -> Snapshot:
        with self._lock:
            if self._snapshots:
                return self._snapshots[-1]
        return self.refresh()

    def snapshots(self) -> list[Snapshot]:
        with self._lock:
            return list(self._snapshots)

    def interrupts(self, snap: Snapshot | None = None) -> Interrupts:
        snap = snap or self.latest()
        cached = self._parsed
        if cached is not None and cached[0] == id(snap):
            return cached[1]
        parsed = parse_snapshot(snap)
        self._parsed = (id(snap), parsed)
        return parsed


def parse_snapshot(snap: Snapshot) -> Interrupts:
    try:
        return parse_interrupts(snap.interrupts.decode("utf-8", "replace"))
    except ParseError as err:
        raise ApiError(503, f"cannot parse /proc/interrupts: {err}") from err


@dataclass
class ApiContext:
    """Everything the routes read or change."""

    root: SysRoot
    live: LiveState
    balancer: Any = None
    overrides: OverrideRegistry = field(default_factory=OverrideRegistry)
    history: HistoryConfig | None = None
    #: Why history is off in the daemon (shown by /api/v1/health).
    history_error: Callable[[], str | None] = lambda: None
    token: str | None = None
    metrics: Metrics | None = None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("pyirqbalance"))
    #: Writes without a token from a peer that is uid 0 on this host.
    local_root_writes: bool = True
    #: The daemon's own condition (threads, flags): supervise.StatusBoard.to_json.
    daemon_status: Callable[[], dict[str, Any]] = dict


# --------------------------------------------------------------------------
# request helpers
# --------------------------------------------------------------------------


def online_cpus(ctx: ApiContext) -> int:
    b = ctx.balancer
    if b is not None and b.online_cpus:
        return int(b.online_cpus)
    line = ctx.root.read_first_line(ctx.root.sys("devices", "system", "cpu", "online"))
    mask = parse_strict_cpulist(line)
    if mask is None:
        raise ApiError(503, "cannot read the online CPUs")
    return mask


def irq_exists(ctx: ApiContext, irq: int) -> bool:
    return ctx.root.isdir(ctx.root.proc("irq", str(irq)))


def require_irq(ctx: ApiContext, text: str) -> int:
    irq = digits("irq", text)
    if not irq_exists(ctx, irq):
        raise ApiError(404, f"IRQ {irq} does not exist", "irq")
    return irq


def peer_uid(environ: dict[str, Any]) -> int | None:
    """uid of the connection's peer on this host (unix: SO_PEERCRED; loopback TCP: socket table)."""
    peer = environ.get(PEER_KEY)
    if peer is None:
        return None
    if peer.uid is not None:
        return int(peer.uid)
    try:
        port = int(environ.get("REMOTE_PORT") or "")
        server_port = int(environ.get("SERVER_PORT") or "")
    except ValueError:
        return None
    return read_tcp_owner(str(environ.get("REMOTE_ADDR", "")), port, server_port)


def authorize(ctx: ApiContext) -> None:
    """A valid bearer token, or (``local_root_writes``) a peer that is root on this host."""
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if ctx.token is not None and scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), ctx.token.encode()):
        return
    if ctx.local_root_writes and peer_uid(request.environ) == 0:
        return
    if ctx.token is None:
        raise ApiError(403, "state-changing requests need root on this host "
                            "(no api token_file is configured)")
    if header:
        raise ApiError(401, "a valid 'Authorization: Bearer <token>' header is required")
    raise ApiError(401, "a valid 'Authorization: Bearer <token>' header is required "
                        "(or a connection from root on this host)")


def json_body() -> Any:
    """The request's JSON body (None when it is not JSON); 400 for JSON that cannot be read."""
    if not request.is_json:
        return None
    data = request.get_data(cache=True)
    if len(data) > MAX_BODY:
        raise ApiError(413, f"body: larger than {MAX_BODY} bytes", "body")
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise ApiError(400, "body: not valid JSON (or nested too deeply)", "body") from None


def window(ctx: ApiContext) -> tuple[float, float] | None:
    """(start, stop) from the query, or None for "since boot"."""
    start, stop = request.args.get("start"), request.args.get("stop")
    if not start and not stop:
        return None
    now = time.time()
    a = parse_time(start, "start", now) if start else boot_time(ctx)
    b = parse_time(stop, "stop", now) if stop else now
    if b < a:
        raise ApiError(400, "stop: before start", "stop")
    return a, b


def boot_time(ctx: ApiContext) -> float:
    snap = ctx.live.latest()
    try:
        btime = parse_stat(snap.stat).btime if snap.stat else None
    except ValueError:
        btime = None
    if btime is None:
        raise ApiError(503, "boot time unknown (/proc/stat has no btime)", "start")
    return float(btime)


def open_store(ctx: ApiContext) -> HistoryStore:
    if ctx.history is None:
        raise ApiError(503, "history is not enabled: windows need the history store "
                            "(history: section of the configuration)", "start")
    try:
        return HistoryStore.open(ctx.history, create=False, busy_timeout=QUERY_BUSY_TIMEOUT)
    except HistoryError as err:
        raise ApiError(503, str(err)) from err


# --------------------------------------------------------------------------
# writing an affinity
# --------------------------------------------------------------------------

#: errno of a refused smp_affinity write -> HTTP status.
WRITE_STATUS = {
    errno.EIO: 409,        # kernel-managed / per-CPU IRQ: its affinity is not ours to set
    errno.EPERM: 409,
    errno.EACCES: 409,
    errno.EROFS: 409,
    errno.ENOSPC: 409,     # no free vector on the target CPUs
    errno.EBUSY: 409,
    errno.ENOENT: 404,     # the IRQ vanished meanwhile
    errno.EINVAL: 422,     # the kernel does not accept this mask (no online CPU in it)
    errno.ERANGE: 422,
    errno.EOVERFLOW: 422,
}


def mask_value(key: str, value: object) -> int:
    """A CPU list (``cpus``) or a hex mask (``mask``, ``cpu``) from a client."""
    if not isinstance(value, str):
        raise ApiError(400, f"{key}: must be a string", key)
    try:
        return parse_cpulist(value) if key == "cpus" else parse_mask(value)
    except MaskError:
        form = "a CPU list such as 0-3,8" if key == "cpus" else "a hex CPU mask such as 1 or f"
        raise ApiError(400, f"{key}: expected {form}, got {echo(value)}", key) from None


def set_affinity(ctx: ApiContext, irq: int, mask: int, parameter: str) -> dict[str, Any]:
    """Write smp_affinity and pin the IRQ (the balancer leaves it until released)."""
    if mask == 0:
        raise ApiError(400, f"{parameter}: names no CPU", parameter)
    online = online_cpus(ctx)
    if mask & ~online:
        raise ApiError(400, f"{parameter}: CPU {format_cpulist(mask & ~online)} not online "
                            f"(online: {format_cpulist(online)})", parameter)
    balancer = ctx.balancer
    # Written and pinned under the balancer's lock: a pass running between the write and
    # the pin would write its own placement over the client's mask.
    with getattr(balancer, "lock", None) or contextlib.nullcontext():
        disown = getattr(balancer, "disown", None)
        if disown is not None:
            disown(irq)  # our own write, not a foreign one (engine/foreign.py)
        result = write_smp_affinity(ctx.root, irq, mask)
        if result.errno:
            status = WRITE_STATUS.get(result.errno, 409)
            raise ApiError(status,
                           f"the kernel refused {result.text} for IRQ {irq}: {result.reason}")
        pin = getattr(balancer, "pin_irq", None)
        if pin is not None:
            pin(irq)  # at once; the registry below persists the pin (and pins again)
    ctx.overrides.set(irq, mask)
    ctx.log.info("API: IRQ %d pinned to %s", irq, format_cpulist(mask))
    return {"irq": irq, "mask": format_mask(mask), "cpus": format_cpulist(mask), "override": True,
            "written": result.text}
