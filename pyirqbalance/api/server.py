"""REST API: Flask routes served by waitress on threads of the daemon process.

The balancing loop never waits for the API: each pass hands its snapshot to
:class:`LiveState` (``on_pass``, a lock and a list append), and requests
parse that snapshot, query the history store on their own connection, or
read /proc/irq through :class:`~pyirqbalance.kernel.sysroot.SysRoot`. Requests that
change state (``PUT``/``DELETE``) need ``Authorization: Bearer <token>``,
the token being the content of a root-only file. Every error is a JSON
object ``{"error": ..., "parameter": ...}`` with a 4xx/5xx status; no
traceback ever reaches a client. See docs/api.md for the endpoint reference.
"""

from __future__ import annotations

import errno
import hmac
import logging
import math
import os
import re
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import waitress.server
from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from .. import __version__
from ..engine.model import PassReport, Snapshot
from ..errors import PyirqbalanceError
from ..history.deltas import counter_delta
from ..history.recorder import boot_identity, read_boot_id
from ..history.store import HistoryConfig, HistoryError, HistoryStore, iso_time
from ..kernel.cpumask import (
    MaskError,
    cpus_of,
    format_cpulist,
    format_mask,
    parse_cpulist,
    parse_mask,
)
from ..kernel.procinterrupts import Interrupts, ParseError, parse_interrupts
from ..kernel.procirq import read_irq_affinity, write_smp_affinity
from ..kernel.procstat import parse_stat
from ..kernel.sysfs import parse_strict_cpulist
from ..kernel.sysroot import KernelReadError, SysRoot
from ..service.explain import machine_report
from .metrics import CONTENT_TYPE, Metrics
from .overrides import OverrideRegistry
from .report import build_report, counts_from_interrupts, cpu_groups

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
#: Bytes of pass snapshots kept for /get_interrupt_by_cpu (older ones: history store).
LIVE_BUDGET = 32 << 20
LIVE_MAX_AGE = 3600.0


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


class ApiError(PyirqbalanceError):
    """A request the API answers with ``status`` and a JSON error."""

    def __init__(self, status: int, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.parameter = parameter


def load_token(path: str) -> str:
    """The bearer token: the content of a regular file only root may read."""
    try:
        st = os.stat(path)
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    except OSError as err:
        raise ApiConfigError(f"api token file {path}: {err.strerror}") from err
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


_RELATIVE = re.compile(r"-([0-9]+(?:\.[0-9]+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, parameter: str, now: float | None = None) -> float:
    """Epoch seconds, ISO-8601 (naive = local time) or ``-N[smhd]`` (before now)."""
    now = time.time() if now is None else now
    t = text.strip()
    m = _RELATIVE.fullmatch(t)
    if m:
        return now - float(m[1]) * _UNITS[m[2]]
    try:
        value = float(t)
    except ValueError:
        pass
    else:
        if math.isfinite(value) and value >= 0:
            return value
        raise ApiError(400, f"{parameter}: not a time: {text!r}", parameter)
    try:
        return datetime.fromisoformat(t).timestamp()
    except (ValueError, OverflowError, OSError):
        raise ApiError(
            400, f"{parameter}: expected ISO-8601, epoch seconds or -N[smhd], got {text!r}",
            parameter) from None


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
                self._bytes > LIVE_BUDGET or snap.taken_at - self._snapshots[0].taken_at > LIVE_MAX_AGE
            ):
                self._bytes -= len(self._snapshots.popleft().interrupts)

    def refresh(self) -> Snapshot:
        """Read /proc now (no daemon passes feed this process: the client's local mode)."""
        try:
            data = self.root.read_bytes(self.root.proc("interrupts"))
        except KernelReadError as err:
            raise ApiError(503, f"cannot read /proc/interrupts: {err}") from err
        snap = Snapshot(time.time(), data, self.root.try_read_text(self.root.proc("stat")))
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
        try:
            parsed = parse_interrupts(snap.interrupts.decode("utf-8", "replace"))
        except ParseError as err:
            raise ApiError(503, f"cannot parse /proc/interrupts: {err}") from err
        self._parsed = (id(snap), parsed)
        return parsed


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


# --------------------------------------------------------------------------
# request helpers
# --------------------------------------------------------------------------


def _int_param(name: str, value: str | None, *, required: bool = True, default: int | None = None,
               minimum: int | None = 0) -> int:
    if value is None or value == "":
        if required:
            raise ApiError(400, f"{name}: required", name)
        return default  # type: ignore[return-value]
    try:
        n = int(value, 10)
    except ValueError:
        raise ApiError(400, f"{name}: not a decimal integer: {value!r}", name) from None
    if minimum is not None and n < minimum:
        raise ApiError(400, f"{name}: must be >= {minimum}, got {n}", name)
    return n


def _float_param(name: str, value: str | None, default: float, lo: float, hi: float) -> float:
    if value is None or value == "":
        return default
    try:
        x = float(value)
    except ValueError:
        raise ApiError(400, f"{name}: not a number: {value!r}", name) from None
    if not (lo <= x <= hi):
        raise ApiError(400, f"{name}: must be between {lo:g} and {hi:g}, got {value}", name)
    return x


def _online_cpus(ctx: ApiContext) -> int:
    b = ctx.balancer
    if b is not None and b.online_cpus:
        return b.online_cpus
    line = ctx.root.read_first_line(ctx.root.sys("devices", "system", "cpu", "online"))
    mask = parse_strict_cpulist(line)
    if mask is None:
        raise ApiError(503, "cannot read the online CPUs")
    return mask


def _require_irq(ctx: ApiContext, text: str) -> int:
    irq = _int_param("irq", text)
    if not ctx.root.isdir(ctx.root.proc("irq", str(irq))):
        raise ApiError(404, f"IRQ {irq} does not exist", "irq")
    return irq


def _authorize(ctx: ApiContext) -> None:
    if ctx.token is None:
        raise ApiError(403, "state-changing requests are disabled: no api token_file is configured")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), ctx.token.encode()):
        raise ApiError(401, "a valid 'Authorization: Bearer <token>' header is required")


