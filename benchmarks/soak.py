"""Soak test: many balancing passes in one process; memory and file descriptors must stay flat.

A 64-CPU fake machine (``b_2s64``, 2 packages, recorded with the irqbalance 1.9.2 runs)
is built in a temp dir; the daemon's own pass wrapper (``Daemon.run_pass`` with its
per-pass listeners) runs back to back with interval 0, and the counter simulator of
the test suite fires every IRQ and applies the written masks between passes, so
loads, migrations and writes happen as on a live machine. Every ``--checkpoint``
passes it prints RSS, open fds and the mean time per pass over the last window
(which includes the simulator's rewrite of /proc/interrupts and /proc/stat).

    python3 benchmarks/soak.py                 # 10 000 passes
    python3 benchmarks/soak.py --passes 50000 --checkpoint 5000

Exit status 1 if RSS grew more than ``--max-growth-mib`` after warm-up or the fd
count changed.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyirqbalance.engine.balancer import Balancer  # noqa: E402
from pyirqbalance.kernel.sysroot import SysRoot  # noqa: E402
from pyirqbalance.service.cli import resolve  # noqa: E402
from pyirqbalance.service.config import Config  # noqa: E402
from pyirqbalance.service.daemon import Daemon, _Signals  # noqa: E402
from pyirqbalance.service.notify import Notifier  # noqa: E402
from pyirqbalance.service.originals import OriginalAffinities  # noqa: E402
from tests.conftest import CounterSimulator, load_machine  # noqa: E402
from tests.oracle import mkfake  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", type=int, default=10_000)
    ap.add_argument("--checkpoint", type=int, default=1_000)
    ap.add_argument("--machine", default="b_2s64", help="recorded machine name or JSON path")
    ap.add_argument("--max-growth-mib", type=float, default=8.0)
    args = ap.parse_args()

    proc = psutil.Process()
    log = logging.getLogger("soak")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    with tempfile.TemporaryDirectory(prefix="pyirqbalance-soak-") as tmp:
        machine = load_machine(args.machine)
        mkfake.build_tree(machine, tmp, force=True)
        root = SysRoot(tmp)
        sim = CounterSimulator(root, machine)
        opts = resolve(["--sysroot", tmp, "--interval=1"], {}, Config())
        balancer = Balancer(root, opts.settings, log=log)
        balancer.start()
        daemon = Daemon(opts, balancer, log=log, signals=_Signals(), notifier=Notifier({}))
        daemon.interval = 0  # a rescan pass's wait takes no time
        balancer.before_first_write = OriginalAffinities(opts.state_dir, log).record
        print(f"machine {args.machine}: {len(machine.online)} CPUs, {len(machine.irqs)} IRQs; "
              f"{args.passes} passes")
        print(f"{'passes':>8} {'RSS MiB':>9} {'fds':>5} {'ms/pass':>9} {'moved':>7}")
        rows = []
        moved = 0
        window = time.perf_counter()
        for n in range(1, args.passes + 1):
            report = daemon.run_pass()
            if report is None:
                print(f"pass {n} failed", file=sys.stderr)
                return 1
            moved += report.moved
            sim.advance(1.0)
            if n % args.checkpoint == 0 or n == args.passes:
                gc.collect()
                now = time.perf_counter()
                rss = proc.memory_info().rss / 2**20
                fds = proc.num_fds()
                ms = (now - window) * 1000 / (args.checkpoint if n % args.checkpoint == 0
                                             else n % args.checkpoint)
                rows.append((n, rss, fds))
                print(f"{n:>8} {rss:>9.1f} {fds:>5} {ms:>9.2f} {moved:>7}", flush=True)
                window = time.perf_counter()
    warm = rows[min(1, len(rows) - 1)]
    growth = rows[-1][1] - warm[1]
    fds_flat = len({r[2] for r in rows}) == 1
    verdict = growth <= args.max_growth_mib and fds_flat
    print(f"RSS growth after pass {warm[0]}: {growth:+.1f} MiB (limit {args.max_growth_mib}); "
          f"fds {'flat' if fds_flat else 'CHANGED'} -> {'OK' if verdict else 'LEAK'}")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
