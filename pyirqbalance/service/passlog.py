"""The pass report in the log: what each balancing pass changed, and why.

A pass listener (:class:`PassLog`, added by the daemon) that logs, at the
default level:

* one line per affinity it changed -- IRQ, name, CPUs before -> after and a
  short reason (class, balance level, NUMA node; the IRQ's load; moved off
  banned CPUs; first placement after a (re)scan)::

      IRQ 128 (enp3s0-TxRx-0): CPUs 0-3 -> 2 (ethernet, core level, node 0; first placement)

* one summary line: how many it moved and the kernel refused, and the busiest
  CPU's interrupt time since the last pass (and its share of that time)::

      pass 7: moved 2 IRQs, 1 refused by the kernel; busiest CPU 3: 41.2 ms of
      interrupts in 10.0 s (0.4%)

Rate-limited so that a rescan of thousands of IRQs is the first
:data:`FIRST_MOVES` move lines and the summary (which counts the rest); the
other moves are logged at debug level. A pass that changed nothing logs its
summary at debug level only, except a ``--oneshot`` run's one pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..engine.balancer import Balancer
from ..engine.model import Decision, PassReport
from ..kernel.cpumask import format_cpulist, irqbalance_parse_mask
from ..kernel.procirq import WriteResult, read_action_names

__all__ = ["FIRST_MOVES", "PassLog", "move_line", "short_reason", "summary_line"]

#: Move lines a pass logs at the default level; the others go to debug.
FIRST_MOVES = 5


def short_reason(decision: Decision, *, banned_cpus: int, first_placement: bool) -> str:
    """``"ethernet, core level, node 0; load 1.2 ms; off banned CPUs"``."""
    where = f"{decision.irq_class}, {decision.level} level"
    if decision.node >= 0:
        where += f", node {decision.node}"
    parts = [where]
    if decision.load > 1:  # 1 is irqbalance's floor: no load measured yet
        parts.append(f"load {decision.load / 1e6:.1f} ms")
    if decision.current_mask is not None and decision.current_mask & banned_cpus:
        parts.append("off banned CPUs")
    if first_placement:
        parts.append("first placement")
    return "; ".join(parts)


def move_line(write: WriteResult, decision: Decision | None, *, banned_cpus: int,
              first_placement: bool, name: str = "") -> str:
    """One changed affinity: ``IRQ 128 (name): CPUs 0-3 -> 2 (reason)``; ``name`` is
    the IRQ's handler names when the decision has none (PCI devices' IRQs)."""
    after = format_cpulist(irqbalance_parse_mask(write.text)) or "none"
    if decision is None:
        return f"IRQ {write.irq}: CPUs ? -> {after}"
    before = ("?" if decision.current_mask is None
              else format_cpulist(decision.current_mask) or "none")
    name = decision.name or name
    name = f" ({name})" if name else ""
    reason = short_reason(decision, banned_cpus=banned_cpus, first_placement=first_placement)
    return f"IRQ {write.irq}{name}: CPUs {before} -> {after} ({reason})"


def summary_line(number: int, moved: int, refused: int, hidden: int,
                 busiest: tuple[int, int] | None, elapsed_s: float | None) -> str:
    """``pass 7: moved 2 IRQs, 1 refused by the kernel; busiest CPU 3: ...``."""
    text = f"pass {number}: moved {moved} IRQ{'' if moved == 1 else 's'}"
    if refused:
        text += f", {refused} refused by the kernel"
    if hidden:
        text += f" ({hidden} move{'' if hidden == 1 else 's'} logged at debug level only)"
    if busiest is not None:
        cpu, load_ns = busiest
        text += f"; busiest CPU {cpu}: {load_ns / 1e6:.1f} ms of interrupts"
        if elapsed_s:
            text += f" in {elapsed_s:.1f} s ({load_ns / (elapsed_s * 1e9):.1%})"
        else:
            text += " since the last pass"
    return text


class PassLog:
    """Logs each pass's changes and its summary (a daemon pass listener)."""

    def __init__(self, balancer: Balancer, log: logging.Logger, *, oneshot: bool = False,
                 first_moves: int = FIRST_MOVES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.balancer = balancer
        self.log = log
        self.oneshot = oneshot
        self.first_moves = first_moves
        self.clock = clock
        self.passes = 0
        self._last: float | None = None

    def __call__(self, report: PassReport) -> None:
        now = self.clock()
        elapsed = now - self._last if self._last is not None else None
        self._last = now
        self.passes += 1
        moved = [w for w in report.writes if w.errno == 0]
        refused = sum(1 for w in report.writes if w.errno)
        banned = self.balancer.banned_cpus
        first = report.cycle == 0
        hidden = 0
        for k, write in enumerate(moved):
            level = logging.INFO if k < self.first_moves else logging.DEBUG
            if level == logging.DEBUG:
                hidden += 1
            if self.log.isEnabledFor(level):
                self.log.log(level, "%s", move_line(
                    write, self.balancer.decision(write.irq), banned_cpus=banned,
                    first_placement=first,
                    name=",".join(read_action_names(self.balancer.root, write.irq))))
        changed = bool(moved or refused)
        level = logging.INFO if changed or self.oneshot else logging.DEBUG
        if self.log.isEnabledFor(level):
            self.log.log(level, "%s", summary_line(
                self.passes, len(moved), refused, hidden, self._busiest(),
                None if first else elapsed))

    def _busiest(self) -> tuple[int, int] | None:
        """(CPU, ns of interrupt time since the last pass) of the busiest usable CPU."""
        topo = self.balancer.topo
        if topo is None or not topo.cpus:
            return None
        cpu = max(topo.cpus, key=lambda c: c.load)
        return (cpu.number, cpu.load) if cpu.load else None
