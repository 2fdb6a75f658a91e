"""What the balancer saw and decided, for ``--dry-run`` (text or JSON) and the API.

:func:`machine_report` turns a :class:`~pyirqbalance.engine.balancer.Balancer` after a
pass into one JSON-ready dict: the CPUs (online, banned and why), the topology
tree, and one entry per numbered IRQ of /proc/interrupts with its class,
balance level, node, current and target masks and the reason.
:func:`format_text` renders the same dict for people.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..engine.topology import ObjType, TopoObj
from ..kernel import procinterrupts
from ..kernel.cpumask import format_cpulist, format_mask, parse_mask
from ..kernel.procirq import affinity_writable

__all__ = [
    "format_placement_text",
    "format_summary",
    "format_text",
    "machine_report",
    "placement_report",
    "placement_section",
    "summarise",
]

#: Said in --dry-run when the balanced placement estimated the IRQs' costs.
ESTIMATED_NOTE = (
    "no IRQ time accounting seen (/proc/stat irq and softirq flat while interrupts are "
    "counted): interrupt counts balanced, every interrupt taken as equally costly"
)


def _mask(mask: int | None) -> str | None:
    return None if mask is None else format_mask(mask)


def _tree(obj: TopoObj) -> dict[str, Any]:
    node: dict[str, Any] = {
        "type": obj.obj_type.name.lower(),
        "number": obj.number,
        "mask": format_mask(obj.mask),
        "cpus": format_cpulist(obj.mask),
        "load": obj.load,
        "irqs": [i.irq for i in obj.interrupts],
    }
    if obj.obj_type is not ObjType.CPU:
        node["children"] = [_tree(c) for c in obj.children]
    return node


def machine_report(balancer) -> dict[str, Any]:
    """One JSON object describing the machine and every IRQ decision."""
    topo = balancer.topo
    banned = balancer.banned_cpu_info
    names: dict[int, str] = {}
    snapshot = balancer.last_snapshot
    if snapshot is not None:
        try:
            parsed = procinterrupts.parse_interrupts(snapshot.interrupts.decode("utf-8", "replace"))
            names = {r.irq: r.actions for r in parsed.rows if r.irq is not None}
        except procinterrupts.ParseError:
            names = {}
    irqs = []
    for d in balancer.decisions():
        info = balancer.irq_info(d.irq)
        moves = d.target_mask is not None and d.current_mask != d.target_mask
        irqs.append({
            "irq": d.irq,
            "name": names.get(d.irq) or d.name,
            "count": info.count if info is not None else None,
            "class": d.irq_class,
            "level": d.level,
            "node": d.node,
            "current_mask": _mask(d.current_mask),
            "target_mask": _mask(d.target_mask),
            "target_cpus": None if d.target_mask is None else format_cpulist(d.target_mask),
            "assigned": d.assigned,
            "load": d.load,
            "reason": d.reason,
            # The kernel creates smp_affinity read-only for IRQs it manages itself.
            "kernel_refuses": moves and not affinity_writable(balancer.root, d.irq),
        })
    banned_mask = topo.banned & topo.online
    return {
        "pyirqbalance": __version__,
        "sysroot": balancer.root.base,
        "cycle": balancer.cycle,
        "cpus": {
            "online": format_cpulist(topo.online),
            "online_count": topo.num_online,
            "banned": format_cpulist(topo.banned & topo.online),
            "banned_source": banned.source if banned is not None else None,
        },
        "topology": [_tree(n) for n in topo.nodes if n.children or n.number >= 0],
        "irqs": irqs,
        "summary": summarise(irqs, banned_mask),
        **placement_section(balancer),
    }


def summarise(irqs: list[dict[str, Any]], banned: int) -> dict[str, Any]:
    """How many IRQs the pass would move, by balance level, and what the others are."""
    by_level: dict[str, int] = {}
    off_banned = refused = in_place = banned_irqs = left_alone = 0
    for irq in irqs:
        if irq["target_mask"] is None:
            if irq["class"] == "banned":
                banned_irqs += 1
            else:
                left_alone += 1
        elif irq["kernel_refuses"]:
            refused += 1
        elif irq["current_mask"] == irq["target_mask"]:
            in_place += 1
        else:
            by_level[irq["level"]] = by_level.get(irq["level"], 0) + 1
            current = irq["current_mask"]
            if current is not None and parse_mask(current) & banned:
                off_banned += 1
    return {
        "irqs": len(irqs),
        "would_move": sum(by_level.values()),
        "by_level": by_level,
        "off_banned_cpus": off_banned,
        "kernel_refuses": refused,
        "in_place": in_place,
        "banned": banned_irqs,
        "left_alone": left_alone,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """``would move 9 of 16 IRQs (core level 6, cache level 2; 3 off banned CPUs); ...``."""
    levels = [f"{level} level {n}" for level, n in sorted(
        summary["by_level"].items(), key=lambda item: (-item[1], item[0]))]
    detail = ", ".join(levels)
    if summary["off_banned_cpus"]:
        detail += f"; {summary['off_banned_cpus']} off banned CPUs"
    text = f"would move {summary['would_move']} of {summary['irqs']} IRQs"
    if detail:
        text += f" ({detail})"
    parts = [text]
    if summary["kernel_refuses"]:
        parts.append(f"{summary['kernel_refuses']} the kernel manages itself would refuse a move")
    parts.append(f"{summary['in_place']} already in place")
    if summary["banned"]:
        parts.append(f"{summary['banned']} banned")
    if summary["left_alone"]:
        parts.append(f"{summary['left_alone']} not balanced")
    return "; ".join(parts)


def placement_section(balancer) -> dict[str, Any]:
    """``{"placement": ...}`` to merge into a report, or ``{}`` (irqbalance's placement)."""
    section = placement_report(balancer)
    return {} if section is None else {"placement": section}


def placement_report(balancer) -> dict[str, Any] | None:
    """``--placement=balanced``: each CPU's predicted interrupt time now and after the
    plan, the floor, the moves (None under irqbalance's placement)."""
    plan = getattr(balancer, "placement_plan", None)
    if plan is None:
        return None
    out = plan.to_json()
    if plan.estimated:
        out["note"] = ESTIMATED_NOTE
    return out


def _window_s(window: str) -> float | None:
    """Seconds of a plan's window (``"10 s"``), None for ``"since boot"``."""
    number, _, unit = window.partition(" ")
    try:
        return float(number) if unit == "s" else None
    except ValueError:
        return None


def _interrupt_time(us: float, window_s: float | None) -> str:
    """``"30.0 ms (3.0%)"``: interrupt time over the window, and its share of the window."""
    text = f"{us / 1e3:.1f} ms"
    return f"{text} ({us / (window_s * 1e6):.1%})" if window_s else text


def format_placement_text(section: dict[str, Any]) -> str:
    """The balanced placement's section of the text report: interrupt time of the window
    (the last pass's, or since boot) in ms, and its share of the window's time."""
    window = section["window"]
    seconds = _window_s(window)
    moves = len(section["moves"])
    lines = [
        f"balanced placement, interrupt time {'since boot' if seconds is None else 'in ' + window}"
        f": busiest CPU {_interrupt_time(section['busiest_now_us'], seconds)} now, "
        f"{_interrupt_time(section['busiest_after_us'], seconds)} after {moves} "
        f"move{'' if moves == 1 else 's'}; floor {_interrupt_time(section['floor_us'], seconds)}",
    ]
    if "note" in section:
        lines.append(f"  note: {section['note']}")
    rows = [(str(c["cpu"]), _interrupt_time(c["now_us"], seconds),
             _interrupt_time(c["after_us"], seconds)) for c in section["cpus"]]
    now_w = max([len("NOW")] + [len(now) for _, now, _ in rows])
    after_w = max([len("AFTER")] + [len(after) for _, _, after in rows])
    lines.append(f"  {'CPU':<4} {'NOW':>{now_w}}  {'AFTER':>{after_w}}")
    lines.extend(f"  {cpu:<4} {now:>{now_w}}  {after:>{after_w}}" for cpu, now, after in rows)
    return "\n".join(lines) + "\n"


def format_text(report: dict[str, Any]) -> str:
    """The report as a table for people."""
    cpus = report["cpus"]
    lines = [
        f"pyirqbalance {report['pyirqbalance']} (sysroot {report['sysroot']})",
        f"online CPUs: {cpus['online']} ({cpus['online_count']})   "
        f"banned: {_banned(cpus['banned'], cpus['banned_source'])}",
        "",
    ]
    rows = [("IRQ", "NAME", "CLASS", "LEVEL", "NODE", "CURRENT", "TARGET", "WHY")]
    for irq in report["irqs"]:
        current = irq["current_mask"]
        rows.append((
            str(irq["irq"]),
            (irq["name"] or "")[:24],
            irq["class"],
            irq["level"],
            str(irq["node"]),
            format_cpulist(parse_mask(current)) if current else "?",
            irq["target_cpus"] if irq["target_cpus"] is not None else "-",
            _short_reason(irq),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines.extend("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows)
    text = "\n".join(lines) + "\n"
    if "placement" in report:
        text += "\n" + format_placement_text(report["placement"])
    return text + "\n" + format_summary(report["summary"]) + "\n"


#: Where a banned set is worked out from the kernel's facts (not set by the user).
_AUTOMATIC = {
    "isolated and nohz_full CPUs": "no isolated or nohz_full CPUs",
    "isolcpus= and nohz_full= on the kernel command line":
        "no isolcpus= or nohz_full= on the kernel command line",
}


def _banned(cpus: str, source: str | None) -> str:
    """``"2-3 (isolated and nohz_full CPUs)"``, ``"none (no isolated or nohz_full CPUs)"``,
    ``"none (set by IRQBALANCE_BANNED_CPULIST)"``."""
    if source is None:
        return cpus or "none"
    if source in _AUTOMATIC:
        return f"{cpus} ({source})" if cpus else f"none ({_AUTOMATIC[source]})"
    return f"{cpus or 'none'} (set by {source})"


def _short_reason(irq: dict[str, Any]) -> str:
    reason = irq["reason"]
    if irq["target_mask"] is None:
        return reason.split("; ")[-1]
    if irq.get("kernel_refuses"):
        return ("kernel-managed (smp_affinity read-only): the kernel refuses a move to "
                + (irq["assigned"] or ""))
    current, target = irq["current_mask"], irq["target_mask"]
    same = current is not None and parse_mask(current) == parse_mask(target)
    return ("keep " if same else "move to ") + (irq["assigned"] or "")
