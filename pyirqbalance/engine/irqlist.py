"""Choosing the IRQs to move (irqbalance irqlist.c ``update_migration_status``).

Each level of the tree is examined on its own (CPUs, cache domains,
packages, nodes). An object busier than the least-loaded one gives up IRQs,
heaviest first, as long as moving one to the least-loaded object would not
reverse the imbalance; ``min_load`` is shared across the list and grows with
every selection. Unsigned 64-bit wrap-around is kept where irqbalance has it:
it decides real selections when an IRQ's load exceeds what is left.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .classify import IrqInfo, sort_key
from .model import BalanceLevel, HintPolicy
from .topology import SLOTS_UNKNOWN, TopoObj

__all__ = [
    "LevelStats",
    "find_overloaded_objects",
    "force_rebalance",
    "release",
    "update_migration_status",
]

_U64 = (1 << 64) - 1


class LevelStats:
    """irqbalance ``struct load_balance_info`` for one list of objects (zeroed)."""

    __slots__ = (
        "adjustment_load",
        "avg_load",
        "min_load",
        "num_over",
        "num_powersave",
        "num_under",
        "powersave",
        "std_deviation",
    )

    def __init__(self) -> None:
        self.min_load = 0
        self.avg_load = 0
        self.std_deviation = 0.0
        self.adjustment_load = 0
        self.num_over = 0
        self.num_under = 0
        self.num_powersave = 0
        self.powersave: TopoObj | None = None


def release(info: IrqInfo, rebalance: list[IrqInfo]) -> None:
    """Move an IRQ from its object to the rebalance list (``migrate_irq_obj(obj, NULL)``)."""
    source = info.assigned
    assert source is not None  # only placed IRQs are released
    source.interrupts.remove(info)
    if source.slots_left != SLOTS_UNKNOWN:
        source.slots_left += 1
    rebalance.append(info)
    info.moved = True
    info.assigned = None


def force_rebalance(info: IrqInfo, rebalance: list[IrqInfo]) -> None:
    """Put an IRQ back in the rebalance list (``force_rebalance_irq``)."""
    if info.level == BalanceLevel.NONE:
        return
    if info.assigned is None:
        rebalance.append(info)
    else:
        release(info, rebalance)


def _select(info: IrqInfo, st: LevelStats, migrateval: int) -> bool:
    """``move_candidate_irqs``: may this IRQ leave its object?"""
    if info.level == BalanceLevel.NONE or info.assigned is None:
        return False
    if len(info.assigned.interrupts) <= 1:  # never empty an object
        return False
    if info.load <= 1:  # load 1 = no interrupts seen: not worth moving
        return False
    if info.hint and info.hintpolicy is HintPolicy.EXACT:
        return False  # --hintpolicy=exact: the driver's hint decides, never migrated
    delta = (st.adjustment_load - st.min_load) // migrateval if migrateval > 0 else 0
    lhs = (st.min_load + info.load) & _U64
    rhs = (delta + ((st.adjustment_load - info.load) & _U64)) & _U64
    if lhs >= rhs:
        return False
    st.adjustment_load = (st.adjustment_load - info.load) & _U64
    st.min_load = (st.min_load + info.load) & _U64
    if st.min_load > st.adjustment_load:
        st.min_load = st.adjustment_load
    return True


def find_overloaded_objects(
    objects: list[TopoObj],
    rebalance: list[IrqInfo],
    *,
    migrateval: int,
    powerthresh: int | None,
    log: Callable[[str], None] | None = None,
) -> LevelStats:
    """Statistics over one level, selecting the IRQs to move off busy objects."""
    st = LevelStats()
    n = max(len(objects), 1)
    loads = [o.load for o in objects]
    st.min_load = min(loads) if loads else 0
    st.avg_load = (sum(loads) & _U64) // n
    deviations = 0
    for load in loads:
        d = load - st.avg_load if load > st.avg_load else st.avg_load - load
        deviations = (deviations + d * d) & _U64
    st.std_deviation = 0.0 if n == 1 else math.sqrt(deviations // (n - 1))

    for obj in objects:
        if obj.powersave:
            st.num_powersave += 1
        if obj.load + st.std_deviation <= st.avg_load:
            st.num_under += 1
            if powerthresh is not None and st.powersave is None and not obj.powersave:
                st.powersave = obj
        elif obj.load - st.std_deviation >= st.avg_load:
            st.num_over += 1

        if obj.load > st.min_load and len(obj.interrupts) > 1:
            obj.interrupts.sort(key=sort_key)
            st.adjustment_load = obj.load
            for info in list(obj.interrupts):
                if _select(info, st, migrateval):
                    if log is not None:
                        log(f"Selecting irq {info.irq} for rebalancing")
                    release(info, rebalance)
    return st


def update_migration_status(
    cpus: list[TopoObj],
    caches: list[TopoObj],
    packages: list[TopoObj],
    nodes: list[TopoObj],
    rebalance: list[IrqInfo],
    *,
    cycle: int,
    migrateval: int,
    powerthresh: int | None,
    log: Callable[[str], None] | None = None,
) -> None:
    """All four levels, with the power-save rule after the CPU level."""
    st = find_overloaded_objects(
        cpus, rebalance, migrateval=migrateval, powerthresh=powerthresh, log=log
    )
    if powerthresh is not None and cycle > 5:
        if not st.num_over and st.num_under >= powerthresh and st.powersave is not None:
            if log is not None:
                log(f"cpu {st.powersave.number} entering powersave mode")
            st.powersave.powersave = True
            for info in list(st.powersave.interrupts):
                force_rebalance(info, rebalance)
        elif st.num_over and st.num_powersave:
            if log is not None:
                log("Load average increasing, re-enabling all cpus for irq balancing")
            for cpu in cpus:
                cpu.powersave = False
    for objects in (caches, packages, nodes):
        find_overloaded_objects(
            objects, rebalance, migrateval=migrateval, powerthresh=powerthresh, log=log
        )
