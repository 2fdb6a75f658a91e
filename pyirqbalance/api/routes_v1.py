"""The versioned API (``/api/v1/...``): rich JSON for ``pyirqbalancectl`` and scripts."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from .. import __version__
from ..history.deltas import counter_delta
from ..history.recorder import boot_identity, read_boot_id
from ..history.records import HistoryError, iso_time
from ..kernel.cpumask import cpus_of, format_cpulist, format_mask
from ..kernel.procirq import read_irq_affinity, read_smp_affinity
from ..kernel.procstat import parse_stat
from ..service.explain import machine_report, placement_section
from .context import (
    ApiContext,
    ApiError,
    authorize,
    digits,
    echo,
    json_body,
    mask_value,
    number,
    online_cpus,
    open_store,
    require_irq,
    set_affinity,
    window,
)
from .report import build_report, counts_from_interrupts, cpu_groups

__all__ = ["v1_blueprint"]


def v1_blueprint(ctx: ApiContext) -> Blueprint:
    """Routes mounted at ``/api/v1``."""
    bp = Blueprint("v1", __name__)
    bp.add_url_rule("/irqsummary", "irqsummary", view_func=lambda: jsonify(_summary(ctx)))
    bp.add_url_rule("/irqsummary/<irq>", "irqsummary_irq",
                    view_func=lambda irq: jsonify(_irq_show(ctx, irq)))
    bp.add_url_rule("/irqsummary/<irq>", "irq_set", methods=["PUT"],
                    view_func=lambda irq: jsonify(_irq_set(ctx, irq)))
    bp.add_url_rule("/irqsummary/<irq>", "irq_release", methods=["DELETE"],
                    view_func=lambda irq: jsonify(irq_release(ctx, irq)))
    bp.add_url_rule("/set_affinity/<irq>", "set_affinity_irq", methods=["PUT"],
                    view_func=lambda irq: jsonify(_set_affinity(ctx, irq)))
    bp.add_url_rule("/get_current_distribution", "get_current_distribution",
                    view_func=lambda: _distribution(ctx))
    bp.add_url_rule("/get_interrupt_by_cpu", "get_interrupt_by_cpu",
                    view_func=lambda: jsonify(_by_cpu_request(ctx)))
    bp.add_url_rule("/report", "report", view_func=lambda: jsonify(_report(ctx)))
    bp.add_url_rule("/topology", "topology", view_func=lambda: jsonify(_topology(ctx)))
    bp.add_url_rule("/health", "health", view_func=lambda: jsonify(_health(ctx)))
    return bp


# --------------------------------------------------------------------------
# summaries
# --------------------------------------------------------------------------


def _summary(ctx: ApiContext) -> dict[str, Any]:
    w = window(ctx)
    if w is None:
        return _live_summary(ctx)
    with open_store(ctx) as store:
        try:
            summary = store.summary(*w)
            recorded, last = store.sample_count(), store.last_reading()
        except (HistoryError, OverflowError) as err:
            raise ApiError(503, str(err)) from err
    every = ctx.history.resolution_s if ctx.history is not None else None
    history = {"samples": recorded, "last_sample": iso_time(last.ts) if last else None,
               "resolution_s": every,
               "next_sample": iso_time(last.ts + every) if last and every else None}
    return {"source": "history", **summary.to_json(), "history": history}


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
        "boots": [{"boot_id": boot_identity(read_boot_id(ctx.root), btime),
                   "btime": iso_time(btime)}],
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


# --------------------------------------------------------------------------
# one IRQ
# --------------------------------------------------------------------------


def decision_json(ctx: ApiContext, irq: int) -> dict[str, Any] | None:
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


def _fmt(mask: int | None) -> str | None:
    return None if mask is None else format_mask(mask)


def _lst(mask: int | None) -> str | None:
    return None if mask is None else format_cpulist(mask)


def irq_details(ctx: ApiContext, n: int) -> dict[str, Any]:
    parsed = ctx.live.interrupts()
    row = parsed.by_irq().get(n)
    aff = read_irq_affinity(ctx.root, n)
    override = ctx.overrides.get(n)
    return {
        "irq": n,
        "name": row.actions if row else None,
        "chip": row.chip if row else None,
        "hwirq": row.hwirq if row else None,
        "total": row.total if row else None,
        "per_cpu": {str(c): v for c, v in zip(parsed.cpus, row.counts)} if row else None,
        "smp_affinity": _fmt(aff.smp_affinity), "smp_affinity_list": _lst(aff.smp_affinity),
        "effective_affinity": _fmt(aff.effective_affinity),
        "effective_affinity_list": _lst(aff.effective_affinity_list or aff.effective_affinity),
        "affinity_hint": _fmt(aff.affinity_hint),
        "node": aff.node,
        "writable": aff.writable and _refused(ctx, n) is None,
        "override": None if override is None else {"mask": format_mask(override),
                                                   "cpus": format_cpulist(override)},
        "decision": decision_json(ctx, n),
    }


def _irq_show(ctx: ApiContext, irq: str) -> dict[str, Any]:
    return irq_details(ctx, require_irq(ctx, irq))


def _irq_set(ctx: ApiContext, irq: str) -> dict[str, Any]:
    authorize(ctx)
    n = require_irq(ctx, irq)
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, 'body: a JSON object {"cpus": "0-3"} or {"mask": "f"} is required',
                       "body")
    keys = [k for k in ("cpus", "mask") if k in body]
    if len(keys) != 1:
        raise ApiError(400, 'body: give exactly one of "cpus" and "mask"', "body")
    return set_affinity(ctx, n, mask_value(keys[0], body[keys[0]]), keys[0])


def irq_release(ctx: ApiContext, irq: str) -> dict[str, Any]:
    authorize(ctx)
    n = digits("irq", irq)
    if not ctx.overrides.release(n):
        raise ApiError(404, f"IRQ {n} has no override to release", "irq")
    ctx.log.info("API: IRQ %d released to the balancer", n)
    return {"irq": n, "override": False}


def _set_affinity(ctx: ApiContext, irq: str) -> dict[str, Any]:
    authorize(ctx)
    n = require_irq(ctx, irq)
    text = request.args.get("cpu")
    if not text:
        raise ApiError(400, "cpu: required (a hex CPU mask, e.g. cpu=f)", "cpu")
    return set_affinity(ctx, n, mask_value("cpu", text), "cpu")


# --------------------------------------------------------------------------
# distribution and per-CPU windows
# --------------------------------------------------------------------------


def _distribution(ctx: ApiContext) -> Any:
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "raw"):
        raise ApiError(400, f"format: must be json or raw, got {echo(fmt)}", "format")
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


def _by_cpu_request(ctx: ApiContext) -> dict[str, Any]:
    cpu = digits("cpu", request.args.get("cpu"))
    seconds = number("second", request.args.get("second"), 60.0, 1e-3, 366 * 86400.0)
    return _by_cpu(ctx, cpu, seconds)


def _by_cpu(ctx: ApiContext, cpu: int, seconds: float) -> dict[str, Any]:
    latest = ctx.live.latest()
    parsed = ctx.live.interrupts(latest)
    if cpu not in parsed.cpus:
        raise ApiError(404, f"cpu: CPU {cpu} is not in /proc/interrupts "
                            f"(CPUs {format_cpulist(sum(1 << c for c in parsed.cpus))})", "cpu")
    snaps = ctx.live.snapshots()
    want = latest.taken_at - seconds
    older = [s for s in snaps if s.taken_at <= want]
    notes = []
    if older:
        base = older[-1]
    elif ctx.history is not None:
        with open_store(ctx) as store:
            s = store.summary(want, latest.taken_at)
        per_irq = {t.irq: t.per_cpu.get(cpu, 0) for t in s.irqs if t.per_cpu.get(cpu)}
        span = (s.covered_to - s.covered_from
                if s.covered_from is not None and s.covered_to is not None else 0.0)
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
# report, topology, health
# --------------------------------------------------------------------------


def _report(ctx: ApiContext) -> dict[str, Any]:
    threshold = number("threshold", request.args.get("threshold"), 5.0, 0.0, 100.0)
    group = request.args.get("group", "auto")
    if group not in ("auto", "cpu", "node", "package"):
        raise ApiError(400, f"group: must be auto, cpu, node or package, got {echo(group)}",
                       "group")
    w = window(ctx)
    if w is None:
        counts, names = counts_from_interrupts(ctx.live.interrupts())
        source = "since boot (live)"
    else:
        with open_store(ctx) as store:
            s = store.summary(*w)
        counts = {t.irq: t.per_cpu for t in s.irqs}
        names = {t.irq: t.name for t in s.irqs}
        source = f"history {iso_time(s.covered_from)} .. {iso_time(s.covered_to)}"
    b = ctx.balancer
    decisions = b.decisions() if b is not None else None
    cpus = cpus_of(online_cpus(ctx))
    if group == "auto":
        group = "cpu" if b is None or len(cpus) <= 32 else "node"
    groups = cpu_groups(b, group) if b is not None and group != "cpu" else None
    current = {irq: read_smp_affinity(ctx.root, irq) for irq in counts}
    # Verdicts and the plan name only CPUs the balancer may use (not banned or isolated).
    usable = cpus_of(online_cpus(ctx) & ~b.banned_cpus) if b is not None else None
    rep = build_report(counts, names, threshold=threshold, decisions=decisions, groups=groups,
                       group=group if groups is not None else "cpu", source=source,
                       current=current, cpus=cpus, usable=usable)
    body = rep.to_json()
    if b is not None:  # --placement=balanced: each CPU's predicted time, the floor
        body.update(placement_section(b))
    return body


def _topology(ctx: ApiContext) -> dict[str, Any]:
    if ctx.balancer is None or ctx.balancer.topo is None:
        raise ApiError(503, "no balancer runs in this process: topology unknown")
    rep = machine_report(ctx.balancer)
    return {"cpus": rep["cpus"], "topology": rep["topology"]}


def _refused(ctx: ApiContext, irq: int) -> str | None:
    """Why the kernel refused the balancer's write to ``irq`` for good (None: it did not)."""
    info = ctx.balancer.irq_info(irq) if ctx.balancer is not None else None
    return getattr(info, "unmanaged_reason", None)


