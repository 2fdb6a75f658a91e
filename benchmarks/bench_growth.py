#!/usr/bin/env python3
"""How pyirqbalance's per-pass cost grows with the machine.

For 4, 64, 256, 1024 and 4096 CPUs, builds a fake machine (the project's
generator, the same family as bench_balancer's), runs the balancer in-process
on it under the load simulator (every IRQ fires on its effective CPU, or only
10 % of them) and prints the CPU time of a steady-state pass next to the size
of /proc/interrupts, and the cost per MB. Linear growth means a flat last
column. The 4096-CPU machine has 2560 IRQs (16 nodes of NVMe queues alone are 2064;
8 IRQs per CPU would make a 1.5 GB file).

    python3 benchmarks/bench_growth.py [--passes 4] [--max-cpus 4096]

Unlike bench_balancer this needs no root and no irqbalance: CPU is the pass
thread's own (``PassReport.cpu_s``), reading files from the disk's page cache.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from bench_balancer import _firing  # noqa: E402
from profile_pass import _publish, _take_writes  # noqa: E402

from pyirqbalance.engine.balancer import Balancer  # noqa: E402
from pyirqbalance.kernel.sysroot import SysRoot  # noqa: E402
from tests.oracle import gen_machines, harness, mkfake  # noqa: E402

#: name, sockets, cores per socket, threads, NUMA nodes, IRQs
SIZES = [
    ("desktop_4", None),
    ("scale_64", (2, 16, 2, 2, 512)),
    ("scale_256", (2, 64, 2, 4, 2048)),
    ("scale_1024", (4, 128, 2, 8, 8192)),
    ("scale_4096", (8, 256, 2, 16, 2560)),
]


def _machine(name: str, shape):
    if shape is None:
        return gen_machines.machine_a()
    sockets, cores, threads, nodes, irqs = shape
    return gen_machines.server(name, sockets, cores, threads, nodes, irqs,
                               seed=sockets * cores * threads)


def _per_pass(desc: dict, passes: int, tmp: str) -> tuple[int, int, float]:
    """(CPUs, /proc/interrupts bytes, median steady-pass CPU ms)."""
    m = harness.load_machine(desc)
    tree = os.path.join(tmp, desc.get("name", "m"))
    mkfake.build_tree(m, tree, force=True)
    st = mkfake.SimState(m)
    _publish(m, st, tree)
    bal = Balancer(SysRoot(tree))
    bal.start()
    _take_writes(m, st, tree, bal.run_pass())
    cpu = []
    for _ in range(passes):
        st.advance(1)
        _publish(m, st, tree)
        report = bal.run_pass()
        cpu.append(report.cpu_s * 1000)
        _take_writes(m, st, tree, report)
    size = os.path.getsize(os.path.join(tree, "proc", "interrupts"))
    return len(m.online), size, statistics.median(cpu)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--passes", type=int, default=4)
    ap.add_argument("--max-cpus", type=int, default=4096)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-growth-") as tmp:
        for name, shape in SIZES:
            if shape is not None and shape[0] * shape[1] * shape[2] > a.max_cpus:
                continue
            desc = _machine(name, shape)
            for what, d in (("all firing", desc), ("10% firing", _firing(desc, 0.1))):
                cpus, size, ms = _per_pass(d, a.passes, tmp)
                irqs = len(d.get("irqs", [])) + sum(len(x.get("irqs", []))
                                                    for x in d.get("pci_devices", []))
                rows.append((name, cpus, irqs, size, what, ms))
                print(f"  {name} {what}: {ms:.1f} ms", file=sys.stderr)
    print(f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} CPUs "
          f"({os.uname().release}), Python {sys.version.split()[0]}; peak RSS of this run "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB.\n")
    print("| machine | CPUs | IRQs | /proc/interrupts MB | pass | CPU ms per pass | ms per MB |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for name, cpus, irqs, size, what, ms in rows:
        mb = size / 1e6
        print(f"| {name} | {cpus} | {irqs} | {mb:.2f} | {what} | {ms:.1f} | {ms / mb:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
