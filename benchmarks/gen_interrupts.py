#!/usr/bin/env python3
"""Generate /proc/interrupts text exactly as the kernel prints it.

The rows are rendered by the oracle's ``render_interrupts`` (tests/oracle/mkfake.py,
kernel/irq/proc.c ``show_interrupts``: ``%*d:`` label, `` %10u`` per online CPU,
chip, hwirq, flow handler, action names), so the benchmark parses the same bytes
the balancer reads on a real machine of that size.

Counts follow what a long-running box shows: every IRQ has counted on a few CPUs
(the ones it was moved to over time), a few IRQs (timers, busy NIC queues) on
many. ``density`` is the fraction of non-zero cells in the "many" rows.

    python3 benchmarks/gen_interrupts.py 256 2048 > /tmp/interrupts
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from types import SimpleNamespace

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tests.oracle.mkfake import render_interrupts

_KINDS = (
    # chip, flow, name pattern
    ("IR-PCI-MSIX-0000:{bus:02x}:00.0", "edge", "mlx5_comp{q}@pci:0000:{bus:02x}:00.0"),
    ("PCI-MSIX-0000:{bus:02x}:00.0", "edge", "nvme{bus}q{q}"),
    ("IR-PCI-MSI-0000:{bus:02x}:00.0", "edge", "qat{bus}-bundle{q}"),
)


def make_state(ncpu: int, nirq: int, seed: int = 1, density: float = 0.5):
    """(machine, state) objects with what ``render_interrupts`` reads."""
    rng = random.Random(seed)
    online = list(range(ncpu))
    irqs: dict[int, dict] = {}
    counts: dict[int, dict[int, int]] = {}
    for i in range(nirq):
        n = i if i < 16 else 24 + i  # legacy 0-15, then MSI from 40 on
        if i < 16:
            irqs[n] = {"chip": "IO-APIC", "hwirq": str(i), "flow": "edge", "name": f"legacy{i}"}
        else:
            chip, flow, name = _KINDS[i % len(_KINDS)]
            bus, q = i // 64, i % 64
            irqs[n] = {"chip": chip.format(bus=bus), "hwirq": str(q), "flow": flow,
                       "name": name.format(bus=bus, q=q)}
        if rng.random() < 0.05:  # busy on many CPUs
            cpus = [c for c in online if rng.random() < density]
        else:
            cpus = rng.sample(online, min(ncpu, rng.randrange(0, 4)))
        counts[n] = {c: rng.randrange(1, 10**rng.randrange(1, 10)) for c in cpus}
    prec = 3
    while prec < 10 and 10**prec <= max(irqs) + 1:
        prec += 1
    machine = SimpleNamespace(prec=prec, online=online, irqs=irqs)
    state = SimpleNamespace(counts=counts, cycle=1)
    return machine, state


def render(machine, state) -> bytes:
    return render_interrupts(machine, state).encode()


def generate(ncpu: int, nirq: int, seed: int = 1, density: float = 0.5) -> bytes:
    """Kernel-format /proc/interrupts for ``ncpu`` online CPUs and ``nirq`` IRQs."""
    return render(*make_state(ncpu, nirq, seed, density))


def bump(machine, state, fraction: float, seed: int = 2) -> bytes:
    """Add interrupts to ``fraction`` of the rows (one CPU each), render again."""
    rng = random.Random(seed)
    rows = list(machine.irqs)
    for n in rng.sample(rows, int(len(rows) * fraction)):
        cpu = rng.choice(machine.online)
        counts = state.counts[n]
        counts[cpu] = counts.get(cpu, 0) + rng.randrange(1, 1000)
    return render(machine, state)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cpus", type=int)
    p.add_argument("irqs", type=int)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--density", type=float, default=0.5)
    args = p.parse_args(argv)
    sys.stdout.buffer.write(generate(args.cpus, args.irqs, args.seed, args.density))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
