"""Load-aware placement (``--placement=balanced``).

Each pass measures every firing IRQ's interrupt time -- the irq + softirq time
/proc/stat gives each CPU, split over the IRQs that fired there by their
interrupt counts, as irqbalance splits it -- and then moves as few IRQs as it
takes to lower the busiest CPU's time:

* :func:`plan_placement` is the pure core: from :class:`Item` records (cost,
  where the IRQ fires, where it may go) it returns a :class:`Plan` whose
  moves each lower the busiest CPU by more than ``min_gain`` of its time,
  at most ``max_moves`` of them a pass (IRQs standing where they may not stay
  move first, outside that budget);
* :class:`BalancedPlacement` is the balancer's side: it keeps the counters
  and where each IRQ fires between passes, builds the items under every rule
  of the default placement (banned CPUs, banned and unmanaged IRQs, balance
  level none, hint policies, the device's NUMA node, CPUs in power save or
  out of vectors), hands the planned IRQs to activation as single-CPU
  targets, and leaves every light IRQ to the default placement.

Where /proc/stat's irq and softirq columns stay flat while interrupts are
counted (a kernel without IRQ time accounting), an IRQ's cost is estimated
as its count times a per-class cost (:data:`CLASS_COST_NS`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from ..kernel import procstat
from ..kernel.cpumask import cpus_of, irqbalance_parse_mask
from ..kernel.sysroot import SysRoot
from .model import BalanceLevel, HintPolicy, IrqClass
from .topology import NO_NODE, ObjType, Topology, TopoObj

if TYPE_CHECKING:  # the balancer imports this module
    from .activate import Activation
    from .classify import IrqInfo

__all__ = [
    "CLASS_COST_NS",
    "PLACEMENTS",
    "BalancedPlacement",
    "Item",
    "Plan",
    "plan_placement",
]

#: The ``--placement`` values: irqbalance's placement, or this one.
PLACEMENTS = ("irqbalance", "balanced")

#: Estimated irq + softirq ns per interrupt, for kernels without IRQ time
#: accounting: network receive work dominates, storage completions are
#: cheaper, everything else is a handler and no softirq.
CLASS_COST_NS: Mapping[IrqClass, int] = {
    IrqClass.ETHERNET: 10_000,
    IrqClass.GBETH: 10_000,
    IrqClass.TENGBETH: 10_000,
    IrqClass.STORAGE: 5_000,
}
_OTHER_COST_NS = 2_000

#: An IRQ is placed here when it costs at least this share of the mean
#: interrupt time of a usable CPU; lighter ones keep the default placement.
HEAVY_SHARE = 0.05
#: Swap partners looked at per target CPU when no single move helps.
_SWAP_TARGETS = 8
#: Weight of the past in each IRQ's ns-per-interrupt average. /proc/stat counts
#: whole jiffies (10 ms at USER_HZ=100): one pass's share of a CPU's time is
#: off by up to a jiffy, its interrupt count is exact, so the cost of an
#: interrupt is averaged over passes and multiplied by this pass's count.
_DECAY = 0.8


class Item(NamedTuple):
    """One firing IRQ as the planner sees it."""

    irq: int
    #: Interrupt time over the window, ns.
    cost: float
    #: CPU it fires on (None: unknown).
    cpu: int | None
    #: CPUs it may be placed on; 0: it stays where it is.
    allowed: int
    #: Its device's NUMA node (-1: none), for the floor.
    node: int = NO_NODE


class Plan(NamedTuple):
    """What one pass decided, and the interrupt time per CPU it predicts."""

    #: irq -> CPU for every IRQ the plan places (moved or kept where it fires).
    placed: dict[int, int]
    #: irq -> (from, to) for the IRQs that change CPU (from None: unknown).
    moves: dict[int, tuple[int | None, int]]
    #: CPU -> interrupt time now and after the plan, ns over the window.
    before: dict[int, float]
    after: dict[int, float]
    #: The busiest CPU's time no placement can go below, ns.
    floor: float
    #: Costs estimated from counts (no IRQ time accounting seen).
    estimated: bool = False
    #: Length of the window the times cover, s (None: since boot).
    window_s: float | None = None

    def to_json(self) -> dict:
        cpus = sorted(set(self.before) | set(self.after))
        return {
            "placement": "balanced",
            "estimated": self.estimated,
            "window": "since boot" if self.window_s is None else f"{self.window_s:g} s",
            "floor_us": round(self.floor / 1e3, 1),
            "busiest_now_us": round(max(self.before.values(), default=0) / 1e3, 1),
            "busiest_after_us": round(max(self.after.values(), default=0) / 1e3, 1),
            "cpus": [
                {"cpu": c, "now_us": round(self.before.get(c, 0) / 1e3, 1),
                 "after_us": round(self.after.get(c, 0) / 1e3, 1)}
                for c in cpus
            ],
            "moves": [
                {"irq": irq, "from": src, "to": dst}
                for irq, (src, dst) in sorted(self.moves.items())
            ],
        }


# --------------------------------------------------------------------------
# the pure core
# --------------------------------------------------------------------------


def floor_of(items: Sequence[Item], usable: int, background: Mapping[int, float]) -> float:
    """The busiest CPU's time no placement can beat.

    The costliest movable IRQ, the busiest CPU's load that cannot move,
    the total over the usable CPUs, and per NUMA node its devices' load
    over the node's usable CPUs when they may not leave it.
    """
    fixed: dict[int, float] = dict(background)
    movable = 0.0
    per_node: dict[int, tuple[float, int]] = {}
    for it in items:
        if it.allowed:
            movable = max(movable, it.cost)
            if it.node != NO_NODE:
                cost, mask = per_node.get(it.node, (0.0, 0))
                per_node[it.node] = (cost + it.cost, mask | it.allowed)
        elif it.cpu is not None:
            fixed[it.cpu] = fixed.get(it.cpu, 0.0) + it.cost
    total = sum(background.values()) + sum(it.cost for it in items)
    n_usable = usable.bit_count()
    local = [cost / (mask & usable).bit_count() for cost, mask in per_node.values()
             if mask & usable]
    return max([movable, max(fixed.values(), default=0.0), total / n_usable if n_usable else 0.0,
                *local])


class _State:
    """Loads per CPU and where each placed item is, while a plan is made."""

    __slots__ = ("allowed", "cost", "load", "on")

    def __init__(self, load: dict[int, float]) -> None:
        self.load = load
        self.on: dict[int, list[int]] = {}  # cpu -> irqs placed there
        self.cost: dict[int, float] = {}
        self.allowed: dict[int, int] = {}

    def put(self, irq: int, cpu: int) -> None:
        self.on.setdefault(cpu, []).append(irq)
        self.load[cpu] = self.load.get(cpu, 0.0) + self.cost[irq]

    def take(self, irq: int, cpu: int) -> None:
        self.on[cpu].remove(irq)
        self.load[cpu] -= self.cost[irq]

    def least(self, mask: int, skip: int = -1) -> int | None:
        """The least-loaded CPU of ``mask`` (ties: the lowest number)."""
        best, best_load = None, 0.0
        for cpu in cpus_of(mask):
            load = self.load.get(cpu, 0.0)
            if cpu != skip and (best is None or load < best_load):
                best, best_load = cpu, load
        return best


def _best_move(st: _State, busy: int, limit: float) -> tuple[int, int] | None:
    """The single move off ``busy`` leaving both CPUs lowest, if under ``limit``."""
    best: tuple[int, int] | None = None
    best_peak = limit
    targets: dict[int, int | None] = {}
    for irq in sorted(st.on.get(busy, ())):  # ties: the lowest IRQ number
        mask = st.allowed[irq]
        if mask not in targets:
            targets[mask] = st.least(mask, skip=busy)
        dst = targets[mask]
        if dst is None:
            continue
        cost = st.cost[irq]
        peak = max(st.load[busy] - cost, st.load.get(dst, 0.0) + cost)
        if peak < best_peak:
            best, best_peak = (irq, dst), peak
    return best


def _best_swap(st: _State, busy: int, limit: float) -> tuple[int, int, int] | None:
    """A swap of an IRQ on ``busy`` with a cheaper one elsewhere, if both end under ``limit``."""
    best: tuple[int, int, int] | None = None
    best_peak = limit
    for irq in sorted(st.on.get(busy, ())):  # ties: the lowest IRQ numbers
        cost = st.cost[irq]
        mask = st.allowed[irq] & ~(1 << busy)
        others = sorted(cpus_of(mask), key=lambda c: st.load.get(c, 0.0))[:_SWAP_TARGETS]
        for dst in others:
            for other in sorted(st.on.get(dst, ())):
                delta = cost - st.cost[other]
                if delta <= 0 or not st.allowed[other] >> busy & 1:
                    continue
                peak = max(st.load[busy] - delta, st.load[dst] + delta)
                if peak < best_peak:
                    best, best_peak = (irq, dst, other), peak
    return best


def plan_placement(
    items: Iterable[Item],
    usable: int,
    background: Mapping[int, float] | None = None,
    *,
    min_gain: float = 0.05,
    max_moves: int = 16,
    heavy_share: float = HEAVY_SHARE,
) -> Plan:
    """Where the heavy movable IRQs go: the busiest CPU lowest, then the fewest moves.

    ``usable``: the CPUs any IRQ may be placed on (online, not banned).
    ``background``: CPU time that no IRQ explains (it never moves). Items
    with ``allowed == 0`` or lighter than ``heavy_share`` of the mean usable
    CPU's time stay where they fire. A heavy item that fires outside its
    ``allowed`` CPUs (or nowhere known) is placed first, on the least-loaded
    allowed CPU, costliest first. Then, at most ``max_moves`` times, the
    busiest CPU gives one IRQ to the CPU that ends lowest (or swaps one for
    a cheaper one, two moves), when that lowers the busiest CPU's time by
    more than ``min_gain`` of it.
    """
    items = list(items)
    background = dict(background or {})
    before: dict[int, float] = dict.fromkeys(cpus_of(usable), 0.0)
    for cpu, ns in background.items():
        before[cpu] = before.get(cpu, 0.0) + ns
    for it in items:
        if it.cpu is not None:
            before[it.cpu] = before.get(it.cpu, 0.0) + it.cost
    n_usable = usable.bit_count()
    mean = sum(before.values()) / n_usable if n_usable else 0.0
    st = _State(dict(before))
    heavy = [it for it in items
             if it.allowed & usable and it.cost > 0 and it.cost >= heavy_share * mean]
    for it in heavy:
        st.cost[it.irq] = it.cost
        st.allowed[it.irq] = it.allowed & usable
    placed: dict[int, int] = {}
    start: dict[int, int | None] = {it.irq: it.cpu for it in heavy}
    stray = []
    for it in heavy:
        if it.cpu is not None and st.allowed[it.irq] >> it.cpu & 1:
            st.on.setdefault(it.cpu, []).append(it.irq)
            placed[it.irq] = it.cpu
        else:
            if it.cpu is not None:
                st.load[it.cpu] -= it.cost
            stray.append(it)
    for it in sorted(stray, key=lambda i: (-i.cost, i.irq)):
        dst = st.least(st.allowed[it.irq])
        if dst is not None:
            st.put(it.irq, dst)
            placed[it.irq] = dst
    _improve(st, placed, max_moves, min_gain)
    moves = {irq: (start[irq], cpu) for irq, cpu in placed.items() if start[irq] != cpu}
    return Plan(placed, moves, before, st.load, floor_of(items, usable, background))


def _improve(st: _State, placed: dict[int, int], max_moves: int, min_gain: float) -> None:
    """Local search from where the IRQs are: single moves, then swaps, off the busiest CPU."""
    budget = max_moves
    while budget > 0 and st.load:
        busy = max(st.load, key=lambda c: (st.load[c], -c))
        limit = st.load[busy] * (1.0 - min_gain)
        move = _best_move(st, busy, limit)
        if move is not None:
            irq, dst = move
            st.take(irq, busy)
            st.put(irq, dst)
            placed[irq] = dst
            budget -= 1
            continue
        swap = _best_swap(st, busy, limit) if budget >= 2 else None
        if swap is None:
            return
        irq, dst, other = swap
        st.take(irq, busy)
        st.take(other, dst)
        st.put(irq, dst)
        st.put(other, busy)
        placed[irq], placed[other] = dst, busy
        budget -= 2


# --------------------------------------------------------------------------
# the balancer's side
# --------------------------------------------------------------------------


def class_cost(irq_class: IrqClass) -> int:
    """Estimated ns per interrupt of a class (no IRQ time accounting)."""
    return CLASS_COST_NS.get(irq_class, _OTHER_COST_NS)


def usable_cpus(topo: Topology) -> int:
    """Online, unbanned CPUs that are neither in power save nor out of vectors."""
    usable = topo.online & topo.unbanned
    for cpu in topo.cpus:
        if cpu.powersave or cpu.slots_left <= 0:
            usable &= ~(1 << cpu.number)
    return usable


def movable_cpus(info: IrqInfo, topo: Topology, usable: int) -> int:
    """CPUs of ``usable`` the default placement could give ``info`` (0: it is not placed).

    The device's node when it has usable CPUs, else any node (irqbalance
    sends it to the least-loaded node); with ``--hintpolicy=subset`` only
    CPUs of its hint.
    """
    if info.level == BalanceLevel.NONE or info.unmanaged_reason is not None:
        return 0
    if info.hint and info.hintpolicy is HintPolicy.EXACT:
        return 0
    node = info.node
    allowed = usable
    if node is not None and (node.number != NO_NODE or not topo.numa) and node.mask & usable:
        allowed = node.mask & usable
    if info.hint and info.hintpolicy is HintPolicy.SUBSET:
        allowed &= info.hint
    return allowed


class BalancedPlacement:
    """State of the balanced placement between passes, for one :class:`Balancer`."""

    def __init__(self, root: SysRoot, log: logging.Logger) -> None:
        self.root = root
        self.log = log
        self._topo: Topology | None = None
        self._counts: dict[int, int] = {}
        self._jiffies: dict[int, int] = {}
        #: irq -> CPU it fires on (absent: to read from effective_affinity).
        self._where: dict[int, int] = {}
        #: irq -> (decayed ns, decayed interrupts) measured for it.
        self._per_interrupt: dict[int, tuple[float, float]] = {}
        self._estimate_said = False
        self._planned_at = 0.0
        self.last_plan: Plan | None = None

    def plan_pass(self, balancer, stat: str | None) -> Plan | None:
        """Plan this pass and hand the planned IRQs to activation."""
        topo: Topology = balancer.topo
        if topo is not self._topo:  # a (re)build: start from the counters since boot
            self._topo, self._counts, self._jiffies, self._where = topo, {}, {}, {}
            self._per_interrupt = {}
        rows = procstat.parse_irq_jiffies(stat) if stat is not None else None
        if rows is None:
            return None
        hz = balancer.settings.hz
        since_boot = not self._jiffies
        now = time.monotonic()
        window, self._planned_at = now - self._planned_at, now
        cpu_ns = self._cpu_times(rows, hz)
        deltas = self._deltas(balancer.irqs)
        estimated = bool(deltas) and not any(cpu_ns.values())
        if estimated and not self._estimate_said:
            self._estimate_said = True
            self.log.warning(
                "interrupt time in /proc/stat is flat while interrupts are counted (no IRQ time "
                "accounting): estimating each IRQ's cost as its count x a per-class cost"
            )
        usable = usable_cpus(topo)
        items, background = self._items(balancer.irqs, topo, usable, deltas, cpu_ns, estimated)
        s = balancer.settings
        plan = plan_placement(
            items, usable, background,
            min_gain=s.placement_min_gain, max_moves=s.placement_max_moves,
        )
        plan = plan._replace(estimated=estimated, window_s=None if since_boot else round(window, 1))
        self._hand_over(balancer, plan)
        _keep_light(balancer, items, plan, usable)
        self.last_plan = plan
        if plan.moves:
            self.log.debug(
                "balanced placement: %d moves, busiest CPU %.1f -> %.1f us (floor %.1f us)",
                len(plan.moves), max(plan.before.values(), default=0) / 1e3,
                max(plan.after.values(), default=0) / 1e3, plan.floor / 1e3,
            )
        return plan

    def _cpu_times(self, rows, hz: int) -> dict[int, float]:
        per_jiffy = 1e9 / hz
        out: dict[int, float] = {}
        seen: dict[int, int] = {}
        for cpu, raw in rows:
            if raw is None:
                continue
            seen[cpu] = raw
            out[cpu] = max(raw - self._jiffies.get(cpu, 0), 0) * per_jiffy
        self._jiffies = seen
        return out

    def _deltas(self, irqs: list[IrqInfo]) -> dict[int, int]:
        prev = self._counts
        counts = {info.irq: info.count for info in irqs}
        self._counts = counts
        return {irq: n - prev.get(irq, 0) for irq, n in counts.items() if n > prev.get(irq, 0)}

    def _items(
        self,
        irqs: list[IrqInfo],
        topo: Topology,
        usable: int,
        deltas: Mapping[int, int],
        cpu_ns: Mapping[int, float],
        estimated: bool,
    ) -> tuple[list[Item], dict[int, float]]:
        firing = [info for info in irqs if info.irq in deltas]
        where = {info.irq: self._locate(info.irq, topo.online) for info in firing}
        per_cpu: dict[int, int] = {}
        for info in firing:
            cpu = where[info.irq]
            if cpu is not None:
                per_cpu[cpu] = per_cpu.get(cpu, 0) + deltas[info.irq]
        items = []
        for info in firing:
            cpu, n = where[info.irq], deltas[info.irq]
            if estimated:
                cost = float(n * class_cost(info.irq_class))
            elif cpu is None:
                cost = 0.0
            else:
                cost = self._smoothed(info.irq, cpu_ns.get(cpu, 0.0) * n / per_cpu[cpu], n)
            node = info.node.number if info.node is not None else NO_NODE
            items.append(Item(info.irq, cost, cpu, movable_cpus(info, topo, usable), node))
        background = {} if estimated else {
            cpu: ns for cpu, ns in cpu_ns.items() if ns and cpu not in per_cpu
        }
        return items, background

    def _smoothed(self, irq: int, ns: float, n: int) -> float:
        """This pass's ``n`` interrupts at the IRQ's average ns per interrupt."""
        old_ns, old_n = self._per_interrupt.get(irq, (0.0, 0.0))
        total_ns, total_n = old_ns * _DECAY + ns, old_n * _DECAY + n
        self._per_interrupt[irq] = (total_ns, total_n)
        return n * total_ns / total_n

    def _locate(self, irq: int, online: int) -> int | None:
        cpu = self._where.get(irq)
        if cpu is None:
            cpu = self._read_location(irq, online)
            if cpu is not None:
                self._where[irq] = cpu
        return cpu

    def _read_location(self, irq: int, online: int) -> int | None:
        """The first CPU of effective_affinity, else of smp_affinity, that is online."""
        for name in ("effective_affinity", "smp_affinity"):
            line = self.root.read_first_line(self.root.irq_file(irq, name))
            if line is None:
                continue
            try:
                mask = irqbalance_parse_mask(line) & online
            except ValueError:
                continue
            if mask:
                return (mask & -mask).bit_length() - 1
        return None

    def _hand_over(self, balancer, plan: Plan) -> None:
        """Put each planned IRQ on its CPU object, marked to be written."""
        topo: Topology = balancer.topo
        rebalance: list[IrqInfo] = balancer.rebalance
        queued = {id(info) for info in rebalance}
        for irq, cpu_number in plan.placed.items():
            info = balancer.irq_info(irq)
            cpu = topo.cpu(cpu_number)
            if info is None or cpu is None:
                continue
            if irq not in plan.moves and id(info) not in queued:
                continue  # stays where it fires and nothing asks to place it
            _assign(info, cpu, rebalance if id(info) in queued else None)

    def activated(self, activations: Iterable[Activation]) -> None:
        """Where IRQs fire after the writes of this pass (the kernel's answer)."""
        for act in activations:
            if act.write is not None and act.write.errno != 0:
                continue  # refused: it fires where it did
            if act.target and act.target & (act.target - 1) == 0:
                self._where[act.irq] = act.target.bit_length() - 1
            elif act.write is not None and not act.target >> self._where.get(act.irq, 0) & 1:
                self._where.pop(act.irq, None)  # it left the CPU: the kernel picks another


#: The balance level whose objects an IRQ of that level is placed on.
_LEVEL_OF = {ObjType.CPU: BalanceLevel.CORE, ObjType.CACHE: BalanceLevel.CACHE,
             ObjType.PACKAGE: BalanceLevel.PACKAGE}


def _keep_light(balancer, items: Sequence[Item], plan: Plan, usable: int) -> None:
    """Light firing IRQs waiting for placement stay on the CPU they fire on.

    Each goes to the object of its class's level that holds that CPU (its
    mask is what the default would write, and the kernel keeps the CPU), when
    that object's usable CPUs are all ones the IRQ may use; otherwise the
    default placement places it.
    """
    topo: Topology = balancer.topo
    queued = {id(info): info for info in balancer.rebalance}
    for it in items:
        info = balancer.irq_info(it.irq)
        if (info is None or id(info) not in queued or it.irq in plan.placed or it.cpu is None
                or not it.allowed >> it.cpu & 1):
            continue
        obj = topo.cpu(it.cpu)
        while obj is not None and _LEVEL_OF.get(obj.obj_type) != info.level:
            obj = obj.parent
        if obj is not None and not obj.mask & usable & ~it.allowed:
            _assign(info, obj, balancer.rebalance)


def _assign(info: IrqInfo, cpu: TopoObj, rebalance: list[IrqInfo] | None) -> None:
    if rebalance is not None:
        rebalance.remove(info)
    elif info.assigned is not None and info in info.assigned.interrupts:
        info.assigned.interrupts.remove(info)
    cpu.interrupts.append(info)
    info.assigned = cpu
    info.moved = True
