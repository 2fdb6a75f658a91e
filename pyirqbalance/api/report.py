"""Load report: where each IRQ's interrupts land, a whole-IRQ plan, and the balancer's view.

Per IRQ: the share of its interrupts on each CPU (or NUMA node / package on
big machines) with two decimals, and a verdict: ``Balanced`` when the largest
and the smallest share differ by at most ``threshold`` percentage points,
else the CPU (or group) with the smallest share -- where more of it should go.
Beside it, a plan that puts each IRQ whole on one CPU so that the busiest CPU
handles as few interrupts as possible (:func:`plan_cpus`), and the balance
metric: the busiest CPU's share of all interrupts now, under the plan, and
the lower bound no plan can beat.

With a topology, each IRQ also carries the balancer's own
:class:`~pyirqbalance.engine.model.Decision` (from the daemon, or a dry-run
pass: :func:`dry_run_decisions`, exactly what ``pyirqbalance --dry-run``
runs), its affinity as smp_affinity holds it now, and the action that
follows. A saved /proc/interrupts file has counts but no topology: its
report gives shares, verdicts and the plan, and says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from ..engine.balancer import Balancer
from ..engine.model import BalancerSettings, Decision
from ..kernel.cpumask import format_cpulist
from ..kernel.procinterrupts import Interrupts
from ..kernel.sysroot import SysRoot

__all__ = [
    "BALANCED",
    "NO_TOPOLOGY_NOTE",
    "Balance",
    "IrqLoad",
    "Report",
    "balance_of",
    "build_report",
    "counts_from_interrupts",
    "cpu_groups",
    "dry_run_decisions",
    "format_report",
    "plan_cpus",
    "verdict",
]

NO_TOPOLOGY_NOTE = (
    "the balancer's recommendations need the machine's topology: run on the machine, or with "
    "--sysroot of a captured tree, not on a saved /proc/interrupts file"
)
BALANCED = "Balanced"
#: Share columns shown one by one in the text table; more are shown as the top three.
TABLE_COLUMNS = 8
#: Rounds of the plan's local search (each strictly lowers a CPU pair's maximum).
PLAN_ROUNDS = 1000


class IrqLoad(NamedTuple):
    irq: int
    name: str
    total: int
    #: Percent of the IRQ's interrupts per column (CPU or group), two decimals, column order.
    shares: tuple[float, ...]
    verdict: str
    plan_cpu: int | None
    current: str | None = None
    recommended: str | None = None
    action: str | None = None
    reason: str | None = None
    #: Percent of its interrupts on CPUs the balancer may not use (banned, isolated).
    banned_share: float = 0.0

    @property
    def flagged(self) -> bool:
        return self.verdict != BALANCED


class Balance(NamedTuple):
    """The busiest CPU's share of all interrupts, in percent."""

    now: float
    plan: float
    best: float


class Report(NamedTuple):
    source: str
    threshold: float
    group: str
    columns: tuple[str, ...]
    cpus: tuple[int, ...]
    irqs: tuple[IrqLoad, ...]
    balance: Balance | None
    notes: tuple[str, ...] = ()
    has_decisions: bool = False
    #: The CPUs verdicts and the plan may name: those the balancer may use.
    usable: tuple[int, ...] = ()

    @property
    def flagged(self) -> tuple[IrqLoad, ...]:
        return tuple(i for i in self.irqs if i.flagged)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "threshold_pts": self.threshold,
            "group": self.group,
            "columns": list(self.columns),
            "cpus": list(self.cpus),
            "usable_cpus": list(self.usable),
            "balance": None if self.balance is None else self.balance._asdict(),
            "flagged": len(self.flagged),
            "irqs": [_irq_json(i, self.has_decisions) for i in self.irqs],
            "notes": list(self.notes),
        }


def _irq_json(i: IrqLoad, decisions: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"irq": i.irq, "name": i.name, "total": i.total,
                           "shares": list(i.shares), "verdict": i.verdict,
                           "plan_cpu": i.plan_cpu, "flagged": i.flagged,
                           "banned_share": i.banned_share}
    if decisions:
        out.update(current=i.current, recommended=i.recommended, action=i.action,
                   reason=i.reason)
    return out


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------


def counts_from_interrupts(
    interrupts: Interrupts,
) -> tuple[dict[int, dict[int, int]], dict[int, str]]:
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


# --------------------------------------------------------------------------
# shares and verdicts
# --------------------------------------------------------------------------


def _shares(values: Sequence[int]) -> tuple[float, ...]:
    total = sum(values)
    return tuple(round(100.0 * v / total, 2) if total else 0.0 for v in values)


def verdict(shares: Sequence[float], columns: Sequence[str], threshold: float,
            usable: Sequence[bool] | None = None) -> str:
    """``Balanced`` when max - min share <= threshold points, else the column with the least.

    ``usable``: which columns the balancer may put interrupts on; the least-share column is
    chosen among those only, and a share on another column counts as imbalance.
    """
    allowed = [k for k in range(len(shares)) if usable is None or usable[k]]
    if not allowed:
        return BALANCED
    low = min(allowed, key=lambda k: (shares[k], k))
    if round(max(shares) - shares[low], 2) <= threshold:
        return BALANCED
    return columns[low]


