"""Load-aware placement (``--placement=balanced``).

Each pass trusts the kernel's counters, not its own bookkeeping:

* **where** each firing IRQ fired is the rise of its per-CPU columns in
  /proc/interrupts over the window (several CPUs when the kernel spread it),
  whatever was written to its smp_affinity (a write is only a request: the
  kernel may refuse it, revert it, or pick one CPU of a wider mask);
* **what** an interrupt costs is estimated per IRQ from the irq + softirq
  time /proc/stat gives each CPU: each CPU's measured time is shared over
  the IRQs that fired there in proportion to what each was expected to cost,
  and each IRQ's ns per interrupt is averaged over windows (not over
  interrupts: the counters since boot seed the first pass only);
* **feedback**: where a CPU's measured time is off the estimates by more
  than the jiffies' rounding, the plan is made from the measured times.

Then it moves as few IRQs as it takes to lower the busiest CPU's time:

* :func:`plan_placement` is the pure core: from :class:`Item` records (cost,
  where the IRQ fires, where it may go) it returns a :class:`Plan` whose
  moves together lower the busiest CPU by more than ``min_gain`` of its
  time, at most ``max_moves`` of them a pass (IRQs standing where they may
  not stay move first, outside that budget);
* :class:`BalancedPlacement` is the balancer's side: it keeps the counters
  and estimates between passes, builds the items under every rule of the
  default placement (banned CPUs, banned and unmanaged IRQs, balance level
  none, hint policies, the device's NUMA node, CPUs in power save or out of
  vectors), hands the moved IRQs to activation as single-CPU targets, and
  leaves the IRQs it does not move where they fire.

Where /proc/stat's irq and softirq columns stay flat while interrupts are
counted (a kernel without IRQ time accounting) nothing measures what an
interrupt costs: each device class's interrupts are spread evenly
(:func:`plan_by_kind`, every interrupt :data:`UNIT_NS`), a class that cannot
be spread evenly making room in the others only as far as is safe whatever
the classes cost.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import time
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Container, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple

from ..kernel import procstat
from ..kernel.cpumask import cpus_of as _cpus_of
from ..kernel.cpumask import irqbalance_parse_mask
from ..kernel.sysroot import SysRoot
from .model import BalanceLevel, HintPolicy
from .topology import NO_NODE, ObjType, Topology, TopoObj

if TYPE_CHECKING:  # the balancer imports this module
    from .activate import Activation
    from .classify import IrqInfo

__all__ = [
    "PLACEMENTS",
    "UNIT_NS",
    "BalancedPlacement",
    "Item",
    "Located",
    "Plan",
    "plan_by_kind",
    "plan_placement",
]

@functools.lru_cache(maxsize=256)
def cpus_of(mask: int) -> tuple[int, ...]:
    """Sorted CPU numbers in ``mask`` (the few masks a pass uses, remembered: at 1024
    CPUs a mask's bits take longer to list than a pass's search)."""
    return tuple(_cpus_of(mask))


#: The ``--placement`` values: irqbalance's placement, or this one.
PLACEMENTS = ("irqbalance", "balanced")

#: An IRQ is a candidate to move when it costs at least this share of the
#: mean interrupt time of a usable CPU (any IRQ when the busiest CPU is crowded).
HEAVY_SHARE = 0.05


class Item(NamedTuple):
    """One firing IRQ as the planner sees it."""

    irq: int
    #: Interrupt time over the window, ns.
    cost: float
    #: CPU it fires on (most of its interrupts; None: unknown).
    cpu: int | None
    #: CPUs it may be placed on; 0: it stays where it is.
    allowed: int
    #: Its device's NUMA node (-1: none), for the floor.
    node: int = NO_NODE
    #: (CPU, ns) of each CPU it fired on, when the kernel spread it over
    #: several; empty: all of ``cost`` is on ``cpu``.
    spread: tuple[tuple[int, float], ...] = ()
    #: Its time at its smoothed rate (None: ``cost``): a plan must also
    #: lower the busiest CPU at these times, so one pass's spike moves nothing.
    steady: float | None = None
    #: (CPU, ns) of the window's time where the kernel counted it, when that is
    #: not where it fires now (the window since boot: its columns since boot);
    #: empty: where it fires. The plan's times now count it there, its
    #: times after count it where it fires (or is moved to).
    counted: tuple[tuple[int, float], ...] = ()


class Located(NamedTuple):
    """Where one firing IRQ's interrupts of the window were counted."""

    n: int
    #: (CPU, interrupts) per CPU whose column rose; empty: not known.
    cpus: tuple[tuple[int, int], ...]


class Plan(NamedTuple):
    """What one pass decided, and the interrupt time per CPU it predicts."""

    #: irq -> CPU for every IRQ the plan places (moved or kept where it fires).
    placed: dict[int, int]
    #: irq -> (from, to) for the IRQs that change CPU (from None: unknown).
    moves: dict[int, tuple[int | None, int]]
    #: CPU -> interrupt time now (where the kernel counted it) and after the
    #: plan, ns over the window.
    before: dict[int, float]
    after: dict[int, float]
    #: The busiest CPU's time no placement can go below, ns.
    floor: float
    #: Costs estimated from counts (no IRQ time accounting seen).
    estimated: bool = False
    #: Length of the window the times cover, s (None: since boot).
    window_s: float | None = None
    #: irq -> where its /proc/interrupts columns rose this window.
    located: Mapping[int, Located] = MappingProxyType({})
    #: The busiest CPU's time the last plan predicted for this window, and the
    #: time /proc/stat measured on that CPU (ns; None: no prediction).
    predicted_busiest: float | None = None
    measured_busiest: float | None = None
    #: The plan was made from the measured times because the last prediction was off.
    replanned: bool = False

    def to_json(self) -> dict:
        cpus = sorted(set(self.before) | set(self.after))
        out = {
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
            "located": [
                {"irq": irq, "cpus": [cpu for cpu, _ in loc.cpus], "count": loc.n}
                for irq, loc in sorted(self.located.items())
            ],
        }
        if self.predicted_busiest is not None and self.measured_busiest is not None:
            out["predicted_busiest_us"] = round(self.predicted_busiest / 1e3, 1)
            out["measured_busiest_us"] = round(self.measured_busiest / 1e3, 1)
            out["replanned"] = self.replanned
        return out


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
        if it.allowed and not it.spread:
            movable = max(movable, it.cost)
            if it.node != NO_NODE:
                cost, mask = per_node.get(it.node, (0.0, 0))
                per_node[it.node] = (cost + it.cost, mask | it.allowed)
        elif it.spread:
            for cpu, ns in it.spread:
                fixed[cpu] = fixed.get(cpu, 0.0) + ns
        elif it.cpu is not None:
            fixed[it.cpu] = fixed.get(it.cpu, 0.0) + it.cost
    total = sum(background.values()) + sum(it.cost for it in items)
    n_usable = usable.bit_count()
    local = [cost / (mask & usable).bit_count() for cost, mask in per_node.values()
             if mask & usable]
    return max([movable, max(fixed.values(), default=0.0), total / n_usable if n_usable else 0.0,
                *local])


