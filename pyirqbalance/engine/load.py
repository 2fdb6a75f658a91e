"""Per-pass load accounting (irqbalance procinterrupts.c, parse_proc_stat half).

CPU load is the irq+softirq time (from /proc/stat jiffies, in ns) a CPU spent
since the last pass; objects above CPUs sum their children; each IRQ gets the
share of its object's load that its interrupt count says it caused. All
arithmetic is irqbalance's: unsigned 64-bit with wrap-around, integer
division, and a floor of 1 for every IRQ load.
"""

from __future__ import annotations

from collections.abc import Iterable

from .topology import Topology, TopoObj

__all__ = ["NSEC_PER_SEC", "apply_cpu_times", "clear_work_stats", "propagate_loads"]

NSEC_PER_SEC = 1_000_000_000
_U64 = (1 << 64) - 1


def clear_work_stats(topo: Topology) -> None:
    """Zero the load of every IRQ attached to a reachable object (``clear_work_stats``)."""
    for obj in topo.walk():
        for info in obj.interrupts:
            info.load = 0


def apply_cpu_times(
    topo: Topology, rows: Iterable[tuple[int, int | None]], *, first_pass: bool, hz: int = 100
) -> bool:
    """Feed ``(cpu, irq+softirq jiffies)`` rows into the CPU objects.

    Returns False when not every CPU of the tree got a value (offline CPU not
    yet noticed, an extra CPU, a short line): irqbalance then warns "didn't
    collect load info for all cpus" and skips load propagation for the pass.
    On the first pass after a (re)build CPU loads are left alone: only the
    baseline is recorded.
    """
    seen = 0
    banned = topo.banned
    per_jiffy = 1e9 / hz  # irqbalance: NSEC_PER_SEC is the double 1e9
    for cpu_number, raw in rows:
        if (banned >> cpu_number) & 1:
            continue
        cpu = topo.cpu(cpu_number)
        if raw is None or cpu is None:
            break  # short line, or a CPU the tree does not have
        seen += 1
        if not first_pass:
            # multiplied in double precision, truncated back to uint64, as in C
            cpu.load = int(((raw - cpu.last_load) & _U64) * per_jiffy) & _U64
        cpu.last_load = raw
    return seen == len(topo.cpus)


def _set_load(obj: TopoObj) -> None:
    if obj.children:
        for child in obj.children:
            _set_load(child)
        obj.load = sum(c.load for c in obj.children) & _U64


def _accumulate_interrupts(obj: TopoObj) -> None:
    for child in obj.children:
        _accumulate_interrupts(child)
    obj.irq_count = sum(i.count - i.last_count for i in obj.interrupts)


class _Shares:
    """irqbalance's per-object interrupt totals, each computed once per pass.

    ``parent_share``: the ancestors' interrupts split evenly down to the
    object (integer division at every level), plus its own; ``below``: the
    interrupts of everything under it. irqbalance recomputes both by
    recursion for every object that has IRQs; the values are the same.
    """

    __slots__ = ("_below", "_share")

    def __init__(self) -> None:
        self._share: dict[int, int] = {}
        self._below: dict[int, int] = {}

    def parent_share(self, obj: TopoObj) -> int:
        value = self._share.get(id(obj))
        if value is None:
            parent = obj.parent
            value = obj.irq_count
            if parent is not None:
                value += self.parent_share(parent) // len(parent.children)
            self._share[id(obj)] = value
        return value

    def below(self, obj: TopoObj) -> int:
        value = self._below.get(id(obj))
        if value is None:
            value = sum(self.below(c) + c.irq_count for c in obj.children)
            self._below[id(obj)] = value
        return value


def _assign_irq_loads(obj: TopoObj, shares: _Shares) -> None:
    if not obj.interrupts:
        return
    interrupts = (shares.parent_share(obj) + shares.below(obj)) & _U64
    load_slice = obj.load // interrupts if interrupts else 1
    for info in obj.interrupts:
        info.load = ((info.count - info.last_count) * load_slice) & _U64 or 1


def propagate_loads(topo: Topology) -> None:
    """Object loads, per-object interrupt counts, then IRQ loads (``parse_proc_stat``)."""
    for node in topo.nodes:
        _set_load(node)
    for node in topo.nodes:
        _accumulate_interrupts(node)
    shares = _Shares()
    for objects in (topo.cpus, topo.caches, topo.packages, topo.nodes):
        for obj in objects:
            _assign_irq_loads(obj, shares)
