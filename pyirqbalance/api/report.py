"""Load report: where each IRQ's interrupts land, and where the balancer would put it.

Per IRQ: the share of its interrupts on each CPU (or NUMA node / package on
big machines), flagged when one share exceeds the threshold, and the
recommended target with its reason. The recommendation is the balancer's own
:class:`~pyirqbalance.engine.model.Decision` from a dry-run pass
(:func:`dry_run_decisions`: ``Balancer(write=False)``, ``start``, one pass,
exactly what ``pyirqbalance --dry-run`` runs), so the report and the daemon
cannot disagree. A saved /proc/interrupts file has counts but no topology:
its report gives shares only and says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..engine.balancer import Balancer
from ..engine.model import BalancerSettings, Decision
from ..kernel.cpumask import format_cpulist
from ..kernel.procinterrupts import Interrupts
from ..kernel.sysroot import SysRoot

__all__ = [
    "NO_TOPOLOGY_NOTE",
    "IrqLoad",
    "Report",
    "build_report",
    "counts_from_interrupts",
    "cpu_groups",
    "dry_run_decisions",
    "format_report",
]

NO_TOPOLOGY_NOTE = (
    "recommendations need the machine's topology: run on the machine, or with --sysroot "
    "of a captured tree, not on a saved /proc/interrupts file"
)
#: Above this many CPUs, "auto" grouping reports shares per NUMA node (or package).
AUTO_GROUP_CPUS = 32


@dataclass(frozen=True, slots=True)
class IrqLoad:
    irq: int
    name: str
    total: int
    #: Share of the IRQ's interrupts per CPU (or group), in percent, biggest first.
    shares: tuple[tuple[str, float], ...]
    flagged: bool
    current: str | None = None
    recommended: str | None = None
    action: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Report:
    source: str
    threshold: float
    group: str
    irqs: tuple[IrqLoad, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def flagged(self) -> tuple[IrqLoad, ...]:
        return tuple(i for i in self.irqs if i.flagged)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "threshold_pct": self.threshold,
            "group": self.group,
            "flagged": len(self.flagged),
            "irqs": [
                {"irq": i.irq, "name": i.name, "total": i.total,
                 "shares": {k: round(v, 2) for k, v in i.shares}, "flagged": i.flagged,
                 "current": i.current, "recommended": i.recommended, "action": i.action,
                 "reason": i.reason}
                for i in self.irqs
            ],
            "notes": list(self.notes),
        }


def counts_from_interrupts(interrupts: Interrupts) -> tuple[dict[int, dict[int, int]], dict[int, str]]:
    """Per-IRQ per-CPU counts since boot, and names, from a parsed /proc/interrupts."""
    counts, names = {}, {}
    for row in interrupts.rows:
        if row.irq is not None:
            counts[row.irq] = dict(zip(interrupts.cpus, row.counts))
            names[row.irq] = row.actions
    return counts, names


def cpu_groups(balancer: Any, by: str) -> dict[int, str]:
    """CPU -> "node N" or "package N" label, from the balancer's topology tree."""
    out: dict[int, str] = {}

    def walk(obj: Any, label: str | None) -> None:
        kind = obj.obj_type.name.lower()
        if kind == by and obj.number >= 0:
            label = f"{by} {obj.number}"
        if kind == "cpu":
            out[obj.number] = label or f"{by} ?"
        for child in getattr(obj, "children", ()):
            walk(child, label)

    for node in balancer.nodes:
        walk(node, None)
    return out


def dry_run_decisions(
    root: SysRoot, settings: BalancerSettings | None = None
) -> tuple[Balancer, tuple[Decision, ...]]:
    """What ``pyirqbalance --dry-run`` decides on this machine: (balancer, decisions)."""
    balancer = Balancer(root, settings, write=False)
    balancer.start()
    balancer.run_pass()
    return balancer, balancer.decisions()


def _group(per_cpu: Mapping[int, int], groups: Mapping[int, str] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for cpu, n in per_cpu.items():
        key = groups.get(cpu, f"cpu {cpu}") if groups is not None else f"cpu {cpu}"
        out[key] = out.get(key, 0) + n
    return out


def build_report(
    counts: Mapping[int, Mapping[int, int]],
    names: Mapping[int, str],
    *,
    threshold: float = 80.0,
    decisions: Sequence[Decision] | None = None,
    groups: Mapping[int, str] | None = None,
    group: str = "cpu",
    source: str = "",
    include_idle: bool = False,
    notes: Iterable[str] = (),
) -> Report:
    """Shares per IRQ from ``counts`` (irq -> cpu -> interrupts), with recommendations."""
    by_irq = {d.irq: d for d in decisions} if decisions is not None else None
    loads = []
    for irq in sorted(counts):
        per = _group(counts[irq], groups)
        total = sum(per.values())
        if not total and not include_idle:
            continue
        shares = tuple(sorted(((k, 100.0 * n / total) for k, n in per.items() if n),
                              key=lambda kv: (-kv[1], kv[0]))) if total else ()
        flagged = bool(shares) and shares[0][1] > threshold
        current = recommended = action = reason = None
        d = by_irq.get(irq) if by_irq is not None else None
        if d is not None:
            current = None if d.current_mask is None else format_cpulist(d.current_mask)
            reason = d.reason
            if d.target_mask is not None:
                recommended = format_cpulist(d.target_mask)
                action = "keep" if d.target_mask == d.current_mask else "move"
            else:
                action = "leave"
        loads.append(IrqLoad(irq, names.get(irq, ""), total, shares, flagged,
                             current, recommended, action, reason))
    all_notes = list(notes)
    if decisions is None:
        all_notes.append(NO_TOPOLOGY_NOTE)
    return Report(source, threshold, group, tuple(loads), tuple(all_notes))


def format_report(report: Report, flagged_only: bool = False) -> str:
    """The report as an aligned table for people."""
    lines = [f"load report: {report.source}  (flag when one {report.group} takes "
             f"> {report.threshold:g}% of an IRQ)", ""]
    rows = [("IRQ", "NAME", "TOTAL", "TOP SHARES", "FLAG", "CURRENT", "TARGET", "ACTION")]
    for i in report.irqs:
        if flagged_only and not i.flagged:
            continue
        top = ", ".join(f"{k} {v:.0f}%" for k, v in i.shares[:3])
        rows.append((str(i.irq), i.name[:24], str(i.total), top, "!" if i.flagged else "",
                     i.current or "-", i.recommended or "-", i.action or "-"))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.append("")
    lines.append(f"{len(report.flagged)} of {len(report.irqs)} IRQs flagged")
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines) + "\n"
