"""The seed servers' wire contract on the unversioned paths, so their clients work unchanged.

irqRestServer (menu client, ``http://localhost:8001``): ``/irqsummary`` and
``/irqsummary/<irq>`` answer ``{"message": ..., "irq_data": {...}}``,
``{"irq_id": N, "current affinity": "..."}`` and take the form field ``cpu``.
irqbalancing's irq_server (``--url http://localhost --port 5000``):
``/get_current_distribution`` (raw /proc/interrupts by default, or
``{"CPU0.132": n, ..., "cpuCount": N}``), ``/get_interrupt_by_cpu`` (per-CPU
deltas over a window measured now) and ``PUT /set_affinity/<irq>?cpu=`` (``Ok``).
Every affinity set here is pinned, as through ``/api/v1``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request

from ..engine.model import Snapshot
from ..history.deltas import counter_delta
from ..history.store import HistoryError, WindowSummary
from ..kernel.procinterrupts import Interrupts
from ..kernel.procstat import parse_stat
from .context import (
    ApiContext,
    ApiError,
    TimeFormatError,
    authorize,
    digits,
    echo,
    irq_exists,
    json_body,
    mask_value,
    number,
    open_store,
    parse_snapshot,
    parse_time,
    set_affinity,
)
from .routes_v1 import irq_details, irq_release

__all__ = ["MAX_SECONDS", "cpu_deltas", "seed_blueprint"]

#: Longest /get_interrupt_by_cpu window (the request waits for it).
MAX_SECONDS = 60.0
_INVALID_IRQ = "invalid irq-id"


def seed_blueprint(ctx: ApiContext) -> Blueprint:
    """Routes mounted at ``/``."""
    bp = Blueprint("seed", __name__)
    bp.add_url_rule("/irqsummary", "irqsummary", view_func=lambda: jsonify(_summary(ctx)))
    bp.add_url_rule("/irqsummary/<irq>", "irqsummary_irq",
                    view_func=lambda irq: _irq_show(ctx, irq))
    bp.add_url_rule("/irqsummary/<irq>", "irq_set", methods=["PUT"],
                    view_func=lambda irq: jsonify(_irq_set(ctx, irq)))
    bp.add_url_rule("/irqsummary/<irq>", "irq_release", methods=["DELETE"],
                    view_func=lambda irq: jsonify(irq_release(ctx, irq)))
    bp.add_url_rule("/set_affinity/<irq>", "set_affinity_irq", methods=["PUT"],
                    view_func=lambda irq: _set_affinity(ctx, irq))
    bp.add_url_rule("/get_current_distribution", "get_current_distribution",
                    view_func=lambda: _distribution(ctx))
    bp.add_url_rule("/get_interrupt_by_cpu", "get_interrupt_by_cpu",
                    view_func=lambda: jsonify(_by_cpu(ctx)))
    return bp


# --------------------------------------------------------------------------
# irqRestServer
# --------------------------------------------------------------------------


def _local(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def irq_data(parsed_cpus: list[int], counts: dict[int, dict[int, int]]) -> dict[str, list[int]]:
    """``{"<irq>": [cpu0, cpu1, ...], ..., "total": [...]}`` in CPU order."""
    data = {str(irq): [per.get(c, 0) for c in parsed_cpus] for irq, per in sorted(counts.items())}
    data["total"] = [sum(per.get(c, 0) for per in counts.values()) for c in parsed_cpus]
    return data


def _since_boot(ctx: ApiContext) -> dict[str, Any]:
    snap = ctx.live.latest()
    parsed = ctx.live.interrupts(snap)
    counts = {r.irq: parsed.per_cpu(r) for r in parsed.rows if r.irq is not None}
    try:
        btime = parse_stat(snap.stat).btime if snap.stat else None
    except ValueError:
        btime = None
    boot = _local(btime) if btime is not None else "unknown"
    return {"message": f"No start date specified.  Returning values since last reboot: {boot}",
            "irq_data": irq_data(list(parsed.cpus), counts), "cpus": list(parsed.cpus)}


def _times(ctx: ApiContext) -> tuple[float, float] | str:
    """(start, stop), or the message the seed server gave for a date it could not read."""
    now = time.time()
    given = {k: request.args.get(k) for k in ("start", "stop")}
    values = {}
    for key, text in given.items():
        if not text:
            continue
        try:
            values[key] = parse_time(text, key, now)
        except TimeFormatError:
            return f"{key} is not a valid format (%m%d%H%M)"
    start, stop = values["start"], values.get("stop", now)
    if start > stop:
        return "start is greater than stop"
    return start, stop


def _window_message(s: WindowSummary) -> str:
    parts = [f"IRQ data from {_local(s.start)} to {_local(s.stop)}"]
    if s.covered_from is not None and s.covered_from > s.start + 1:
        parts.append(f"the window starts before the first recorded sample: summed from "
                     f"{_local(s.covered_from)}")
    if s.reboots:
        parts.append(f"the window spans {s.reboots} reboot(s): counts are summed per boot")
    parts += list(s.notes)
    return "; ".join(parts)


def _summary(ctx: ApiContext) -> dict[str, Any]:
    if not request.args.get("start"):
        return _since_boot(ctx)     # the seed server ignored a stop without a start
    times = _times(ctx)
    if isinstance(times, str):
        return {"message": times}
    with open_store(ctx) as store:
        try:
            s = store.summary(*times)
        except HistoryError as err:
            raise ApiError(503, str(err)) from err
    if not s.samples:
        return {"message": "Not enough data to produce interrupt count (no recorded sample "
                           "in this window)"}
    cpus = sorted(set(ctx.live.interrupts().cpus) | set(s.per_cpu))
    counts = {t.irq: dict(t.per_cpu) for t in s.irqs}
    return {"message": _window_message(s), "irq_data": irq_data(cpus, counts), "cpus": cpus}


def _raw_affinity(ctx: ApiContext, irq: int) -> str:
    text = ctx.root.try_read_text(ctx.root.irq_file(irq, "smp_affinity"))
    return (text or "").strip()


def _irq_show(ctx: ApiContext, irq: str) -> Any:
    n = digits("irq", irq)
    if not irq_exists(ctx, n):
        resp = jsonify({"message": _INVALID_IRQ})
        resp.status_code = 404
        return resp
    return jsonify({"irq_id": n, "current affinity": _raw_affinity(ctx, n),
                    **irq_details(ctx, n)})


def _requested_mask(ctx: ApiContext) -> tuple[int, str]:
    body = json_body()
    if isinstance(body, dict):
        keys = [k for k in ("cpus", "mask", "cpu") if k in body]
        if len(keys) != 1:
            raise ApiError(400, 'give exactly one of "cpu" (hex mask), "cpus" and "mask"', "body")
        return mask_value(keys[0], body[keys[0]]), keys[0]
    if body is not None:
        raise ApiError(400, 'body: a JSON object {"cpus": "0-3"} or {"mask": "f"}, or the '
                            "form field cpu", "body")
    value = request.form.get("cpu") or request.args.get("cpu")
    if not value:
        raise ApiError(400, "No cpu identified (form field cpu: a hex CPU mask, 1 = CPU0)", "cpu")
    return mask_value("cpu", value), "cpu"


def _irq_set(ctx: ApiContext, irq: str) -> dict[str, Any]:
    authorize(ctx)
    n = digits("irq", irq)
    if not irq_exists(ctx, n):
        raise ApiError(404, _INVALID_IRQ, "irq")
    mask, key = _requested_mask(ctx)
    old = _raw_affinity(ctx, n)
    written = set_affinity(ctx, n, mask, key)
    return {"message": "Affinity changed", "old affinity": old,
            "new affinity": _raw_affinity(ctx, n), "irq_id": n, **written}


# --------------------------------------------------------------------------
# irqbalancing's irq_server
# --------------------------------------------------------------------------


def _set_affinity(ctx: ApiContext, irq: str) -> Response:
    authorize(ctx)
    n = digits("irq", irq)
    if not irq_exists(ctx, n):
        raise ApiError(404, f"Invalid irq {n}", "irq")
    text = request.args.get("cpu")
    if not text:
        raise ApiError(400, "cpu: required (a hex CPU mask, e.g. cpu=1 for CPU0)", "cpu")
    set_affinity(ctx, n, mask_value("cpu", text), "cpu")
    return Response("Ok", mimetype="text/plain")


def _cells(parsed: Interrupts) -> Iterator[tuple[str, int, int]]:
    """(row label, CPU, count) of every per-CPU cell."""
    for row in parsed.rows:
        for cpu, n in zip(parsed.cpus, row.counts):
            yield row.label, cpu, n


def _distribution(ctx: ApiContext) -> Response:
    fmt = request.args.get("format", "raw")
    if fmt not in ("raw", "json"):
        raise ApiError(400, f"format: must be raw or json, got {echo(fmt)}", "format")
    snap = ctx.live.read_now()
    if fmt == "raw":
        return Response(snap.interrupts, mimetype="text/plain")
    parsed = parse_snapshot(snap)
    data: dict[str, int] = {f"CPU{cpu}.{label}": n for label, cpu, n in _cells(parsed)}
    data["cpuCount"] = len(parsed.cpus)
    return jsonify(data)


def cpu_deltas(before: Interrupts, after: Interrupts) -> dict[int, int]:
    """Interrupts each CPU handled between two readings (every row, wraps counted)."""
    old = {(label, cpu): n for label, cpu, n in _cells(before)}
    out = dict.fromkeys(after.cpus, 0)
    for label, cpu, n in _cells(after):
        prev = old.get((label, cpu))
        out[cpu] += counter_delta(prev, n)[0] if prev is not None else 0
    return out


def _measure(ctx: ApiContext, seconds: float) -> tuple[Snapshot, Snapshot]:
    first = ctx.live.read_now()
    time.sleep(seconds)  # this request's thread only: passes go on
    return first, ctx.live.read_now()


def _by_cpu(ctx: ApiContext) -> dict[str, int]:
    which = request.args.get("cpu", "all")
    seconds = number("second", request.args.get("second"), 5.0, 0.0, MAX_SECONDS)
    cpus = ctx.live.interrupts().cpus
    cpu = None if which == "all" else digits("cpu", which)
    if cpu is not None and cpu not in cpus:
        raise ApiError(404, f"CPU {cpu} not found", "cpu")
    first, second = _measure(ctx, seconds)
    deltas = cpu_deltas(parse_snapshot(first), parse_snapshot(second))
    if cpu is not None:
        return {f"CPU{cpu}": deltas.get(cpu, 0)}
    return {f"CPU{c}": n for c, n in sorted(deltas.items())}
