#!/usr/bin/env python3
"""CPU of one balancing pass, --placement=balanced against the default, in process.

    python3 benchmarks/bench_placement_cost.py [--passes 8] [--big] [--share 1.0]
        [--load steady|changing|crowded]

The bench_balancer machines (scale_256: 256 CPUs, 2048 IRQs; --big: also scale_1024, 1024
CPUs, 8192 IRQs) are built with mkfake on /dev/shm; the tests' counter simulator fires
every IRQ's rate between passes (``--share``: only that share of the IRQs fire) and
applies the writes with the kernel's rules. Each placement runs in a fresh tree and
balancer, in a fresh process (the second does not run in the first one's heap); a pass's
cost is the thread CPU time of ``Balancer.run_pass`` (reading and parsing the two files
included; the simulator outside). The figure is the median of the
steady passes (the first, placing pass left out). ``--load changing``: before each pass a
new tenth of the firing IRQs (fixed seed) fires 5x its rate; ``--load crowded``: one NUMA
node, every IRQ firing on CPU 0 at start (an irqaffinity=0 boot). After the placing pass
the garbage collector is settled as the daemon settles it after every (re)build pass
(service/daemon.py: one collection, then what is alive -- tree, database, the placement's
state -- left out of later full collections). No harness, no FIFOs: this isolates what the
placement adds. bench_balancer.py --balanced measures the same through the
oracle's harness, daemon process and all.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pyirqbalance.engine.balancer import Balancer  # noqa: E402
from pyirqbalance.engine.model import BalancerSettings  # noqa: E402
from pyirqbalance.kernel.sysroot import SysRoot  # noqa: E402
from pyirqbalance.service.daemon import _settle_collector  # noqa: E402
from tests.conftest import CounterSimulator  # noqa: E402
from tests.oracle import gen_machines, mkfake  # noqa: E402

SIZES = {"scale_256": (2, 64, 2, 4, 2048, 256), "scale_1024": (4, 128, 2, 8, 8192, 1024)}


def _quiet(desc: dict, share: float) -> dict:
    firing = [q for d in desc.get("pci_devices", []) for q in d.get("irqs", [])
              if isinstance(q, dict) and q.get("rate")]
    for q in firing[max(1, int(len(firing) * share)):]:
        q["rate"] = 0
    return desc


def _crowded(desc: dict) -> dict:
    for q in [q for d in desc.get("pci_devices", []) for q in d.get("irqs", [])] + desc.get(
            "irqs", []):
        if isinstance(q, dict):
            q["effective_affinity"] = "0"
            q.pop("counts", None)
    return desc


def passes_ms(desc: dict, placement: str, passes: int, where: str, load: str) -> list[float]:
    m = mkfake.Machine(desc)
    mkfake.build_tree(m, where, force=True)
    root = SysRoot(where)
    sim = CounterSimulator(root, m)
    b = Balancer(root, BalancerSettings(placement=placement))
    b.start()
    out = []
    rng = random.Random(23)
    base = {n: q.get("rate", 0) for n, q in m.irqs.items()}
    firing = sorted(n for n, r in base.items() if r)
    for _ in range(passes):
        if load == "changing":
            hot = set(rng.sample(firing, max(1, len(firing) // 10)))
            for n in firing:
                m.irqs[n]["rate"] = base[n] * (5 if n in hot else 1)
        sim.advance(1)
        t = time.thread_time()
        report = b.run_pass()
        out.append((time.thread_time() - t) * 1000)
        if report.cycle == 0:
            _settle_collector()  # as the daemon does after its first pass
    shutil.rmtree(where)
    return out[1:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", type=int, default=8)
    ap.add_argument("--big", action="store_true")
    ap.add_argument("--share", type=float, default=1.0)
    ap.add_argument("--load", choices=["steady", "changing", "crowded"], default="steady")
    a = ap.parse_args()
    names = ["scale_256", "scale_1024"] if a.big else ["scale_256"]
    print("| machine | CPUs | IRQs | firing | load | default ms/pass | balanced ms/pass | ratio |")
    print("|---|---:|---:|---:|---|---:|---:|---:|")
    for name in names:
        sockets, cores, threads, nodes, irqs, seed = SIZES[name]
        medians = {}
        for placement in ("irqbalance", "balanced"):
            if a.load == "crowded":
                desc = _crowded(gen_machines.server(name, 1, sockets * cores, threads, 1, irqs,
                                                    seed=seed))
            else:
                desc = gen_machines.server(name, sockets, cores, threads, nodes, irqs, seed=seed)
            # each placement in a fresh process (forked before any machine is built): the
            # second run does not inherit the first one's heap
            with multiprocessing.get_context("fork").Pool(1) as pool:
                ms = pool.apply(passes_ms, (_quiet(desc, a.share), placement, a.passes,
                                            f"/dev/shm/placecost-{name}-{os.getpid()}", a.load))
            medians[placement] = statistics.median(ms)
            print(f"  {name} {placement}: {' '.join(f'{x:.1f}' for x in ms)}", file=sys.stderr)
        d, bal = medians["irqbalance"], medians["balanced"]
        print(f"| {name} | {sockets * cores * threads} | {irqs} | {a.share:.0%} | {a.load} | "
              f"{d:.1f} | {bal:.1f} | {bal / d:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
