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

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any, NamedTuple

from flask import Blueprint, Response, request

from ..engine.model import Snapshot
from ..history.deltas import counter_delta
from ..history.recorder import read_boot_id, reading_from_snapshot
from ..history.records import HistoryError, LastReading
from ..kernel.cpumask import format_cpulist
from ..kernel.procinterrupts import InterruptRow, Interrupts
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
    online_cpus,
    open_store,
    parse_snapshot,
    parse_time,
    set_affinity,
)
from .gate import FIRST_READING_KEY, REFUSED_KEY
from .routes_v1 import irq_details, irq_release

__all__ = ["MAX_SECONDS", "NOT_ENOUGH_DATA", "cpu_deltas", "seed_blueprint", "seed_json"]

#: Longest /get_interrupt_by_cpu window (the request's thread waits for it).
MAX_SECONDS = 3600.0
_INVALID_IRQ = "invalid irq-id"
NOT_ENOUGH_DATA = "Not enough data to produce interrupt count"
#: text/html, as the originals' Flask sent a view's plain string.
_HTML = "text/html; charset=utf-8"

_INDEX = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>pyirqbalance</title></head><body>
<h1>pyirqbalance</h1>
<p>The seed tools' routes (irqRestServer, irqbalancing) and the versioned API.</p>
<ul>
<li><a href="/irqsummary">/irqsummary</a> (start, stop: mmddHHMM), /irqsummary/&lt;irq&gt;
 (GET; PUT cpu=&lt;hex mask&gt;)</li>
<li><a href="/get_current_distribution?format=raw">/get_current_distribution?format=raw</a>,
 <a href="/get_current_distribution?format=json">?format=json</a></li>
<li><a href="/get_interrupt_by_cpu">/get_interrupt_by_cpu</a> (cpu=all|N, second=S)</li>
<li>/set_affinity/&lt;irq&gt;?cpu=&lt;hex mask&gt; (PUT)</li>
<li><a href="/api/v1/health">/api/v1/health</a>, <a href="/api/v1/report">/api/v1/report</a>,
 <a href="/metrics">/metrics</a></li>
</ul>
</body></html>
"""


def seed_json(data: Any, status: int = 200) -> Response:
    """JSON as the originals' Flask sent it: keys sorted, compact, a newline at the end."""
    body = json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n"
    return Response(body, status=status, mimetype="application/json")


def seed_blueprint(ctx: ApiContext) -> Blueprint:
    """Routes mounted at ``/``."""
    bp = Blueprint("seed", __name__)
    bp.add_url_rule("/", "index", view_func=lambda: Response(_INDEX, mimetype="text/html"))
    bp.add_url_rule("/irqsummary", "irqsummary", view_func=lambda: seed_json(_summary(ctx)))
    bp.add_url_rule("/irqsummary/<irq>", "irqsummary_irq",
                    view_func=lambda irq: _irq_show(ctx, irq))
    bp.add_url_rule("/irqsummary/<irq>", "irq_set", methods=["PUT"],
                    view_func=lambda irq: seed_json(_irq_set(ctx, irq)))
    bp.add_url_rule("/irqsummary/<irq>", "irq_release", methods=["DELETE"],
                    view_func=lambda irq: seed_json(irq_release(ctx, irq)))
    bp.add_url_rule("/set_affinity/<irq>", "set_affinity_irq", methods=["PUT"],
                    view_func=lambda irq: _set_affinity(ctx, irq))
    bp.add_url_rule("/get_current_distribution", "get_current_distribution",
                    view_func=lambda: _distribution(ctx))
    bp.add_url_rule("/get_interrupt_by_cpu", "get_interrupt_by_cpu",
                    view_func=lambda: _by_cpu(ctx))
    return bp


# --------------------------------------------------------------------------
# irqRestServer
# --------------------------------------------------------------------------


