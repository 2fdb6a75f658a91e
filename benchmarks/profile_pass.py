#!/usr/bin/env python3
"""Where a pass's time goes: cProfile of ``Balancer.run_pass`` on a simulated machine.

Builds one of bench_balancer's machines with the project's fake-machine builder,
then runs the balancer in-process on that tree: a first (placing) pass, then
``--passes`` steady-state passes, each after the load simulator has advanced
(every IRQ fires on its effective CPU, like the harness's cycles mode) and the
balancer's writes were taken into the simulated kernel state. Prints the mean
wall time per steady pass and the cProfile top entries by own time.

    python3 benchmarks/profile_pass.py scale_256 [--firing 0.1] [--passes 5] [--top 25]
        [--placement irqbalance|balanced]

No root needed: everything goes through --sysroot-style paths in a temp dir (on
/dev/shm when there is one, a tmpfs like the harness's).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
#: The tree on a tmpfs when there is one, as the harness stages it.
_TMP = "/dev/shm" if os.path.isdir("/dev/shm") else None
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from bench_balancer import _firing, _machines  # noqa: E402

from pyirqbalance.engine.balanced import PLACEMENTS  # noqa: E402
from pyirqbalance.engine.balancer import Balancer  # noqa: E402
from pyirqbalance.engine.model import BalancerSettings  # noqa: E402
from pyirqbalance.kernel.sysroot import SysRoot  # noqa: E402
from tests.oracle import harness, mkfake  # noqa: E402


def _publish(m, st, tree: str) -> None:
    with open(os.path.join(tree, "proc", "interrupts"), "w") as f:
        f.write(mkfake.render_interrupts(m, st))
    with open(os.path.join(tree, "proc", "stat"), "w") as f:
        f.write(mkfake.render_stat(m, st))


def _take_writes(m, st, tree: str, report) -> None:
    for w in report.writes:
        mask = harness.mask_cpus(w.text)
        cpus = [c for c in m.online if mask is not None and mask >> c & 1]
        if cpus:
            st.set_affinity(w.irq, cpus)
            mkfake.write_irq_dir(m, tree, w.irq, st)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("machine")
    ap.add_argument("--firing", type=float, default=1.0, help="share of IRQs firing")
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--sort", default="tottime")
    ap.add_argument("--placement", choices=PLACEMENTS, default="irqbalance")
    ap.add_argument("--no-profile", action="store_true",
                    help="time the steady passes (wall and CPU) without cProfile")
    a = ap.parse_args()
    desc = dict(_machines(big=a.machine == "scale_1024"))[a.machine]
    if a.firing < 1:
        desc = _firing(desc, a.firing)
    with tempfile.TemporaryDirectory(prefix="profile-pass-") as tmp:
        m = harness.load_machine(desc)
        tree = os.path.join(tmp, "tree")
        mkfake.build_tree(m, tree, force=True)
        st = mkfake.SimState(m)
        _publish(m, st, tree)
        bal = Balancer(SysRoot(tree), BalancerSettings(placement=a.placement))
        t0 = time.perf_counter()
        bal.start()
        first = bal.run_pass()
        print(f"start + first pass: {(time.perf_counter() - t0) * 1000:.1f} ms, "
              f"{len(first.writes)} writes", file=sys.stderr)
        _take_writes(m, st, tree, first)
        prof = None if a.no_profile else cProfile.Profile()
        spent = cpu = 0.0
        for _ in range(a.passes):
            st.advance(1)
            _publish(m, st, tree)
            if prof:
                prof.enable()
            t0, c0 = time.perf_counter(), time.process_time()
            report = bal.run_pass()
            spent += time.perf_counter() - t0
            cpu += time.process_time() - c0
            if prof:
                prof.disable()
            _take_writes(m, st, tree, report)
        print(f"steady pass: {spent / a.passes * 1000:.1f} ms wall, "
              f"{cpu / a.passes * 1000:.1f} ms CPU{'' if prof is None else ' (profiled)'}, "
              f"last pass {len(report.writes)} writes", file=sys.stderr)
        if prof:
            pstats.Stats(prof).sort_stats(a.sort).print_stats(a.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
