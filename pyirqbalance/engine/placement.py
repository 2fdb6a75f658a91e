"""Where IRQs go (irqbalance placement.c ``calculate_placement``).

IRQs waiting in the rebalance list are sorted (class, load, allocation order,
all descending), put on their device's NUMA node (or the least-loaded node),
then pushed down one level at a time -- nodes, packages, cache domains -- to
the least-loaded child, until they reach the level their class asks for.

Load bookkeeping follows irqbalance 1.9.2 to the unit: an IRQ placed on its
own NUMA node adds ``load + 1`` to it, every other move adds ``load``, and no
move ever subtracts from the source (loads are recomputed from /proc/stat at
the next pass). Ties go to the earlier object unless a later one holds
strictly fewer IRQs.
"""

from __future__ import annotations

from collections.abc import Callable

from .classify import IrqInfo, sort_key
from .model import BalanceLevel, HintPolicy
from .topology import NO_NODE, SLOTS_UNKNOWN, ObjType, Topology, TopoObj

__all__ = ["calculate_placement", "find_best_object"]

#: The level at which an IRQ stops descending, per object type it sits on.
_STOP_AT = {
    ObjType.NODE: BalanceLevel.NONE,
    ObjType.PACKAGE: BalanceLevel.PACKAGE,
    ObjType.CACHE: BalanceLevel.CACHE,
    ObjType.CPU: BalanceLevel.CORE,
}


def find_best_object(
    candidates: list[TopoObj], topo: Topology, info: IrqInfo | None = None
) -> TopoObj | None:
    """Least-loaded eligible object; ties: strictly fewer IRQs, else list order.

    With ``--hintpolicy=subset`` an IRQ that has an affinity hint only goes to
    objects sharing a CPU with it (irqbalance 1.0-1.1).
    """
    best: TopoObj | None = None
    unbanned = topo.unbanned
    subset = info.hint if info is not None and info.hintpolicy is HintPolicy.SUBSET else 0
    for obj in candidates:
        if subset and not obj.mask & subset:
            continue
        if obj.obj_type is ObjType.NODE:
            if topo.numa and obj.number == NO_NODE:
                continue  # the "no node" pseudo node is never a choice
            if not obj.mask & unbanned:
                continue  # a node without usable CPUs (memory-only or all banned)
        if obj.powersave:
            continue
        if obj.slots_left <= 0:
            continue  # out of interrupt vectors (ENOSPC seen)
        if best is None or obj.load < best.load or (
            obj.load == best.load and len(obj.interrupts) < len(best.interrupts)
        ):
            best = obj
    return best


def _move(info: IrqInfo, source: list[IrqInfo], dest: TopoObj, extra: int) -> None:
    source.remove(info)
    dest.interrupts.append(info)
    if dest.slots_left != SLOTS_UNKNOWN:
        dest.slots_left -= 1
    info.moved = True
    info.assigned = dest
    dest.load += info.load + extra


def _place_in_node(info: IrqInfo, topo: Topology, rebalance: list[IrqInfo], warn) -> None:
    if info.level == BalanceLevel.NONE and not topo.banned:
        return
    node = info.node
    assert node is not None  # every IRQ of the database has one
    if node.number != NO_NODE or not topo.numa:
        if node.mask & topo.unbanned:
            # The device's own node, whatever its load.
            _move(info, rebalance, node, 1)
            return
        if warn is not None:
            warn(f"There is no suitable CPU in node:{node.number}.")
            warn(f"Irqbalance dispatch irq:{info.irq} to other node.")
    best = find_best_object(topo.nodes, topo, info)
    if best is not None:
        _move(info, rebalance, best, 0)


def _place_below(obj: TopoObj, topo: Topology) -> None:
    for info in list(obj.interrupts):
        if not info.moved or info.level == _STOP_AT[obj.obj_type]:
            continue
        best = find_best_object(obj.children, topo, info)
        if best is not None:
            _move(info, obj.interrupts, best, 0)


def calculate_placement(
    topo: Topology, rebalance: list[IrqInfo], warn: Callable[[str], None] | None = None
) -> None:
    """Place every IRQ of the rebalance list; IRQs without a home stay in it."""
    rebalance.sort(key=sort_key)
    if not rebalance:
        return
    for info in list(rebalance):
        _place_in_node(info, topo, rebalance, warn)
    for level in (topo.nodes, topo.packages, topo.caches):
        for obj in level:
            _place_below(obj, topo)