def _local(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _mmddhhmm(ts: float) -> str:
    """A time as irqRestServer showed the boot (``uptime -s``, local time): ``mmddHHMM``."""
    return datetime.fromtimestamp(ts).strftime("%m%d%H%M")


def irq_data(parsed_cpus: list[int], counts: dict[int, dict[int, int]]) -> dict[str, list[int]]:
    """``{"<irq>": [cpu0, cpu1, ...], ..., "total": [...]}`` in CPU order."""
    data = {str(irq): [per.get(c, 0) for c in parsed_cpus] for irq, per in sorted(counts.items())}
    data["total"] = [sum(per.get(c, 0) for per in counts.values()) for c in parsed_cpus]
    return data


def _btime(snap: Snapshot) -> float | None:
    try:
        btime = parse_stat(snap.stat).btime if snap.stat else None
    except ValueError:
        return None
    return float(btime) if btime is not None else None


def _since_boot(ctx: ApiContext) -> dict[str, Any]:
    snap = ctx.live.latest()
    parsed = ctx.live.interrupts(snap)
    counts = {r.irq: parsed.per_cpu(r) for r in parsed.rows if r.irq is not None}
    btime = _btime(snap)
    boot = _mmddhhmm(btime) if btime is not None else "unknown"
    return {"message": f"No start date specified.  Returning values since last reboot: {boot}",
            "irq_data": irq_data(list(parsed.cpus), counts), "cpus": list(parsed.cpus)}


#: Numbers the seed routes do not take as epoch seconds: up to 7 digits (a mistyped
#: mmddHHMM such as ``1207114``) and nothing at all, "not a valid format" as irqRestServer.
_SHORT_NUMBER = re.compile(r"[0-9]{0,7}(?:\.[0-9]*)?")


def _seed_time(text: str, key: str, now: float) -> float:
    if _SHORT_NUMBER.fullmatch(text.strip()):
        raise TimeFormatError(400, f"{key}: {echo(text)} is not a valid time", key)
    return parse_time(text, key, now)


def _times(ctx: ApiContext, now: float) -> tuple[float, float | None] | str:
    """(start, stop or None), or the message irqRestServer gave for a date it could not read."""
    values: dict[str, float | None] = {"stop": None}
    for key in ("start", "stop"):
        text = request.args.get(key)
        if text is None:
            continue
        try:
            values[key] = _seed_time(text, key, now)
        except TimeFormatError:
            return f"{key} is not a valid format (%m%d%H%M)"
    start, stop = values["start"], values["stop"]
    assert start is not None
    if stop is not None and start > stop:
        return "start is greater than stop"
    return start, stop


class _Window(NamedTuple):
    counts: dict[int, dict[int, int]]
    cpus: list[int]
    #: False: neither the store nor a live reading covers any of it.
    covered: bool
    notes: list[str]


def _live_tail(ctx: ApiContext, last: LastReading, start: float,
               counts: dict[int, dict[int, int]], notes: list[str]) -> list[int]:
    """Add what fired between the last recorded reading and /proc/interrupts now."""
    snap = ctx.live.read_now()
    try:
        reading = reading_from_snapshot(snap, read_boot_id(ctx.root))
    except ValueError as err:
        raise ApiError(503, f"cannot parse /proc: {err}") from err
    same_boot = reading.boot_id == last.boot_id
    cpus: set[int] = set()
    for row in reading.rows:
        if not row.label.isdigit():
            continue
        before = last.values.get(row.label, {}) if same_boot else {}
        cpus.update(row.cpus)
        for cpu, value in zip(row.cpus, row.counts):
            delta = counter_delta(before.get(cpu, 0), value, row.bits)[0]
            if delta:
                per = counts.setdefault(int(row.label), {})
                per[cpu] = per.get(cpu, 0) + delta
    taken = _local(snap.taken_at)
    if same_boot:
        notes.append(f"ends at /proc/interrupts read at {taken}: counts after the last "
                     f"recorded sample ({_local(last.ts)}) come from it")
        if start > last.ts:
            notes.append(f"the window starts after the last recorded sample: counted from "
                         f"that sample ({_local(last.ts)})")
    else:
        notes.append(f"the machine rebooted after the last recorded sample: the counts since "
                     f"that boot are added whole, up to /proc/interrupts read at {taken}")
    return sorted(cpus)


def _first_live_reading(ctx: ApiContext) -> LastReading | None:
    """The oldest reading the API holds in memory, in the store's terms."""
    snaps = ctx.live.snapshots()
    if not snaps:
        return None
    try:
        reading = reading_from_snapshot(snaps[0], read_boot_id(ctx.root))
    except ValueError:
        return None
    values = {r.label: dict(zip(r.cpus, r.counts)) for r in reading.rows}
    return LastReading(reading.boot_id, reading.ts, values)


def _window(ctx: ApiContext, start: float, stop: float) -> _Window:
    """Every IRQ's counts in ``(start, stop]``.

    A stop at or after the last recorded sample ends at a live reading of /proc/interrupts;
    so does a window no sample covers whose stop is less than a minute (mmddHHMM's
    resolution) before the last sample -- the daemon's first minute, asked for "until now"
    as ``mmddHHMM``: then the counts run from that sample.
    """
    parsed = ctx.live.interrupts()
    counts: dict[int, dict[int, int]] = {r.irq: {} for r in parsed.rows if r.irq is not None}
    cpus = set(parsed.cpus)
    notes = [f"IRQ data from {_local(start)} to {_local(stop)}"]
    if start == stop:
        return _Window(counts, sorted(cpus), True, notes)
    with open_store(ctx) as store:
        try:
            s = store.summary(start, stop)
            last = store.last_reading()
        except HistoryError as err:
            raise ApiError(503, str(err)) from err
    for t in s.irqs:
        per = counts.setdefault(t.irq, {})
        for cpu, n in t.per_cpu.items():
            per[cpu] = per.get(cpu, 0) + n
    cpus |= set(s.per_cpu)
    first = s.covered_from
    if first is not None and first > start + 1:
        notes.append(f"the window starts before the first recorded sample: summed from "
                     f"{_local(first)}")
    if s.reboots:
        notes.append(f"the window spans {s.reboots} reboot(s): counts are summed per boot")
    notes += list(s.notes)
    covered = bool(s.samples)
    if last is None:
        last = _first_live_reading(ctx)   # nothing recorded yet: the daemon's first seconds
    if last is not None and (stop >= last.ts or (not covered and stop > last.ts - 60)):
        if first is None and start < last.ts:
            notes.append(f"the window starts before the first recorded sample: summed from "
                         f"{_local(last.ts)}")
        cpus |= set(_live_tail(ctx, last, start, counts, notes))
        covered = True
    return _Window(counts, sorted(cpus), covered, notes)


def _summary(ctx: ApiContext) -> dict[str, Any]:
    if "start" not in request.args:
        return _since_boot(ctx)     # irqRestServer ignored a stop without a start
    now = time.time()
    times = _times(ctx, now)
    if isinstance(times, str):
        return {"message": times}
    start, stop = times
    if start > now:
        return {"message": NOT_ENOUGH_DATA}      # nothing has happened in it yet
    w = _window(ctx, start, now if stop is None else stop)
    if not w.covered:
        return {"message": NOT_ENOUGH_DATA}      # no sample in it, and it ends before the last
    btime = _btime(ctx.live.latest())
    if btime is not None and start < btime:
        message = f"start is prior to last reboot: {_mmddhhmm(btime)}"
        w.notes.append("counts before that reboot are summed per boot")
    elif stop is None:
        message = f"IRQ data from {request.args['start']}"
    else:
        message = "Success"
    key = "irq_data" if stop is not None else "irqData"   # irqRestServer's two spellings
    return {"message": message, key: irq_data(w.cpus, w.counts), "cpus": w.cpus,
            "notes": w.notes}


def _raw_affinity(ctx: ApiContext, irq: int) -> str:
    text = ctx.root.try_read_text(ctx.root.irq_file(irq, "smp_affinity"))
    return (text or "").strip()


def _irq_show(ctx: ApiContext, irq: str) -> Any:
    n = digits("irq", irq)
    if not irq_exists(ctx, n):
        return seed_json({"message": _INVALID_IRQ}, 404)
    return seed_json({"irq_id": n, "current affinity": _raw_affinity(ctx, n),
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
        raise ApiError(404, "Invalid irq-id specified", "irq")
    mask, key = _requested_mask(ctx)
    old = _raw_affinity(ctx, n)
    written = set_affinity(ctx, n, _online_part(ctx, mask, key, "Invalid cpu specified: "), key)
    return {"message": "Affinity changed", "old affinity": old,
            "new affinity": _raw_affinity(ctx, n), "irq_id": n, **written}


# --------------------------------------------------------------------------
# irqbalancing's irq_server
# --------------------------------------------------------------------------


def _online_part(ctx: ApiContext, mask: int, key: str, prefix: str = "") -> int:
    """What the kernel keeps of a mask: its online CPUs (none: refused, as the kernel does)."""
    online = online_cpus(ctx)
    if mask and not mask & online:
        raise ApiError(400, f"{prefix}{key}: names no online CPU (online: "
                            f"{format_cpulist(online)})", key)
    return mask & online if mask else mask


def _set_affinity(ctx: ApiContext, irq: str) -> Response:
    authorize(ctx)
    n = digits("irq", irq)
    if not irq_exists(ctx, n):
        return Response("Invalid irq", status=404, mimetype="text/html")
    text = request.args.get("cpu")
    if not text:
        raise ApiError(400, "cpu: required (a hex CPU mask, e.g. cpu=1 for CPU0)", "cpu")
    set_affinity(ctx, n, _online_part(ctx, mask_value("cpu", text), "cpu"), "cpu")
    return Response("Ok", mimetype="text/html")


def _cells(parsed: Interrupts) -> Iterator[tuple[str, int, int]]:
    """(row label, CPU, count) of every per-CPU cell."""
    for row in parsed.rows:
        for cpu, n in zip(parsed.cpus, row.counts):
            yield row.label, cpu, n


def _distribution(ctx: ApiContext) -> Response:
    snap = ctx.live.read_now()
    if request.args.get("format", "raw") == "raw":
        return Response(snap.interrupts, mimetype="text/plain")
    # Any other format is JSON, as irq_server answered; rows with one bare count and
    # nothing else (ERR, MIS) are left out, as it did.
    parsed = parse_snapshot(snap)
    data: dict[str, int] = {
        f"CPU{cpu}.{row.label}": n for row in parsed.rows if not _bare(row)
        for cpu, n in zip(parsed.cpus, row.counts)}
    data["cpuCount"] = len(parsed.cpus)
    return seed_json(data)


def _bare(row: InterruptRow) -> bool:
    """A row of a label and one count (``ERR:  0``): irq_server skipped those."""
    return len(row.counts) == 1 and not (row.chip or row.hwirq or row.trigger or row.actions)


def cpu_deltas(before: Interrupts, after: Interrupts) -> dict[int, int]:
    """Interrupts each CPU handled between two readings (every row, wraps counted)."""
    old = {(label, cpu): n for label, cpu, n in _cells(before)}
    out = dict.fromkeys(after.cpus, 0)
    for label, cpu, n in _cells(after):
        prev = old.get((label, cpu))
        out[cpu] += counter_delta(prev, n)[0] if prev is not None else 0
    return out


def _measure(ctx: ApiContext, seconds: float) -> tuple[Snapshot, Snapshot]:
    """Readings ``seconds`` apart: the first taken while the request waited off the
    workers (api/gate.py), or here when no gate parked it (a WSGI test client)."""
    if FIRST_READING_KEY in request.environ:
        refused = request.environ.get(REFUSED_KEY)
        if refused:
            raise ApiError(503, refused, "second")
        first = request.environ[FIRST_READING_KEY]
        if first is None:
            raise ApiError(503, "cannot read /proc/interrupts")
        return first, ctx.live.read_now()
    first = ctx.live.read_now()
    time.sleep(seconds)  # this request's thread only: passes go on
    return first, ctx.live.read_now()


def _by_cpu(ctx: ApiContext) -> Response:
    which = request.args.get("cpu", "all")
    seconds = number("second", request.args.get("second"), 5.0, 0.0, MAX_SECONDS)
    cpus = ctx.live.interrupts().cpus
    cpu = None if which == "all" else digits("cpu", which)
    if cpu is not None and cpu not in cpus:
        return Response("Not found", status=404, mimetype="text/html")
    first, second = _measure(ctx, seconds)
    deltas = cpu_deltas(parse_snapshot(first), parse_snapshot(second))
    if cpu is not None:
        return seed_json({f"CPU{cpu}": deltas.get(cpu, 0)})
    return seed_json({f"CPU{c}": n for c, n in sorted(deltas.items())})