class _Least:
    """The least-loaded CPU of each allowed set, kept in heaps updated lazily.

    A CPU's entry is valid while its version is the CPU's current one; every
    load change pushes a fresh entry into the heap of each set holding the
    CPU. Finding the least-loaded CPU pops stale entries only: a pass costs
    O(log n) per move, not a scan of the CPUs.
    """

    __slots__ = ("heaps", "load", "sets_of", "version")

    def __init__(self, load: dict[int, float], masks: Iterable[int]) -> None:
        self.load = load
        self.version: dict[int, int] = {}
        self.heaps: dict[int, list[tuple[float, int, int]]] = {}
        self.sets_of: dict[int, list[int]] = {}
        for mask in set(masks):
            heap = [(load.get(cpu, 0.0), cpu, 0) for cpu in cpus_of(mask)]
            heapq.heapify(heap)
            self.heaps[mask] = heap
            for cpu in cpus_of(mask):
                self.sets_of.setdefault(cpu, []).append(mask)

    def changed(self, cpu: int) -> None:
        v = self.version.get(cpu, 0) + 1
        self.version[cpu] = v
        entry = (self.load.get(cpu, 0.0), cpu, v)
        for mask in self.sets_of.get(cpu, ()):
            heap = self.heaps[mask]
            heapq.heappush(heap, entry)
            if len(heap) > 4 * mask.bit_count() + 64:  # too many stale entries: rebuild
                self.heaps[mask] = [e for e in heap if e[2] == self.version.get(e[1], 0)]
                heapq.heapify(self.heaps[mask])

    def smallest(self, mask: int, k: int, skip: int = -1) -> list[int]:
        """Up to ``k`` least-loaded CPUs of ``mask`` other than ``skip`` (ties: lowest number)."""
        heap = self.heaps[mask]
        version = self.version
        taken: list[tuple[float, int, int]] = []
        out: list[int] = []
        while heap and len(out) < k:
            entry = heapq.heappop(heap)
            if entry[2] != version.get(entry[1], 0):
                continue  # stale
            taken.append(entry)
            if entry[1] != skip:
                out.append(entry[1])
        for entry in taken:
            heapq.heappush(heap, entry)
        return out


class _State:
    """Loads per CPU and where each candidate is, while a plan is made."""

    __slots__ = ("allowed", "cost", "least", "load", "on")

    def __init__(self, load: dict[int, float]) -> None:
        self.load = load
        #: cpu -> allowed set -> sorted [(cost, irq)] of the candidates there.
        self.on: dict[int, dict[int, list[tuple[float, int]]]] = {}
        self.cost: dict[int, float] = {}
        self.allowed: dict[int, int] = {}
        self.least: _Least | None = None

    def add(self, irq: int, cpu: int) -> None:
        """A candidate already counted in ``load`` at ``cpu``."""
        insort(self.on.setdefault(cpu, {}).setdefault(self.allowed[irq], []),
               (self.cost[irq], irq))

    def put(self, irq: int, cpu: int) -> None:
        self.add(irq, cpu)
        self.load[cpu] = self.load.get(cpu, 0.0) + self.cost[irq]
        if self.least is not None:
            self.least.changed(cpu)

    def take(self, irq: int, cpu: int) -> None:
        group = self.on[cpu][self.allowed[irq]]
        del group[bisect_left(group, (self.cost[irq], irq))]
        self.load[cpu] -= self.cost[irq]
        if self.least is not None:
            self.least.changed(cpu)


def _nearest(group: list[tuple[float, int]], want: float) -> list[tuple[float, int]]:
    """The entries of a sorted group whose cost is nearest ``want``, below and above."""
    i = bisect_left(group, (want, -1))
    out = group[i:i + 1]
    if i:  # the lowest IRQ number of the cost just below
        out.append(group[bisect_left(group, (group[i - 1][0], -1))])
    return out


def _best_move(st: _State, busy: int) -> tuple[int, int] | None:
    """The move off ``busy`` leaving the higher of the two CPUs lowest, if it lowers ``busy``."""
    assert st.least is not None
    load_b = st.load[busy]
    best: tuple[int, int] | None = None
    best_key = (load_b, 0)
    for mask, group in st.on.get(busy, {}).items():
        if not group:
            continue
        for dst in st.least.smallest(mask, 1, skip=busy):
            load_d = st.load.get(dst, 0.0)
            for cost, irq in _nearest(group, (load_b - load_d) / 2):
                peak = max(load_b - cost, load_d + cost)
                if (peak, irq) < best_key:
                    best, best_key = (irq, dst), (peak, irq)
    return best


#: Costliest candidates on the busiest CPU tried in a swap, and partner CPUs per set.
_SWAP_IRQS = 32
_SWAP_TARGETS = 8


def _best_swap(st: _State, busy: int) -> tuple[int, int, int] | None:
    """A swap of an IRQ on ``busy`` with a cheaper one elsewhere that lowers ``busy``."""
    assert st.least is not None
    load_b = st.load[busy]
    best: tuple[int, int, int] | None = None
    best_key = (load_b, 0, 0)
    for mask, group in st.on.get(busy, {}).items():
        for dst in st.least.smallest(mask, _SWAP_TARGETS, skip=busy):
            load_d = st.load.get(dst, 0.0)
            half = (load_b - load_d) / 2
            for o_mask, others in st.on.get(dst, {}).items():
                if not others or not o_mask >> busy & 1:
                    continue
                for cost, irq in group[-_SWAP_IRQS:]:
                    for o_cost, other in _nearest(others, cost - half):
                        delta = cost - o_cost
                        if delta <= 0:
                            continue
                        peak = max(load_b - delta, load_d + delta)
                        if (peak, irq, other) < best_key:
                            best, best_key = (irq, dst, other), (peak, irq, other)
    return best


def _where_it_fires(it: Item) -> tuple[tuple[int, float], ...]:
    """(CPU, ns) of each CPU the item's time falls on where it fires now."""
    if it.spread:
        return it.spread
    return ((it.cpu, it.cost),) if it.cpu is not None else ()


def _from_now_on(before: dict[int, float], items: Sequence[Item]) -> dict[int, float]:
    """``before`` with each IRQ counted elsewhere than it fires put where it fires (from
    now on, that is where it costs)."""
    if not any(it.counted for it in items):
        return before
    load = dict(before)
    for it in items:
        if it.counted:
            for cpu, ns in it.counted:
                load[cpu] -= ns
            for cpu, ns in _where_it_fires(it):
                load[cpu] = load.get(cpu, 0.0) + ns
    return load


def _peak(load: Mapping[int, float]) -> float:
    return max(load.values(), default=0.0)


#: When the busiest CPU is this many times the mean, light IRQs may move too
#: (not those under this share of the mean: an IRQ that barely fires stays).
CROWDED = 1.5
LIGHTEST = 0.001


