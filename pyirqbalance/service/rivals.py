"""Is an irqbalance already balancing this host? Two balancers would fight over /proc/irq.

A process counts as irqbalance when any of its names (``comm``, argv[0]'s or the
executable's base name) is ``irqbalance``: the kernel's name covers a renamed
argv[0], the executable a copy started under another argv[0].
"""

from __future__ import annotations

from ..kernel.procpid import ProcessNames, list_pids, read_process_names
from ..kernel.sysroot import SysRoot

__all__ = ["IRQBALANCE", "find_irqbalance", "is_irqbalance"]

IRQBALANCE = "irqbalance"


def is_irqbalance(names: ProcessNames) -> bool:
    """Whether the process with these names runs irqbalance."""
    return IRQBALANCE in names.basenames()


def find_irqbalance(root: SysRoot, self_pid: int | None = None) -> int | None:
    """The pid of a running irqbalance under ``root``'s /proc (never ``self_pid``), if any."""
    for pid in list_pids(root):
        if pid != self_pid and is_irqbalance(read_process_names(root, pid)):
            return pid
    return None