def _columns(cpus: Sequence[int], groups: Mapping[int, str] | None) -> tuple[str, ...]:
    if groups is None:
        return tuple(f"CPU{c}" for c in cpus)
    return tuple(dict.fromkeys(groups.get(c, f"CPU{c}") for c in cpus))


def _per_column(per_cpu: Mapping[int, int], cpus: Sequence[int], columns: Sequence[str],
                groups: Mapping[int, str] | None) -> list[int]:
    if groups is None:
        return [per_cpu.get(c, 0) for c in cpus]
    index = {label: k for k, label in enumerate(columns)}
    out = [0] * len(columns)
    for c in cpus:
        out[index[groups.get(c, f"CPU{c}")]] += per_cpu.get(c, 0)
    return out


# --------------------------------------------------------------------------
# the whole-IRQ plan
# --------------------------------------------------------------------------


def plan_cpus(weights: Mapping[int, int], cpus: Sequence[int]) -> dict[int, int]:
    """Each IRQ on one CPU, the busiest CPU's sum as low as found.

    Longest processing time first (heaviest IRQ to the least-loaded CPU, ties
    to the lowest CPU number), then a local search: while moving one IRQ off
    the busiest CPU, or swapping one of its IRQs with one of another CPU,
    lowers the larger of the two CPUs' sums, do it. Exact minimisation is the
    NP-hard partition problem; :func:`balance_of` gives the lower bound.
    """
    if not cpus:
        return {}
    load = dict.fromkeys(cpus, 0)
    plan: dict[int, int] = {}
    for irq in sorted(weights, key=lambda i: (-weights[i], i)):
        cpu = min(cpus, key=lambda c: (load[c], c))
        plan[irq] = cpu
        load[cpu] += weights[irq]
    for _ in range(PLAN_ROUNDS):
        if not _improve(plan, load, weights, cpus):
            break
    return plan


def _improve(plan: dict[int, int], load: dict[int, int], weights: Mapping[int, int],
             cpus: Sequence[int]) -> bool:
    busy = max(cpus, key=lambda c: (load[c], -c))
    mine = sorted((i for i, c in plan.items() if c == busy), key=lambda i: (-weights[i], i))
    for other in sorted(cpus, key=lambda c: (load[c], c)):
        if other == busy:
            continue
        theirs: list[int | None] = [None, *sorted((i for i, c in plan.items() if c == other),
                                                  key=lambda i: (weights[i], i))]
        for a in mine:
            for b in theirs:
                wb = weights[b] if b is not None else 0
                shift = weights[a] - wb
                if shift > 0 and max(load[busy] - shift, load[other] + shift) < load[busy]:
                    plan[a] = other
                    if b is not None:
                        plan[b] = busy
                    load[busy] -= shift
                    load[other] += shift
                    return True
    return False


def balance_of(per_cpu_now: Mapping[int, int], weights: Mapping[int, int],
               plan: Mapping[int, int], cpus: Sequence[int]) -> Balance | None:
    """Busiest CPU's share now, under ``plan``, and the lower bound of any whole-IRQ plan
    on ``cpus`` (the CPUs a plan may use; now: the busiest CPU of all)."""
    total = sum(weights.values())
    if not total or not cpus:
        return None
    planned = dict.fromkeys(cpus, 0)
    for irq, cpu in plan.items():
        planned[cpu] += weights[irq]
    best = max(total / len(cpus), max(weights.values()))
    return Balance(round(100.0 * max(per_cpu_now.values(), default=0) / total, 2),
                   round(100.0 * max(planned.values()) / total, 2),
                   round(100.0 * best / total, 2))


# --------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------


def _decided(d: Decision | None, current: int | None) -> tuple[str | None, ...]:
    """(current, recommended, action, reason) from a decision and smp_affinity now."""
    if d is None:
        return (format_cpulist(current) if current is not None else None, None, None, None)
    if d.target_mask is None:
        return (format_cpulist(current) if current is not None else None, None, "leave", d.reason)
    action = "keep" if d.target_mask == current else "move"
    return (format_cpulist(current) if current is not None else None,
            format_cpulist(d.target_mask), action, d.reason)