def plan_placement(
    items: Iterable[Item],
    usable: int,
    background: Mapping[int, float] | None = None,
    *,
    min_gain: float = 0.05,
    max_moves: int = 16,
    heavy_share: float = HEAVY_SHARE,
    min_gain_ns: float = 0.0,
) -> Plan:
    """Where the movable IRQs go: the busiest CPU lowest, then the fewest moves.

    ``usable``: the CPUs any IRQ may be placed on (online, not banned).
    ``background``: CPU time that no IRQ explains (it never moves). Items
    with ``allowed == 0``, or fired over several CPUs (the kernel spreads
    them), stay where they fire. A single-CPU item that fires outside its
    ``allowed`` CPUs (or nowhere known) is placed first, on the least-loaded
    allowed CPU, costliest first (outside the budget). Then, at most
    ``max_moves`` times, the busiest CPU gives one IRQ to the CPU that ends
    lowest (or swaps one for a cheaper one, two moves) while that lowers it.
    Candidates are the IRQs of at least ``heavy_share`` of the mean usable
    CPU's time, and every IRQ when the busiest CPU is :data:`CROWDED` times
    the mean. The moves are kept only if together they lower the busiest
    CPU's time by more than ``min_gain`` of it (and by ``min_gain_ns`` at
    least: what the measurement cannot tell apart), at this window's times
    and at the items' ``steady`` times alike (the hysteresis).
    """
    items = list(items)
    background = dict(background or {})
    before: dict[int, float] = dict.fromkeys(cpus_of(usable), 0.0)
    for cpu, ns in background.items():
        before[cpu] = before.get(cpu, 0.0) + ns
    for it in items:
        for cpu, ns in it.counted or _where_it_fires(it):
            before[cpu] = before.get(cpu, 0.0) + ns
    start_load = _from_now_on(before, items)
    n_usable = usable.bit_count()
    mean = sum(start_load[c] for c in cpus_of(usable)) / n_usable if n_usable else 0.0
    cand, stray = _candidates(items, usable, heavy_share * mean,
                              _peak(start_load) > CROWDED * mean)
    st = _State(dict(start_load))
    for it in cand + stray:
        st.cost[it.irq] = it.cost
        st.allowed[it.irq] = it.allowed & usable
    st.least = _Least(st.load, st.allowed.values())
    start: dict[int, int | None] = {it.irq: it.cpu for it in cand + stray}
    placed: dict[int, int] = {}
    on, allowed_of = st.on, st.allowed
    for it in cand:  # grouped, then each group sorted once (st.add per IRQ: insort)
        assert it.cpu is not None
        on.setdefault(it.cpu, {}).setdefault(allowed_of[it.irq], []).append((it.cost, it.irq))
        placed[it.irq] = it.cpu
    for groups in on.values():
        for group in groups.values():
            group.sort()
    for it in sorted(stray, key=lambda i: (-i.cost, i.irq)):
        for cpu, ns in _where_it_fires(it):
            st.load[cpu] -= ns
            st.least.changed(cpu)
        dst = st.least.smallest(st.allowed[it.irq], 1)[0]
        st.put(it.irq, dst)
        placed[it.irq] = dst
    forced = dict(placed)
    first_load = dict(st.load)
    _improve(st, placed, max_moves)
    moved = {irq for irq, cpu in placed.items() if forced.get(irq) != cpu}
    if moved and not _worth_it(items, moved, placed, forced, first_load, st.load, min_gain,
                               min_gain_ns):
        for irq in moved:
            placed[irq] = forced[irq]
        st.load = first_load
    moves = {irq: (start[irq], cpu) for irq, cpu in placed.items() if start[irq] != cpu}
    return Plan(placed, moves, before, st.load, floor_of(items, usable, background))


#: Without IRQ time accounting: how many times dearer an interrupt of one device class
#: may be than one of another (interrupts cost from about a microsecond to tens of them).
DEARER_CLASS = 10.0
#: Without IRQ time accounting: how much above its even spread a class may be placed to
#: make room for another class that cannot be spread evenly.
SPARE_CLASS = 0.15


def plan_by_kind(
    items: Sequence[Item],
    kinds: Mapping[int, object],
    usable: int,
    *,
    min_gain: float = 0.05,
    max_moves: int = 16,
    settle_gain: float | None = None,
) -> Plan:
    """:func:`plan_placement` for each kind of IRQ alone (costs in interrupts;
    :func:`_plan_by_kind`).

    ``settle_gain`` (a first placement, whose moves are free): the plan is made again
    from where it puts the IRQs, at that gain, until it moves nothing (at most
    :data:`_SETTLE` times): which ``w`` wins depends on where the IRQs start, and the next
    pass starts where this one puts them.
    """
    plan = _plan_by_kind(items, kinds, usable, min_gain, max_moves)
    if settle_gain is None:
        return plan
    start = {it.irq: it.cpu for it in items}
    for _ in range(_SETTLE):
        where = plan.placed
        moved = [it._replace(cpu=where[it.irq], spread=()) if it.irq in where else it
                 for it in items]
        again = _plan_by_kind(moved, kinds, usable, settle_gain, max_moves)
        if not again.moves:
            break
        placed = {**where, **again.placed}
        plan = plan._replace(
            placed=placed, after=again.after,
            moves={irq: (start[irq], cpu) for irq, cpu in placed.items() if start[irq] != cpu})
    return plan


#: How many times a first placement without IRQ time accounting is made again.
_SETTLE = 3


def _plan_by_kind(
    items: Sequence[Item],
    kinds: Mapping[int, object],
    usable: int,
    min_gain: float,
    max_moves: int,
) -> Plan:
    """The plan without IRQ time accounting.

    Without IRQ time accounting nothing says what an interrupt of each
    device class costs. Spreading each class's interrupts evenly over the
    CPUs keeps every CPU near the mean whatever the classes' costs are,
    which balancing all interrupts as equal does not (a CPU may end with
    all of the dear ones). Where a class cannot be spread evenly (one of its
    IRQs fires more than a CPU's share of the class), the CPUs it leaves
    above their share may take less of the other classes: the classes are
    planned in turn, the least even first (its costliest IRQ the largest share
    of it), and the share of a class a CPU keeps above its even share counts,
    for the classes planned after it, as ``w`` times that share of their own
    interrupts. Which ``w`` (0 to 1 by quarters) is right depends on what the
    classes cost, which nothing measures. A ``w`` is ruled out when it puts
    some class more than :data:`SPARE_CLASS` further above its floor than
    spreading it alone does (were that class all the cost); of the others,
    the plan kept is the one whose busiest CPU is least above the floor in the
    worst case over the classes' costs, taken to differ by at most
    :data:`DEARER_CLASS` times an interrupt (every class's interrupts alike,
    one or two classes dear, all but one; ties: the smaller ``w``). The move budget
    goes to the classes in that order.
    """
    groups: dict[object, list[Item]] = {}
    for it in items:
        groups.setdefault(kinds.get(it.irq), []).append(it)
    totals_of = {id(g): sum(i.cost for i in g) for g in groups.values()}
    # the biggest IRQ's share of its class: the least even class first
    biggest_of = {id(g): max(i.cost for i in g) / totals_of[id(g)] if totals_of[id(g)] else 0.0
                  for g in groups.values()}
    order = sorted(groups.values(), key=lambda g: (-biggest_of[id(g)], g[0].irq))
    n_usable = usable.bit_count()
    if len(order) < 2 or n_usable < 2:
        return _plan_classes(order, 0.0, usable, min_gain, max_moves)[0]
    totals = [totals_of[id(g)] for g in order]
    biggest = [biggest_of[id(g)] for g in order]
    # each class's total time for interrupts of each class costing 1 or DEARER_CLASS (the
    # classes one of them dear, then two, ... all): every mix of costs in that range
    k = len(order)
    weights = [[t * (DEARER_CLASS if c in dear else 1.0) for c, t in enumerate(totals)]
               for size in sorted({0, 1, 2, k - 1} & set(range(k)))
               for dear in itertools.combinations(range(k), size)]

    def worst(per_class: list[dict[int, float]]) -> float:
        shares = [{c: ns / t for c, ns in after.items()} if t else {}
                  for after, t in zip(per_class, totals)]
        out = 0.0
        for wt in weights:
            floor = max(max(w * m for w, m in zip(wt, biggest)), sum(wt) / n_usable)
            load: dict[int, float] = {}
            for w, share in zip(wt, shares):
                for cpu, x in share.items():
                    load[cpu] = load.get(cpu, 0.0) + w * x
            out = max(out, max(load.values(), default=0.0) / floor)
        return round(out, 6)

    options = [(w, *_plan_classes(order, w, usable, min_gain, max_moves))
               for w in (0.0, 0.25, 0.5, 0.75, 1.0)]

    def alone(per_class: list[dict[int, float]]) -> list[float]:
        # each class's busiest CPU over its floor, were it the only one to cost anything
        return [max(after.values(), default=0.0) / t / max(m, 1.0 / n_usable) if t else 0.0
                for after, t, m in zip(per_class, totals, biggest)]

    even = alone(options[0][2])
    best: tuple[float, float, Plan] | None = None
    for w, plan, per_class in options:
        if any(r > e * (1.0 + SPARE_CLASS) for r, e in zip(alone(per_class), even)):
            continue  # it would cost some class too much, were that class all the cost
        score = worst(per_class)
        if best is None or score < best[0]:
            best = (score, w, plan)
    assert best is not None
    return best[2]


