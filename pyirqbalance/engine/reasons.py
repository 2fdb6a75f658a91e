"""Why an IRQ is where it is: one :class:`~pyirqbalance.engine.model.Decision` per IRQ.

:func:`explain_irq` turns what the balancer holds about one IRQ (its
database entry, the last activation, its place in the tree) into the
decision record the dry-run report, the API and history show. It reads
nothing: the caller passes the mask the IRQ has now.
"""

from __future__ import annotations

from .activate import Activation, hinted_target
from .classify import DbEntry, IrqInfo
from .model import BalanceLevel, Decision, HintPolicy
from .topology import NO_NODE, TopoObj

__all__ = ["explain_irq"]


def explain_irq(
    info: IrqInfo,
    entry: DbEntry | None,
    act: Activation | None,
    *,
    banned: bool,
    current: int | None,
    online: int,
    banned_cpus: int = 0,
) -> Decision:
    """The decision for ``info``; ``current`` is its smp_affinity now (None: unreadable).

    The target is the mask activation writes: the object's online CPUs, narrowed or
    replaced by the IRQ's affinity hint under ``--hintpolicy`` (None when the hint leaves
    nothing to write)."""
    why = entry.why if entry is not None else ""
    target = None
    if banned:
        reason = why
    elif info.unmanaged_reason is not None:
        reason = f"{why}; unmanaged after the kernel refused a write: {info.unmanaged_reason}"
    elif info.level == BalanceLevel.NONE:
        reason = why or "never balanced"
    elif info.assigned is None:
        reason = f"{why}; waiting for placement (no eligible node or CPU)"
    else:
        hinted, problem = hinted_target(info, info.assigned.mask & online, banned_cpus)
        target = hinted if problem is None else None
        reason = (
            f"{why}; class {info.irq_class.label} balances at {info.level.name.lower()} level; "
            f"placed on {_path(info.assigned)} (load {info.assigned.load})"
        )
        if info.hint and info.hintpolicy is not HintPolicy.IGNORE:
            reason += f"; affinity_hint {info.hint:x} ({info.hintpolicy.value})"
        if problem is not None:
            reason += f"; {problem}: nothing written"
        elif act is not None:
            reason += f"; {act.reason}"
    return Decision(
        irq=info.irq,
        name=info.name,
        irq_class=info.irq_class.label if not banned else "banned",
        level=info.level.name.lower(),
        node=info.node.number if info.node is not None else NO_NODE,
        current_mask=current,
        target_mask=target,
        assigned=info.assigned.label if info.assigned is not None else None,
        reason=reason,
        load=info.load,
        diff=info.diff,
    )


def _path(obj: TopoObj | None) -> str:
    """``"cpu 3 < cache 1 < package 0 < node 0"``: the object and its ancestors."""
    parts = []
    while obj is not None:
        parts.append(obj.label)
        obj = obj.parent
    return " < ".join(parts)