def build_report(
    counts: Mapping[int, Mapping[int, int]],
    names: Mapping[int, str],
    *,
    threshold: float = 5.0,
    decisions: Sequence[Decision] | None = None,
    groups: Mapping[int, str] | None = None,
    group: str = "cpu",
    source: str = "",
    current: Mapping[int, int | None] | None = None,
    cpus: Sequence[int] | None = None,
    usable: Sequence[int] | None = None,
    include_idle: bool = False,
    notes: Iterable[str] = (),
) -> Report:
    """The report from ``counts`` (irq -> cpu -> interrupts).

    ``cpus``: the CPUs to report on (default: every CPU in ``counts``);
    ``usable``: the CPUs the balancer may use (default: all of ``cpus``):
    verdicts and the plan name only those, and the interrupts an IRQ has on
    the others are reported; ``current``: smp_affinity now per IRQ (default:
    the decision's own view).
    """
    cpu_ids = tuple(sorted(cpus if cpus is not None else {c for per in counts.values()
                                                          for c in per}))
    allowed = tuple(c for c in cpu_ids if usable is None or c in set(usable)) or cpu_ids
    columns = _columns(cpu_ids, groups)
    usable_columns = [label in set(_columns(allowed, groups)) for label in columns]
    by_irq = {d.irq: d for d in decisions} if decisions is not None else {}
    weights = {irq: sum(per.get(c, 0) for c in cpu_ids) for irq, per in counts.items()}
    active = sorted(irq for irq in counts if weights[irq] or include_idle)
    plan = plan_cpus({i: weights[i] for i in active if weights[i]}, allowed)
    banned = [c for c in cpu_ids if c not in allowed]
    loads = []
    all_notes = list(notes)
    for irq in active:
        shares = _shares(_per_column(counts[irq], cpu_ids, columns, groups))
        d = by_irq.get(irq)
        now = current.get(irq) if current is not None else (d.current_mask if d else None)
        cur, rec, action, reason = (_decided(d, now) if decisions is not None
                                    else (None, None, None, None))
        off = sum(counts[irq].get(c, 0) for c in banned)
        off_share = round(100.0 * off / weights[irq], 2) if weights[irq] else 0.0
        loads.append(IrqLoad(irq, names.get(irq, ""), weights[irq], shares,
                             verdict(shares, columns, threshold, usable_columns), plan.get(irq),
                             cur, rec, action, reason, off_share))
        if off:
            on = format_cpulist(sum(1 << c for c in banned if counts[irq].get(c, 0)))
            all_notes.append(f"IRQ {irq}: {off_share:.2f}% of its interrupts are on CPU {on}, "
                             "which the balancer may not use (banned or isolated)")
    per_cpu_now = {c: sum(counts[i].get(c, 0) for i in active) for c in cpu_ids}
    if decisions is None:
        all_notes.append(NO_TOPOLOGY_NOTE)
    return Report(source, threshold, group, columns, cpu_ids, tuple(loads),
                  balance_of(per_cpu_now, {i: weights[i] for i in active}, plan, allowed),
                  tuple(all_notes), decisions is not None, allowed)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _share_cells(shares: Sequence[float], columns: Sequence[str], wide: bool) -> list[str]:
    if not wide:
        return [f"{s:.2f}" for s in shares]
    top = sorted(range(len(shares)), key=lambda k: (-shares[k], k))[:3]
    return [", ".join(f"{columns[k]} {shares[k]:.2f}" for k in top if shares[k])]


def format_report(data: Mapping[str, Any], flagged_only: bool = False) -> str:
    """A report's JSON (:meth:`Report.to_json`) as an aligned table for people."""
    columns = data["columns"]
    wide = len(columns) > TABLE_COLUMNS
    decided = any("action" in i for i in data["irqs"])
    head = ["IRQ", "NAME"] + (["TOP SHARES %"] if wide else [f"{c} %" for c in columns])
    head += ["VERDICT", "PLAN"] + (["CURRENT", "TARGET", "ACTION"] if decided else [])
    rows = [head]
    for i in data["irqs"]:
        if flagged_only and not i["flagged"]:
            continue
        plan = "-" if i["plan_cpu"] is None else f"CPU{i['plan_cpu']}"
        row = [str(i["irq"]), i["name"] or "-"] + _share_cells(i["shares"], columns, wide)
        row += [i["verdict"], plan]
        if decided:
            row += [i.get("current") or "-", i.get("recommended") or "-", i.get("action") or "-"]
        rows.append(row)
    lines = [f"load report: {data['source']}  (Balanced: the {data['group']} shares of an IRQ "
             f"differ by at most {data['threshold_pts']:g} points)", ""]
    lines += _table(rows)
    lines.append("")
    lines.append(f"{data['flagged']} of {len(data['irqs'])} IRQs have {data['group']} shares "
                 f"more than {data['threshold_pts']:g} points apart")
    b = data["balance"]
    if b is not None:
        lines.append(_balance_line(b, data))
    lines += [f"note: {n}" for n in data["notes"]]
    return "\n".join(lines) + "\n"


def _balance_line(b: Mapping[str, float], data: Mapping[str, Any]) -> str:
    """The machine's verdict, from the figures it prints: balanced when the busiest CPU's
    share now is within the threshold of the best any whole-IRQ plan can do."""
    usable = data.get("usable_cpus") or data["cpus"]
    cpus = (f"{len(usable)} CPUs" if len(usable) == len(data["cpus"])
            else f"{len(usable)} of {len(data['cpus'])} CPUs the balancer may use")
    state = ("balanced" if round(b["now"] - b["best"], 2) <= data["threshold_pts"]
             else "not balanced")
    return (f"interrupt load {state}: the busiest CPU handles {b['now']:.2f}% of all "
            f"interrupts now, {b['plan']:.2f}% under the plan, {b['best']:.2f}% at best "
            f"({cpus})")