def _plan_classes(
    order: list[list[Item]],
    w: float,
    usable: int,
    min_gain: float,
    max_moves: int,
) -> tuple[Plan, list[dict[int, float]]]:
    """Each class planned in turn, with ``w`` times the excess the classes before it left
    on each CPU (their share above 1 / n, in its own interrupts) as its background; the
    plan and each class's interrupts per CPU after it."""
    placed: dict[int, int] = {}
    moves: dict[int, tuple[int | None, int]] = {}
    before: dict[int, float] = {}
    after: dict[int, float] = {}
    per_class: list[dict[int, float]] = []
    #: per class planned: its total, and per CPU its interrupts above its even share
    excess: list[tuple[float, dict[int, float]]] = []
    n_usable = usable.bit_count()
    budget = max_moves
    for group in order:
        total = sum(i.cost for i in group)
        background: dict[int, float] = {}
        for other, over in excess if w else ():
            # that share of this class's interrupts (as many as the other class's would
            # weigh with an interrupt DEARER_CLASS times dearer, at most)
            scale = w * min(total / other, DEARER_CLASS)
            for cpu, ns in over.items():
                background[cpu] = background.get(cpu, 0.0) + ns * scale
        plan = plan_placement(group, usable, background, min_gain=min_gain, max_moves=budget)
        budget = max(budget - len(plan.moves), 0)
        placed.update(plan.placed)
        moves.update(plan.moves)
        for cpu, ns in plan.before.items():
            before[cpu] = before.get(cpu, 0.0) + ns - background.get(cpu, 0.0)
        mine = {cpu: ns - background.get(cpu, 0.0) for cpu, ns in plan.after.items()}
        for cpu, ns in mine.items():
            after[cpu] = after.get(cpu, 0.0) + ns
        per_class.append(mine)
        if total > 0 and n_usable:
            even = total / n_usable
            excess.append((total, {cpu: ns - even for cpu, ns in mine.items()
                                   if ns > even * (1.0 + min_gain)}))
    items = [it for group in order for it in group]
    return Plan(placed, moves, before, after, floor_of(items, usable, {})), per_class


def _candidates(
    items: Sequence[Item], usable: int, heavy: float, crowded: bool
) -> tuple[list[Item], list[Item]]:
    """The IRQs the plan may move where they fire, and those it must move."""
    cand = []
    stray = []
    for it in items:
        allowed = it.allowed & usable
        if not allowed or it.cost <= 0:
            continue
        if it.spread:
            if all(allowed >> cpu & 1 for cpu, _ in it.spread):
                continue  # the kernel spreads it over CPUs it may use: leave it so
        elif it.cpu is not None and allowed >> it.cpu & 1:
            if it.cost >= heavy or (crowded and it.cost >= heavy * (LIGHTEST / HEAVY_SHARE)):
                cand.append(it)
            continue
        stray.append(it)
    return cand, stray


def _improve(st: _State, placed: dict[int, int], budget: int) -> None:
    """Local search from where the IRQs are: single moves, then swaps, off the busiest CPU."""
    busiest = [(-load, cpu) for cpu, load in st.load.items()]
    heapq.heapify(busiest)
    while budget > 0 and busiest:
        neg, busy = busiest[0]
        if -neg != st.load[busy]:
            heapq.heapreplace(busiest, (-st.load[busy], busy))  # stale: refresh
            continue
        move = _best_move(st, busy)
        if move is not None:
            irq, dst = move
            st.take(irq, busy)
            st.put(irq, dst)
            placed[irq] = dst
            budget -= 1
            heapq.heappush(busiest, (-st.load[dst], dst))
            continue
        swap = _best_swap(st, busy) if budget >= 2 else None
        if swap is None:
            return
        irq, dst, other = swap
        st.take(irq, busy)
        st.take(other, dst)
        st.put(irq, dst)
        st.put(other, busy)
        placed[irq], placed[other] = dst, busy
        budget -= 2
        heapq.heappush(busiest, (-st.load[dst], dst))


def _worth_it(
    items: Sequence[Item],
    moved: set[int],
    placed: Mapping[int, int],
    forced: Mapping[int, int],
    first: Mapping[int, float],
    after: Mapping[int, float],
    min_gain: float,
    min_gain_ns: float = 0.0,
) -> bool:
    """Whether the moves together lower the busiest CPU by more than ``min_gain`` of it
    (and ``min_gain_ns``), at this window's times and at the steady ones."""
    if _peak(after) > min(_peak(first) * (1.0 - min_gain), _peak(first) - min_gain_ns):
        return False
    if all(it.steady is None for it in items):
        return True
    before = dict(first)
    steady: dict[int, float] = {}
    for it in items:
        cpu = forced.get(it.irq, it.cpu)
        if it.spread or cpu is None:
            continue
        steady[it.irq] = it.cost if it.steady is None else it.steady
        before[cpu] = before.get(cpu, 0.0) + steady[it.irq] - it.cost
    after_steady = dict(before)
    for irq in moved:
        after_steady[forced[irq]] -= steady[irq]
        after_steady[placed[irq]] = after_steady.get(placed[irq], 0.0) + steady[irq]
    return _peak(after_steady) <= min(_peak(before) * (1.0 - min_gain),
                                      _peak(before) - min_gain_ns)


