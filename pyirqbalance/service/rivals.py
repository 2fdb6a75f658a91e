"""Is an irqbalance already balancing this host? Two balancers would fight over /proc/irq."""

from __future__ import annotations

import os

from ..errors import StartError

__all__ = ["find_irqbalance"]


def find_irqbalance() -> int | None:
    """The pid of a running irqbalance on this host, if any."""
    try:
        import psutil  # a declared dependency; imported only where it is needed
    except ImportError:
        raise StartError("psutil is not installed: cannot check for a running irqbalance "
                         "(pip install psutil, or use --force)") from None

    for proc in psutil.process_iter(["pid", "name", "exe", "cmdline"]):
        info = proc.info
        argv0 = (info.get("cmdline") or [""])[0]
        names = {info.get("name") or "", os.path.basename(info.get("exe") or ""),
                 os.path.basename(argv0)}
        if "irqbalance" in names and info["pid"] != os.getpid():
            return info["pid"]
    return None