def _health(ctx: ApiContext) -> dict[str, Any]:
    b = ctx.balancer
    last = ctx.live.last_report
    err = ctx.history_error()
    daemon = ctx.daemon_status()
    return {
        "status": "degraded" if daemon.get("problems") else "ok",
        "version": __version__,
        "cycle": b.cycle if b is not None else None,
        "last_pass": iso_time(last.snapshot.taken_at) if last and last.snapshot else None,
        "history": {"enabled": ctx.history is not None and err is None,
                    "path": ctx.history.path if ctx.history else None, "error": err},
        "overrides": {str(i): format_cpulist(m) for i, m in ctx.overrides.items().items()},
        "writes_enabled": ctx.token is not None or ctx.local_root_writes,
        "writes": {"token": ctx.token is not None, "local_root": ctx.local_root_writes},
        "foreign_writes": _foreign_writes(b),
        **daemon,
    }


def _foreign_writes(balancer: Any) -> dict[str, Any]:
    """smp_affinity changes something else made to balanced IRQs (engine/foreign.py)."""
    foreign = getattr(balancer, "foreign", None)
    if foreign is None:
        return {"enabled": False}
    view = foreign.view
    return {
        "enabled": True,
        "total": sum(f.changes for f in view),
        "max_changes": foreign.settings.max_changes,
        "window_s": foreign.settings.window_s,
        "left_alone": sorted(foreign.left_alone),
        "irqs": {str(f.irq): f.to_json() for f in view},
    }