# --------------------------------------------------------------------------
# the balancer's side
# --------------------------------------------------------------------------


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


class _Run:
    """A CPU's last windows (up to :data:`_WINDOWS`) in which the same IRQs fired there:
    the time /proc/stat measured over them and each IRQ's interrupts."""

    __slots__ = ("counts", "irqs", "total", "windows")

    def __init__(self, irqs: Iterable[int]) -> None:
        self.irqs = frozenset(irqs)
        self.windows: deque[tuple[float, Mapping[int, int]]] = deque()
        self.total = 0.0
        self.counts: dict[int, int] = dict.fromkeys(self.irqs, 0)

    def add(self, ns: float, counts: Mapping[int, int]) -> None:
        if len(self.windows) == _WINDOWS:
            old_ns, old = self.windows.popleft()
            self.total -= old_ns
            for irq, k in old.items():
                self.counts[irq] -= k
        self.windows.append((ns, counts))
        self.total += ns
        for irq, k in counts.items():
            self.counts[irq] += k


class BalancedPlacement:
    """State of the balanced placement between passes, for one :class:`Balancer`.

    Kept across passes: each IRQ's /proc/interrupts total and, where known,
    its per-CPU columns (where it fired is their rise, not what was written);
    each CPU's irq + softirq jiffies; each IRQ's estimated ns per interrupt
    and its smoothed count per window; what the last plan predicted.
    """

    def __init__(self, root: SysRoot, log: logging.Logger) -> None:
        self.root = root
        self.log = log
        self._topo: Topology | None = None
        self._counts: dict[int, int] = {}
        self._jiffies: dict[int, int] = {}
        #: irq -> CPU -> its column's count when last read whole.
        self._columns: dict[int, dict[int, int]] = {}
        #: irq -> estimated ns per interrupt.
        self._ns: dict[int, float] = {}
        #: irq -> smoothed interrupts per window; their mean over the last windows.
        self._rate: dict[int, float] = {}
        #: irq -> its mean interrupts per window over the last windows (up to
        #: :data:`_WINDOWS`), how many, and their variance about the mean.
        self._long_run: dict[int, tuple[float, int, float]] = {}
        #: cpu -> its last windows in which the same IRQs fired there.
        self._history: dict[int, _Run] = {}
        #: irq -> the CPU the last plan moved it to; IRQs that twice did not fire there.
        self._requested: dict[int, int] = {}
        self._misses: dict[int, int] = {}
        self._stuck: set[int] = set()
        self._estimate_said = False
        #: Some pass placed firing IRQs (until then a pass may move any number of them).
        self._placed = False
        self._ever_placed = False
        self._planned_at = 0.0
        self._window_s: float | None = None
        self.last_plan: Plan | None = None
        #: Where the last pass located each firing IRQ: an IRQ that fired as many
        #: times on the same CPU keeps its record (a pass allocates for what changed).
        self._located: Mapping[int, Located] = {}
        #: The first pass's (since boot): irq -> (CPU, interrupts) of each column its
        #: row counted, wherever it fires now (the seed).
        self._since_boot: Mapping[int, tuple[tuple[int, int], ...]] = {}

    # -- the pass -------------------------------------------------------

    def plan_pass(self, balancer, stat: str | None) -> Plan | None:
        """Plan this pass and hand the planned IRQs to activation."""
        topo: Topology = balancer.topo
        if topo is not self._topo:
            # a (re)build (CPU hotplug among others): column numbers, totals and
            # jiffies may have changed meaning; what an interrupt costs has not
            self._topo, self._counts, self._jiffies, self._columns = topo, {}, {}, {}
            self._history = {}
            self._placed = False
            self._requested, self._misses, self._stuck = {}, {}, set()
            self.last_plan = None
            self._located = {}
        rows = procstat.parse_irq_jiffies(stat) if stat is not None else None
        if rows is None:
            return None
        s = balancer.settings
        hz = s.hz
        boot = not self._jiffies
        now = time.monotonic()
        window = None if boot else now - self._planned_at
        self._planned_at = now
        cpu_ns = self._cpu_times(rows, hz)
        deltas = self._deltas(balancer.irqs)
        estimated = bool(deltas) and not any(cpu_ns.values())
        if estimated and not self._estimate_said:
            self._estimate_said = True
            self.log.warning(
                "interrupt time in /proc/stat is flat while interrupts are counted (no IRQ time "
                "accounting): balancing interrupt counts, every interrupt taken as equally costly"
            )
        usable = usable_cpus(topo)
        firing = [info for info in balancer.irqs if info.irq in deltas]
        # the seed reads whole rows since boot: a first pass with time to share (not a
        # rebuild, which keeps its estimates; not without IRQ time accounting)
        seeding = boot and not self._ns and not estimated
        located = self._locate_all(balancer, firing, deltas, topo.online, boot, seeding)
        self._check_requests(located)
        noise = 2e9 / hz  # irq and softirq: up to a jiffy each
        items, background, replanned, changed = self._items(
            firing, topo, usable, located, cpu_ns, estimated, boot, noise)
        predicted = measured = None
        per_last = last_window = 0.0
        last = self.last_plan
        if last is not None and last.window_s is not None and window and not estimated:
            scale = window / last.window_s
            per_last = max((v for c, v in last.after.items() if usable >> c & 1), default=0.0)
            last_window = last.window_s
            predicted = per_last * scale
            measured = max((v for c, v in cpu_ns.items() if usable >> c & 1), default=0.0)
        # the first pass that sees IRQs fire places them all; later ones move at most the budget
        budget = s.placement_max_moves if self._placed else max(len(items), 1)
        # the daemon's first placement writes every IRQ it places anyway: any gain is worth
        # it (the hysteresis is against churn between placements, and there is none yet;
        # after a rebuild there was)
        min_gain = s.placement_min_gain if self._placed or self._ever_placed else 0.0
        if self._placed and changed:
            # load that changed since the last windows asks for fewer moves and, planned
            # for this window, a larger gain: a shift is followed over a few passes, a
            # random hot set is not chased (its items are at their long-run rates)
            budget = max(round(budget * (1.0 - changed)), 2)
            if changed <= _UNFORESEEN:
                min_gain += changed / 2
        first = not self._placed
        self._placed = self._placed or bool(items)
        self._ever_placed = self._ever_placed or self._placed
        if estimated:
            kinds = {info.irq: info.irq_class for info in firing}
            plan = plan_by_kind(items, kinds, usable, min_gain=min_gain, max_moves=budget,
                                settle_gain=s.placement_min_gain if first else None)
        else:
            # a gain under a jiffy is within what the estimates cannot tell apart; a first
            # placement (the daemon's, a rebuild's) writes what it places anyway
            plan = plan_placement(items, usable, background, min_gain=min_gain,
                                  max_moves=budget, min_gain_ns=0.0 if first else noise / 2)
        plan = plan._replace(
            estimated=estimated, window_s=None if window is None else round(window, 3),
            located=located,
            predicted_busiest=predicted, measured_busiest=measured, replanned=replanned,
        )
        if replanned:
            self.log.debug(
                "balanced placement: measured interrupt time differs from the prediction by more "
                "than %.0f us on some CPU: planning from the measurement", noise / 1e3)
        if predicted is not None:
            self.log.debug("balanced placement: pass %d: busiest CPU predicted %.1f us, "
                           "measured %.1f us (predicted %.1f us over a window as long as "
                           "the last one, %.3f s; this one %.3f s)", balancer.cycle,
                           predicted / 1e3, (measured or 0.0) / 1e3, per_last / 1e3,
                           last_window, window)
        self._hand_over(balancer, plan, usable)
        _keep_in_place(balancer, items, plan, usable)
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

    # -- where each IRQ fired --------------------------------------------

    def _locate_all(
        self, balancer, firing: list[IrqInfo], deltas: Mapping[int, int], online: int, boot: bool,
        seeding: bool = False,
    ) -> dict[int, Located]:
        """Each firing IRQ's CPUs, from the rise of its /proc/interrupts columns.

        A column that alone changed gives the whole rise to its CPU; a row
        read whole is compared with its last reading (the window since boot:
        its non-zero columns). Where neither is known (a row not in the
        kernel's fixed-width form, a row first read whole after the start),
        the kernel's effective_affinity (else smp_affinity) says.

        The first pass's window is the time since boot, and a CPU's time since boot
        is what its columns counted, wherever the IRQ fires now: each IRQ's columns
        since boot are kept for the seed (``_since_boot``) when ``seeding``.
        """
        columns = list(cpus_of(online))
        ncols = len(columns)
        cells = balancer.interrupt_columns([info.irq for info in firing])
        since_boot: dict[int, tuple[tuple[int, int], ...]] = {}
        if seeding:
            for irq, (_, counts) in balancer.interrupt_columns(
                    [info.irq for info in firing], whole=True).items():
                if counts and all(c < ncols for c in counts):
                    since_boot[irq] = tuple((columns[c], v) for c, v in sorted(counts.items()))
        self._since_boot = since_boot
        whole = self._columns
        new_located = Located.__new__
        last_pass = self._located
        out: dict[int, Located] = {}
        for info in firing:
            irq = info.irq
            n = deltas[irq]
            found: tuple[tuple[int, int], ...] = ()
            known = cells.get(irq)
            if known is not None:
                cell, counts = known
                if cell is not None:
                    if cell < ncols:
                        cpu = columns[cell]
                        col = whole.get(irq)
                        if col is not None:
                            col[cpu] = col.get(cpu, 0) + n
                        # the same CPU and count as the last pass: its record again (a
                        # pass allocates for what changed only)
                        prev = last_pass.get(irq)
                        if (prev is None or prev.n != n or len(prev.cpus) != 1
                                or prev.cpus[0][0] != cpu):
                            prev = new_located(Located, n, ((cpu, n),))
                        out[irq] = prev
                        continue
                elif counts is not None and all(c < ncols for c in counts):
                    now = {columns[c]: v for c, v in counts.items()}
                    last = whole.get(irq)
                    if last is not None or boot:
                        rise = {c: v - (last or {}).get(c, 0) for c, v in now.items()}
                        found = tuple((c, v) for c, v in sorted(rise.items()) if v > 0)
                    whole[irq] = now
            if not found or (boot and len(found) > 1):
                cpu = self._read_location(irq, online)
                found = ((cpu, n),) if cpu is not None else ()
            prev = last_pass.get(irq)
            out[irq] = prev if prev is not None and prev == (n, found) else Located(n, found)
        self._located = out
        return out

    def _check_requests(self, located: Mapping[int, Located]) -> None:
        """IRQs that twice did not fire where the plan moved them stay where they fire (at
        once when their smp_affinity no longer holds the CPU they were moved to)."""
        for irq, cpu in self._requested.items():
            loc = located.get(irq)
            if loc is None or not loc.cpus or any(c == cpu for c, _ in loc.cpus):
                self._misses.pop(irq, None)
                continue
            # a mask the kernel did not keep (a refusal it answered late, a driver putting
            # its own back) says at once what a second miss would
            self._misses[irq] = self._misses.get(irq, 0) + (1 if self._kept(irq, cpu) else 2)
            if self._misses[irq] >= 2 and irq not in self._stuck:
                self._stuck.add(irq)
                self.log.debug("balanced placement: IRQ %d keeps firing on CPU %s, not %d where "
                               "it was moved: left where it fires", irq,
                               ",".join(str(c) for c, _ in loc.cpus), cpu)
        self._requested = {}

    def _kept(self, irq: int, cpu: int) -> bool:
        """Whether ``irq``'s smp_affinity still holds ``cpu`` (unreadable: assumed so)."""
        line = self.root.read_first_line(self.root.irq_file(irq, "smp_affinity"))
        try:
            return line is None or bool(irqbalance_parse_mask(line) >> cpu & 1)
        except ValueError:
            return True

    # -- what each IRQ costs ----------------------------------------------

    def _items(
        self,
        firing: list[IrqInfo],
        topo: Topology,
        usable: int,
        located: Mapping[int, Located],
        cpu_ns: Mapping[int, float],
        estimated: bool,
        boot: bool,
        noise: float,
    ) -> tuple[list[Item], dict[int, float], bool, float]:
        """Items of the firing IRQs, the time no IRQ explains, whether the
        measurement overrode the estimates (they were off by more than
        ``noise``), and the share of this window's interrupt time that its
        IRQs' smoothed rates did not foresee (0: a steady load)."""
        ns, rate = self._ns, self._rate
        rebuilt = boot and bool(ns)  # a rebuild: the estimates are still good
        on: dict[int, dict[int, int]] = {}  # cpu -> irq -> interrupts this window
        since_boot = self._since_boot if boot else {}
        for irq, loc in located.items():
            # since boot, a CPU's time is what its columns counted, wherever the IRQ fires
            # now: the seed shares it so (the counts since boot put on the CPU it fires on
            # now would make that CPU's interrupts look cheap and its columns' CPUs dear)
            for cpu, k in since_boot.get(irq, loc.cpus):
                on.setdefault(cpu, {})[irq] = k
        fresh = {irq for irq in located if irq not in ns or (boot and not rebuilt)}
        factor: dict[int, float] = {}
        replanned = False
        if estimated:
            for irq in fresh:
                ns[irq] = float(UNIT_NS)
        elif not boot or not rebuilt:
            replanned = self._measure(on, cpu_ns, fresh, factor, noise) and not boot
        counted = ({} if estimated or rebuilt else
                   _counted_since_boot(since_boot, located, on, cpu_ns))
        items: list[Item] = []
        append = items.append
        new_item = Item.__new__
        surprise = total = 0.0
        stuck = self._stuck
        long_run = self._long_run
        counting = not boot
        #: the IRQs of one device mostly share where they may go
        allowed_of: dict[tuple, int] = {}
        for info in firing:
            irq = info.irq
            loc = located[irq]
            per = ns[irq]
            n = loc.n
            cpus = loc.cpus
            spread: tuple[tuple[int, float], ...] = ()
            if rebuilt and irq in rate:
                n = round(rate[irq])  # since boot: its rate before the rebuild stands
                cost = n * per
            elif len(cpus) == 1:
                cost = n * per * factor.get(cpus[0][0], 1.0) if replanned else n * per
            else:
                # several CPUs; when replanned: this window's measured times, shared as
                # the estimates say
                spread = tuple((cpu, k * per * (factor.get(cpu, 1.0) if replanned else 1.0))
                               for cpu, k in cpus)
                cost = sum(ns_ for _, ns_ in spread)
            steady = None
            if counting:
                # the window's interrupts into the IRQ's smoothed and long-run rates;
                # how far they were from its smoothed rate (unknown for a new IRQ)
                last = rate.get(irq)
                if last is None:
                    rate[irq] = n
                    long_run[irq] = (float(n), 1, 0.0)
                    steady = n * per
                else:
                    smoothed = rate[irq] = last + _RATE_WEIGHT * (n - last)
                    long_run[irq] = _long_run_add(long_run.get(irq), n)
                    surprise += abs(n - last) * per
                    total += n * per
                    steady = smoothed * per
            main = cpus[0][0] if len(cpus) == 1 else _main_cpu(loc)
            if irq in stuck:
                allowed = 0
            else:
                key = (id(info.node), info.level, info.hint, id(info.hintpolicy),
                       info.unmanaged_reason is None)
                allowed = allowed_of.get(key, -1)
                if allowed < 0:
                    allowed = allowed_of[key] = movable_cpus(info, topo, usable)
            node = info.node.number if info.node is not None else NO_NODE
            append(new_item(Item, irq, cost, main, allowed, node, spread, steady,
                            counted.get(irq, ())))
        background = {} if estimated or rebuilt else {
            cpu: t for cpu, t in cpu_ns.items() if t and cpu not in on
        }
        changed = min(surprise / total, 1.0) if total else 0.0
        if changed > _UNFORESEEN:
            items = self._long_run_items(items, {info.irq: info.device for info in firing})
        return items, background, replanned, changed

    def _long_run_items(self, items: list[Item], device: Mapping[int, str | None]) -> list[Item]:
        """The load changes more than it stays: the items at their long-run rates plus one
        standard deviation of them, not at this window's (nothing says the next window will
        look like this one). An IRQ whose rate jumps about counts for more than its mean:
        the plan does not stack such IRQs on one CPU, where their peaks would add up, and
        predicts what a CPU takes when they are high. A few windows say little about one
        queue: each IRQ's figures lean towards its device's (the mean over its queues) as
        far as chance explains how its queues' means differ."""
        long_run, ns = self._long_run, self._ns
        groups: dict[str, list[tuple[float, int, float]]] = {}
        for it in items:
            dev = device.get(it.irq)
            lr = long_run.get(it.irq)
            if dev is not None and lr is not None:
                groups.setdefault(dev, []).append(lr)
        prior: dict[str, tuple[float, float, float]] = {}
        for dev, g in groups.items():
            if len(g) < 2:
                continue
            m_all = sum(m for m, _, _ in g) / len(g)
            v_all = sum(v for _, _, v in g) / len(g)
            noise = sum(v / n for _, n, v in g) / len(g)  # how far a mean is off by chance
            spread = sum((m - m_all) ** 2 for m, _, _ in g) / (len(g) - 1)
            prior[dev] = (m_all, v_all, max(spread - noise, 0.0))
        out = []
        for it in items:
            lr = long_run.get(it.irq)
            if lr is None:
                out.append(it)
                continue
            mean, seen, var = lr
            name = device.get(it.irq)
            known = prior.get(name) if name is not None else None
            if known is not None and var > 0:
                # as far as chance explains how the device's queues differ (empirical
                # Bayes): queues alike but for chance get the device's figures, queues that
                # differ for good keep their own
                m_all, v_all, real = known
                lean = (var / seen) / (var / seen + real)
                mean += lean * (m_all - mean)
                var += lean * (v_all - var)
            out.append(_at_rate(it, (mean + var ** 0.5) * ns[it.irq]))
        return out

    def _measure(
        self,
        on: Mapping[int, Mapping[int, int]],
        cpu_ns: Mapping[int, float],
        fresh: set[int],
        factor: dict[int, float],
        noise: float,
    ) -> bool:
        """Update each IRQ's ns per interrupt from the CPUs' measured times.

        Each CPU's time is shared over the IRQs that fired there as their
        estimates say (a new IRQ gets what the others leave: the seed). The
        comparison runs over the last windows (up to :data:`_WINDOWS`) in
        which the same IRQs fired on the CPU: /proc/stat counts whole jiffies,
        so one window's time is off by up to ``noise`` (two jiffies), and so
        is a run of windows' total (typically by about one). An estimate is
        corrected only when the run's total is more than a jiffy from what it
        predicts, and then to within a jiffy of it: on a steady load the
        estimates settle, and longer runs narrow them down. ``factor`` gets
        each CPU's measured time over its predicted time this window, except
        on a CPU that showed no jiffy within ``noise`` of its prediction (there
        the estimates stand); returns whether some CPU's prediction was off by
        more than ``noise``.
        """
        ns = self._ns
        off = False
        correction = _Corrections()
        history = self._history
        #: fresh irq -> its seeds times its interrupts on each CPU, summed; its interrupts
        seeds: dict[int, tuple[float, int]] = {}
        for cpu, irqs in on.items():
            t = cpu_ns.get(cpu, 0.0)
            if fresh and not fresh.isdisjoint(irqs):
                seed = _seed(ns, irqs, t, fresh)
                for irq, k in irqs.items():
                    if irq in fresh:
                        # an IRQ counted on several CPUs: their seeds weighted by its
                        # interrupts on each
                        acc, weight = seeds.get(irq, (0.0, 0))
                        seeds[irq] = (acc + seed * k, weight + k)
                        correction.drop(irq)
                history.pop(cpu, None)
                continue
            if len(irqs) == 1:
                ((only, k),) = irqs.items()
                predicted = k * ns[only]
            else:
                predicted = sum([k * ns[irq] for irq, k in irqs.items()])
            if predicted <= 0:
                continue
            if abs(t - predicted) > noise:
                factor[cpu] = t / predicted
                off = True
            elif t > 0:
                factor[cpu] = t / predicted
            # else a light CPU that showed no jiffy, within the rounding of its prediction:
            # a factor 0 would make its IRQs cost nothing (they would drop out of the plan)
            run = history.get(cpu)
            if run is None or run.irqs != irqs.keys():
                run = history[cpu] = _Run(irqs.keys())
            run.add(t, irqs)
            expected = sum([k * ns[irq] for irq, k in run.counts.items()])
            total = run.total
            if expected > 0 and abs(total - expected) > noise / 2:
                # off by more than a jiffy: corrected to within one
                target = total - noise / 2 if total > expected else total + noise / 2
                correction.add(irqs, target / expected)
        for irq, (acc, weight) in seeds.items():
            ns[irq] = acc / weight if weight > 0 else float(UNIT_NS)
        correction.apply(ns, fresh)
        if off and correction.first:
            # planning from the measurement: each CPU's time shared at the corrected
            # estimates (a factor over the old ones would count the correction twice)
            for cpu in factor:
                predicted = sum([k * ns[irq] for irq, k in on[cpu].items()])
                if predicted > 0:
                    factor[cpu] = cpu_ns.get(cpu, 0.0) / predicted
        return off

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

    # -- hand-over ---------------------------------------------------------

    def _hand_over(self, balancer, plan: Plan, usable: int) -> None:
        """Put each moved IRQ on its CPU object, marked to be written."""
        topo: Topology = balancer.topo
        rebalance: list[IrqInfo] = balancer.rebalance
        queued = {id(info) for info in rebalance}
        for irq, (_src, cpu_number) in plan.moves.items():
            info = balancer.irq_info(irq)
            cpu = topo.cpu(cpu_number)
            if info is None or cpu is None:
                continue
            _assign(info, cpu, rebalance if id(info) in queued else None)
            self._requested[irq] = cpu_number

    def activated(self, activations: Iterable[Activation]) -> None:
        """The writes of this pass: a refused one is no request to check."""
        for act in activations:
            if act.write is not None and act.write.errno != 0:
                self._requested.pop(act.irq, None)