#: errno of a refused smp_affinity write -> HTTP status.
_WRITE_STATUS = {
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


def _window(ctx: ApiContext) -> tuple[float, float] | None:
    """(start, stop) from the query, or None for "since boot"."""
    start, stop = request.args.get("start"), request.args.get("stop")
    if not start and not stop:
        return None
    now = time.time()
    a = parse_time(start, "start", now) if start else _boot_time(ctx)
    b = parse_time(stop, "stop", now) if stop else now
    if b < a:
        raise ApiError(400, "stop: before start", "stop")
    return a, b


def _boot_time(ctx: ApiContext) -> float:
    snap = ctx.live.latest()
    try:
        btime = parse_stat(snap.stat).btime if snap.stat else None
    except ValueError:
        btime = None
    if btime is None:
        raise ApiError(503, "boot time unknown (/proc/stat has no btime)", "start")
    return float(btime)


def _store(ctx: ApiContext) -> HistoryStore:
    if ctx.history is None:
        raise ApiError(503, "history is not enabled: windows need the history store "
                            "(history: section of the configuration)", "start")
    try:
        return HistoryStore.open(ctx.history, create=False)
    except HistoryError as err:
        raise ApiError(503, str(err)) from err


def _live_summary(ctx: ApiContext) -> dict[str, Any]:
    snap = ctx.live.latest()
    parsed = ctx.live.interrupts(snap)
    counts, names = counts_from_interrupts(parsed)
    per_cpu = dict.fromkeys(parsed.cpus, 0)
    for cpus in counts.values():
        for c, n in cpus.items():
            per_cpu[c] += n
    try:
        st = parse_stat(snap.stat) if snap.stat else None
    except ValueError:
        st = None
    btime = float(st.btime) if st is not None and st.btime is not None else None
    return {
        "source": "live",
        "start": iso_time(btime), "stop": iso_time(snap.taken_at),
        "covered_from": iso_time(btime), "covered_to": iso_time(snap.taken_at),
        "reboots": 0,
        "boots": [{"boot_id": boot_identity(read_boot_id(ctx.root), btime), "btime": iso_time(btime)}],
        "wraps": None, "resets": None,
        "total": sum(per_cpu.values()),
        "per_cpu": {str(c): n for c, n in per_cpu.items()},
        "irqs": [{"irq": irq, "name": names[irq], "total": sum(cpus.values()),
                  "per_cpu": {str(c): n for c, n in cpus.items() if n}}
                 for irq, cpus in counts.items()],
        "irq_jiffies": {str(c.cpu): c.irq for c in st.cpus} if st else {},
        "softirq_jiffies": {str(c.cpu): c.softirq for c in st.cpus} if st else {},
        "notes": ["counts since boot, from the current /proc/interrupts"],
    }


def _decision(ctx: ApiContext, irq: int) -> dict[str, Any] | None:
    if ctx.balancer is None:
        return None
    for d in ctx.balancer.decisions():
        if d.irq == irq:
            return {
                "class": d.irq_class, "level": d.level, "node": d.node,
                "assigned": d.assigned,
                "target_mask": None if d.target_mask is None else format_mask(d.target_mask),
                "target_cpus": None if d.target_mask is None else format_cpulist(d.target_mask),
                "reason": d.reason,
            }
    return None


def _set_affinity(ctx: ApiContext, irq: int, mask: int, parameter: str) -> dict[str, Any]:
    if mask == 0:
        raise ApiError(400, f"{parameter}: names no CPU", parameter)
    online = _online_cpus(ctx)
    if mask & ~online:
        raise ApiError(400, f"{parameter}: CPU {format_cpulist(mask & ~online)} not online "
                            f"(online: {format_cpulist(online)})", parameter)
    result = write_smp_affinity(ctx.root, irq, mask)
    if result.errno:
        status = _WRITE_STATUS.get(result.errno, 409)
        raise ApiError(status, f"the kernel refused {result.text} for IRQ {irq}: {result.reason}")
    ctx.overrides.set(irq, mask)
    ctx.log.info("API: IRQ %d pinned to %s", irq, format_cpulist(mask))
    return {"irq": irq, "mask": format_mask(mask), "cpus": format_cpulist(mask), "override": True,
            "written": result.text}


# --------------------------------------------------------------------------
# the application
# --------------------------------------------------------------------------


def create_app(ctx: ApiContext) -> Flask:
    """The WSGI application: seed-compatible routes at / and /api/v1, v1-only extras."""
    app = Flask("pyirqbalance.api")
    app.json.sort_keys = False
    common = Blueprint("common", __name__)
    v1 = Blueprint("v1only", __name__)

    @common.get("/irqsummary")
    def irqsummary() -> Any:
        window = _window(ctx)
        if window is None:
            return jsonify(_live_summary(ctx))
        with _store(ctx) as store:
            try:
                summary = store.summary(*window)
            except HistoryError as err:
                raise ApiError(503, str(err)) from err
        return jsonify({"source": "history", **summary.to_json()})

    @common.get("/irqsummary/<irq>")
    def irq_show(irq: str) -> Any:
        n = _require_irq(ctx, irq)
        parsed = ctx.live.interrupts()
        row = parsed.by_irq().get(n)
        aff = read_irq_affinity(ctx.root, n)
        override = ctx.overrides.get(n)
        fmt = lambda m: None if m is None else format_mask(m)  # noqa: E731
        lst = lambda m: None if m is None else format_cpulist(m)  # noqa: E731
        return jsonify({
            "irq": n,
            "name": row.actions if row else None,
            "chip": row.chip if row else None,
            "hwirq": row.hwirq if row else None,
            "total": row.total if row else None,
            "per_cpu": {str(c): v for c, v in zip(parsed.cpus, row.counts)} if row else None,
            "smp_affinity": fmt(aff.smp_affinity), "smp_affinity_list": lst(aff.smp_affinity),
            "effective_affinity": fmt(aff.effective_affinity),
            "effective_affinity_list": lst(aff.effective_affinity_list or aff.effective_affinity),
            "affinity_hint": fmt(aff.affinity_hint),
            "node": aff.node,
            "writable": aff.writable,
            "override": None if override is None else {"mask": format_mask(override),
                                                       "cpus": format_cpulist(override)},
            "decision": _decision(ctx, n),
        })

    @common.put("/irqsummary/<irq>")
    def irq_set(irq: str) -> Any:
        _authorize(ctx)
        n = _require_irq(ctx, irq)
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ApiError(400, 'body: a JSON object {"cpus": "0-3"} or {"mask": "f"} is required',
                           "body")
        keys = [k for k in ("cpus", "mask") if k in body]
        if len(keys) != 1:
            raise ApiError(400, 'body: give exactly one of "cpus" and "mask"', "body")
        key = keys[0]
        value = body[key]
        if not isinstance(value, str):
            raise ApiError(400, f"{key}: must be a string", key)
        try:
            mask = parse_cpulist(value) if key == "cpus" else parse_mask(value)
        except MaskError as err:
            raise ApiError(400, f"{key}: {err}", key) from None
        return jsonify(_set_affinity(ctx, n, mask, key))

    @common.delete("/irqsummary/<irq>")
    def irq_release(irq: str) -> Any:
        _authorize(ctx)
        n = _int_param("irq", irq)
        if not ctx.overrides.release(n):
            raise ApiError(404, f"IRQ {n} has no override to release", "irq")
        ctx.log.info("API: IRQ %d released to the balancer", n)
        return jsonify({"irq": n, "override": False})

    @common.put("/set_affinity/<irq>")
    def set_affinity(irq: str) -> Any:
        _authorize(ctx)
        n = _require_irq(ctx, irq)
        text = request.args.get("cpu")
        if not text:
            raise ApiError(400, "cpu: required (a hex CPU mask, e.g. cpu=f)", "cpu")
        try:
            mask = parse_mask(text)
        except MaskError as err:
            raise ApiError(400, f"cpu: {err}", "cpu") from None
        return jsonify(_set_affinity(ctx, n, mask, "cpu"))

    @common.get("/get_current_distribution")
    def distribution() -> Any:
        fmt = request.args.get("format", "json")
        if fmt not in ("json", "raw"):
            raise ApiError(400, f"format: must be json or raw, got {fmt!r}", "format")
        snap = ctx.live.latest()
        if fmt == "raw":
            return Response(snap.interrupts, mimetype="text/plain")
        parsed = ctx.live.interrupts(snap)
        return jsonify({
            "taken_at": iso_time(snap.taken_at),
            "cpus": list(parsed.cpus),
            "rows": [{"label": r.label, "irq": r.irq, "name": r.actions, "chip": r.chip,
                      "hwirq": r.hwirq, "total": r.total, "counts": list(r.counts)}
                     for r in parsed.rows],
        })

    @common.get("/get_interrupt_by_cpu")
    def by_cpu() -> Any:
        cpu = _int_param("cpu", request.args.get("cpu"))
        seconds = _float_param("second", request.args.get("second"), 60.0, 1e-3, 366 * 86400.0)
        return jsonify(_by_cpu(ctx, cpu, seconds))

    @v1.get("/report")
    def report() -> Any:
        threshold = _float_param("threshold", request.args.get("threshold"), 80.0, 0.0, 100.0)
        group = request.args.get("group", "auto")
        if group not in ("auto", "cpu", "node", "package"):
            raise ApiError(400, f"group: must be auto, cpu, node or package, got {group!r}", "group")
        window = _window(ctx)
        if window is None:
            counts, names = counts_from_interrupts(ctx.live.interrupts())
            source = "since boot (live)"
        else:
            with _store(ctx) as store:
                s = store.summary(*window)
            counts = {t.irq: t.per_cpu for t in s.irqs}
            names = {t.irq: t.name for t in s.irqs}
            source = f"history {iso_time(s.covered_from)} .. {iso_time(s.covered_to)}"
        b = ctx.balancer
        decisions = b.decisions() if b is not None else None
        if group == "auto":
            ncpu = len(cpus_of(_online_cpus(ctx)))
            group = "cpu" if b is None or ncpu <= 32 else "node"
        groups = cpu_groups(b, group) if b is not None and group != "cpu" else None
        rep = build_report(counts, names, threshold=threshold, decisions=decisions, groups=groups,
                           group=group if groups is not None else "cpu", source=source)
        return jsonify(rep.to_json())

    @v1.get("/topology")
    def topology() -> Any:
        if ctx.balancer is None or ctx.balancer.topo is None:
            raise ApiError(503, "no balancer runs in this process: topology unknown")
        rep = machine_report(ctx.balancer)
        return jsonify({"cpus": rep["cpus"], "topology": rep["topology"]})

    @v1.get("/health")
    def health() -> Any:
        b = ctx.balancer
        last = ctx.live.last_report
        err = ctx.history_error()
        return jsonify({
            "status": "ok",
            "version": __version__,
            "cycle": b.cycle if b is not None else None,
            "last_pass": iso_time(last.snapshot.taken_at) if last and last.snapshot else None,
            "history": {"enabled": ctx.history is not None and err is None,
                        "path": ctx.history.path if ctx.history else None, "error": err},
            "overrides": {str(i): format_cpulist(m) for i, m in ctx.overrides.items().items()},
            "writes_enabled": ctx.token is not None,
        })

    @app.get("/metrics")
    def metrics() -> Any:
        if ctx.metrics is None:
            raise ApiError(404, "metrics are not enabled in this process")
        return Response(ctx.metrics.render(), content_type=CONTENT_TYPE)

    app.register_blueprint(common)
    app.register_blueprint(common, url_prefix="/api/v1", name="v1")
    app.register_blueprint(v1, url_prefix="/api/v1")

    @app.errorhandler(ApiError)
    def on_api_error(err: ApiError) -> Any:
        body: dict[str, Any] = {"error": err.message}
        if err.parameter is not None:
            body["parameter"] = err.parameter
        resp = jsonify(body)
        resp.status_code = err.status
        if err.status == 401:
            resp.headers["WWW-Authenticate"] = "Bearer"
        return resp

    @app.errorhandler(HTTPException)
    def on_http_error(err: HTTPException) -> Any:
        resp = jsonify({"error": f"{err.name}: {err.description}"})
        resp.status_code = err.code or 500
        return resp

    @app.errorhandler(Exception)
    def on_crash(err: Exception) -> Any:
        ctx.log.error("API: %s %s failed", request.method, request.path, exc_info=err)
        resp = jsonify({"error": f"internal error ({type(err).__name__}); see the daemon log"})
        resp.status_code = 500
        return resp

    return app


def _by_cpu(ctx: ApiContext, cpu: int, seconds: float) -> dict[str, Any]:
    latest = ctx.live.latest()
    parsed = ctx.live.interrupts(latest)
    if cpu not in parsed.cpus:
        raise ApiError(400, f"cpu: CPU {cpu} is not in /proc/interrupts "
                            f"(CPUs {format_cpulist(sum(1 << c for c in parsed.cpus))})", "cpu")
    snaps = ctx.live.snapshots()
    want = latest.taken_at - seconds
    older = [s for s in snaps if s.taken_at <= want]
    notes = []
    if older:
        base = older[-1]
    elif ctx.history is not None:
        with _store(ctx) as store:
            s = store.summary(want, latest.taken_at)
        per_irq = {t.irq: t.per_cpu.get(cpu, 0) for t in s.irqs if t.per_cpu.get(cpu)}
        span = (s.covered_to - s.covered_from) if s.covered_from is not None else 0.0
        return _by_cpu_body(cpu, per_irq, {t.irq: t.name for t in s.irqs},
                            s.covered_from, s.covered_to, span, "history", list(s.notes))
    else:
        base = snaps[0]
        notes.append(f"only {latest.taken_at - base.taken_at:.0f} s of passes are kept in memory "
                     "and history is off: the interval is shorter than asked")
    before = ctx.live.interrupts(base) if base is not latest else None
    old = {r.irq: dict(zip(before.cpus, r.counts)).get(cpu) for r in before.rows
           if r.irq is not None} if before is not None else {}
    per_irq, names = {}, {}
    k = parsed.cpus.index(cpu)
    for r in parsed.rows:
        if r.irq is None or k >= len(r.counts):
            continue
        prev = old.get(r.irq)
        n = counter_delta(prev, r.counts[k])[0] if prev is not None else (
            r.counts[k] if before is None else 0)
        if n:
            per_irq[r.irq] = n
        names[r.irq] = r.actions
    if before is None:
        notes.append("one snapshot only: counts since boot")
    return _by_cpu_body(cpu, per_irq, names, base.taken_at, latest.taken_at,
                        latest.taken_at - base.taken_at, "live", notes)


def _by_cpu_body(cpu: int, per_irq: dict[int, int], names: dict[int, str], t0: float | None,
                 t1: float | None, span: float, source: str, notes: list[str]) -> dict[str, Any]:
    total = sum(per_irq.values())
    return {
        "cpu": cpu, "source": source, "from": iso_time(t0), "to": iso_time(t1),
        "seconds": span, "total": total,
        "per_second": total / span if span > 0 else None,
        "irqs": [{"irq": i, "name": names.get(i, ""), "count": n}
                 for i, n in sorted(per_irq.items(), key=lambda kv: (-kv[1], kv[0]))],
        "notes": notes,
    }


# --------------------------------------------------------------------------
# the daemon service
# --------------------------------------------------------------------------


class ApiService:
    """Serves :func:`create_app` on every ``listen`` entry, each on its own thread.

    ``start``/``stop`` with the daemon; ``on_pass`` is the per-pass listener.
    """

    def __init__(self, ctx: ApiContext, config: ApiConfig) -> None:
        self.ctx = ctx
        self.config = config
        self.app = create_app(ctx)
        self._servers: list[Any] = []
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

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

    def _server(self, app: Any, entry: str) -> Any:
        opts: dict[str, Any] = {"threads": self.config.threads, "ident": "pyirqbalance",
                                "clear_untrusted_proxy_headers": True, "asyncore_loop_timeout": 0.2}
        if entry.startswith("unix:"):
            opts.update(unix_socket=entry[5:], unix_socket_perms=self.config.unix_socket_perms)
        else:
            host, sep, port = entry.rpartition(":")
            if not sep or not port.isdigit():
                raise ApiConfigError(f"api listen {entry!r}: expected host:port or unix:/path")
            opts.update(host=host.strip("[]") or "127.0.0.1", port=int(port))
        try:
            return waitress.server.create_server(app, **opts)
        except (OSError, ValueError) as err:
            raise ApiConfigError(f"api listen {entry}: {err}") from err

    def start(self) -> None:
        try:
            for entry in self.config.listen:
                self._servers.append(self._server(self.app, entry))
            if self.config.metrics_listen and self.ctx.metrics is not None:
                self._servers.append(self._server(_metrics_app(self.ctx.metrics),
                                                  self.config.metrics_listen))
        except ApiConfigError:
            self.stop()
            raise
        self._stopping.clear()
        for srv in self._servers:
            t = threading.Thread(target=self._serve, args=(srv,), name="pyirqbalance-api",
                                 daemon=True)
            t.start()
            self._threads.append(t)
        self.ctx.log.info("API listening on %s", ", ".join(self.addresses))

    def _serve(self, srv: Any) -> None:
        # waitress's own run() loops until its map is empty; closing the sockets
        # from another thread would pull them from under select(). Polling in
        # short rounds lets stop() end the loop, and the sockets are closed here.
        try:
            while not self._stopping.is_set():
                waitress.server.wasyncore.loop(timeout=0.2, map=srv._map, count=1,
                                               use_poll=srv.adj.asyncore_use_poll)
        finally:
            srv.task_dispatcher.shutdown(timeout=5)
            waitress.server.wasyncore.close_all(srv._map)

    def stop(self) -> None:
        self._stopping.set()
        for t in self._threads:
            t.join(timeout=10)
        for srv in self._servers:
            if not self._threads:  # never started: close here
                waitress.server.wasyncore.close_all(srv._map)
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