#: Windows of a CPU's measured time an estimate is corrected by at most (while
#: the same IRQs fire there).
_WINDOWS = 16
#: Weight of a new window in an IRQ's smoothed interrupts per window.
_RATE_WEIGHT = 0.75
#: The share of a window's time its IRQs' smoothed rates did not foresee above
#: which the plan is made for the long-run rates.
_UNFORESEEN = 0.5


def _long_run_add(entry: tuple[float, int, float] | None, n: int) -> tuple[float, int, float]:
    """An IRQ's (mean, windows, variance) of its interrupts per window with window ``n``
    added (the last :data:`_WINDOWS` windows weigh alike, older ones fade)."""
    mean, seen, var = entry if entry is not None else (float(n), 0, 0.0)
    seen = seen + 1 if seen < _WINDOWS else _WINDOWS
    moved = mean + (n - mean) / seen
    return moved, seen, var + ((n - mean) * (n - moved) - var) / seen


class _Corrections:
    """The factors a pass corrects the estimates by: per IRQ, the weighted mean of the
    factors of the CPUs it fired on (weights: its interrupts there).

    Numbers in dicts, a list only for an IRQ corrected on several CPUs: thousands of
    IRQs a pass allocate no object each.
    """

    __slots__ = ("first", "more", "weight")

    def __init__(self) -> None:
        #: irq -> the factor and weight of its first correction this pass.
        self.first: dict[int, float] = {}
        self.weight: dict[int, int] = {}
        #: irq -> factor, weight, factor, weight... when corrected on several CPUs.
        self.more: dict[int, list[float]] = {}

    def add(self, irqs: Mapping[int, int], factor: float) -> None:
        first, weight = self.first, self.weight
        for irq, k in irqs.items():
            if irq not in first:
                first[irq], weight[irq] = factor, k
            else:
                self.more.setdefault(irq, [first[irq], weight[irq]]).extend((factor, k))

    def drop(self, irq: int) -> None:
        if self.first.pop(irq, None) is not None:
            del self.weight[irq]
            self.more.pop(irq, None)

    def apply(self, ns: dict[int, float], skip: Container[int]) -> None:
        """Each corrected estimate times its factor (not those of ``skip``)."""
        for irq, f in self.first.items():
            if irq in skip:
                continue
            pairs = self.more.get(irq)
            if pairs is None:
                k = self.weight[irq]
                ns[irq] *= f * k / k
            else:
                weights = pairs[1::2]
                ns[irq] *= sum(f * w for f, w in zip(pairs[::2], weights)) / sum(weights)


def _counted_since_boot(
    since_boot: Mapping[int, tuple[tuple[int, int], ...]],
    located: Mapping[int, Located],
    on: Mapping[int, Mapping[int, int]],
    cpu_ns: Mapping[int, float],
) -> dict[int, tuple[tuple[int, float], ...]]:
    """irq -> (CPU, ns) of its time since boot on each column that counted it, where that
    is not where it fires now: each CPU's measured time shared over the interrupts its
    column counted (so the plan's times now are the measured ones)."""
    if not since_boot:
        return {}
    share = {cpu: cpu_ns.get(cpu, 0.0) / sum(irqs.values()) for cpu, irqs in on.items()}
    return {irq: tuple((cpu, k * share[cpu]) for cpu, k in cols)
            for irq, cols in since_boot.items() if cols != located[irq].cpus}


def _seed(ns: Mapping[int, float], irqs: Mapping[int, int], t: float,
          fresh: Container[int]) -> float:
    """The ns per interrupt of the ``fresh`` IRQs of a CPU that spent ``t`` on ``irqs``:
    what the known IRQs leave, per interrupt."""
    predicted = sum(k * ns[irq] for irq, k in irqs.items() if irq not in fresh)
    new = sum(k for irq, k in irqs.items() if irq in fresh)
    seed = max(t - predicted, 0.0) / new
    if seed <= 0.0:
        # nothing left for them (the jiffies rounded down): the CPU's time per
        # interrupt, else any estimate -- corrections multiply, a 0 stays 0
        everything = sum(irqs.values())
        seed = t / everything if t > 0 else (predicted / (everything - new)
                                             if predicted > 0 else float(UNIT_NS))
    return seed


def _main_cpu(loc: Located) -> int | None:
    """The CPU that took most of the IRQ's interrupts (ties: the lowest number)."""
    if len(loc.cpus) == 1:
        return loc.cpus[0][0]
    return max(loc.cpus, key=lambda p: (p[1], -p[0]))[0] if loc.cpus else None


def _at_rate(it: Item, cost: float) -> Item:
    """``it`` costing ``cost`` (its spread shares scaled alike), steady at that."""
    spread = it.spread
    if spread and it.cost > 0:
        scale = cost / it.cost
        spread = tuple((cpu, ns * scale) for cpu, ns in spread)
    # made directly (``_replace`` takes several times as long: every item of a pass under
    # changing load goes through here)
    return _new_item(Item, it.irq, cost, it.cpu, it.allowed, it.node, spread, cost, it.counted)


_new_item = Item.__new__

#: Every interrupt's cost, ns, when the kernel does not account IRQ time.
UNIT_NS = 1000

#: The balance level whose objects an IRQ of that level is placed on.
_LEVEL_OF = {ObjType.CPU: BalanceLevel.CORE, ObjType.CACHE: BalanceLevel.CACHE,
             ObjType.PACKAGE: BalanceLevel.PACKAGE}


def _keep_in_place(balancer, items: Sequence[Item], plan: Plan, usable: int) -> None:
    """Firing IRQs waiting for placement that the plan does not move stay where they fire.

    Each goes to the object of its class's level that holds its CPU (its
    mask is what the default would write, and the kernel keeps the CPU), when
    that object's usable CPUs are all ones the IRQ may use; otherwise the
    default placement places it. An IRQ the plan does not move never gets a
    one-CPU mask from it: a soft default is not made a hard pin.
    """
    topo: Topology = balancer.topo
    queued = {id(info): info for info in balancer.rebalance}
    if not queued:
        return
    for it in items:
        info = balancer.irq_info(it.irq)
        if (info is None or id(info) not in queued or it.irq in plan.moves or it.cpu is None
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
