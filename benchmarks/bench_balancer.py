#!/usr/bin/env python3
"""pyirqbalance against irqbalance 1.9.2: CPU time and memory, same harness.

Both balancers run on the same staged fake machine through tests/oracle/harness.py
(irqbalance inside a private mount namespace, pyirqbalance with --sysroot on the
same staged copy); CPU time comes from wait4() of the balancer process. Peak RSS is
taken by GNU time around the oneshot runs (wait4's ru_maxrss would also count the
harness's own pages from before the exec).

* oneshot: whole process CPU (start-up included), median of ``--reps`` runs;
* per pass: daemon fed by the load simulator for K passes, ``--reps`` runs; the harness
  samples the balancer's CPU time (schedstat, all threads) at each pass's /proc/stat
  read, and the figure is the median over every steady pass of every run (start-up and
  the first, placing pass left out) -- with every IRQ firing (the oracle's cycles mode),
  and with only 10 % of the IRQs firing. ``--by-difference``: the older figure instead,
  (median CPU with K passes - median CPU with 1 pass) / (K - 1), which carries the
  start-up's run-to-run noise. "reading only": the same for ``read_floor.py``, which
  reads the two files each pass and does nothing else (what the harness's FIFOs cost).

    sudo python3 benchmarks/bench_balancer.py [--reps 3] [--passes 6] [--big] [--balanced]

``--balanced``: also pyirqbalance ``--placement=balanced`` (load-aware placement), in two
more columns: its CPU ms and its ratio to the default placement's.

Needs root, util-linux unshare and Debian's irqbalance for the irqbalance column
(otherwise that column is empty). Prints one markdown table.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from tests.oracle import gen_machines, harness  # noqa: E402

PY = harness.pyirqbalance_command
IRQBALANCE_BIN = "/usr/sbin/irqbalance"
#: A stand-in that only reads the two files each pass: the per-pass floor.
FLOOR = [sys.executable, os.path.join(HERE, "read_floor.py"), f"--sysroot={harness.SYSROOT}",
         "--interval=1"]


def _machines(big: bool) -> list[tuple[str, dict]]:
    """4, 64, 256 (and 1024) CPUs, ~8 IRQs per CPU; every IRQ fires in the cycles mode."""
    out = [("a_desktop4", gen_machines.machine_a())]
    # the same machines as tests/oracle/gen_machines.py's seeds
    sizes = [("scale_64", 2, 16, 2, 2, 512, 64), ("scale_256", 2, 64, 2, 4, 2048, 256)]
    if big:
        sizes.append(("scale_1024", 4, 128, 2, 8, 8192, 1024))
    for name, sockets, cores, threads, nodes, irqs, seed in sizes:
        desc = gen_machines.server(name, sockets, cores, threads, nodes, irqs, seed=seed)
        out.append((name, desc))
    return out


def _firing(desc: dict, share: float) -> dict:
    """The same machine with only ``share`` of its firing IRQs still firing."""
    d = copy.deepcopy(desc)
    firing = []
    for dev in d.get("pci_devices", []):
        for q in dev.get("irqs", []):
            if isinstance(q, dict) and q.get("rate"):
                firing.append(q)
    for q in d.get("irqs", []):
        if q.get("rate"):
            firing.append(q)
    keep = max(1, int(len(firing) * share))
    for q in firing[keep:]:
        q["rate"] = 0
    d["name"] = f"{d.get('name', 'machine')}_{int(share * 100)}pct"
    return d


def _irq_count(desc: dict) -> int:
    n = len(desc.get("irqs", []))
    for dev in desc.get("pci_devices", []):
        n += len(dev.get("irqs", []))
    return n


def _cpus(desc: dict) -> int:
    t = desc["topology"]
    if "cpus" in t:
        return len(t["cpus"])
    return t.get("packages", 1) * t["cores_per_package"] * t.get("threads_per_core", 1)


def _oneshot(argv: list[str], path: str, work: str, reps: int) -> tuple[float, int]:
    """Median CPU ms and peak RSS KiB of ``argv`` (a oneshot command line)."""
    cpu, rss = [], []
    os.makedirs(work, exist_ok=True)
    for i in range(reps):
        out = os.path.join(work, f"rss{i}")
        timed = ["/usr/bin/time", "-f", "%M", "-o", out, *argv]
        res = harness.run_oneshot(timed, path, os.path.join(work, f"o{i}"), interval=1)
        cpu.append(res.cpu_s)
        with open(out) as f:
            rss.append(int(f.read().split()[-1]))
    return statistics.median(cpu) * 1000, max(rss)


def _per_pass(
    balancer, path: str, work: str, passes: int, reps: int, by_difference: bool = False
) -> tuple[float, None]:
    """CPU ms of a steady pass: the median of every steady pass of ``reps`` runs.

    ``by_difference``: (median CPU with ``passes`` passes - median CPU with 1
    pass) / (passes - 1) instead; start-up CPU varies by tens of ms between
    runs, which this does not cancel.
    """
    runs = [harness.run_cycles(balancer, path, os.path.join(work, f"k{i}"), passes)
            for i in range(reps)]
    if not by_difference:
        return statistics.median(ms for r in runs for ms in r.steady_pass_cpu_ms()), None
    one = [harness.run_cycles(balancer, path, os.path.join(work, f"1-{i}"), 1).cpu_s
           for i in range(reps)]
    many = [r.cpu_s for r in runs]
    return (statistics.median(many) - statistics.median(one)) / (passes - 1) * 1000, None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--passes", type=int, default=6)
    ap.add_argument("--big", action="store_true", help="also the 1024-CPU machine (minutes, ~1 GB)")
    ap.add_argument("--only", action="append", default=[], help="machine name(s) to run")
    ap.add_argument("--balanced", action="store_true",
                    help="also measure --placement=balanced (two more columns)")
    ap.add_argument("--by-difference", action="store_true",
                    help="per pass from whole-run CPU with K and 1 passes (the older method)")
    a = ap.parse_args()
    ok, why = harness.have_oracle()
    if not ok:
        print(f"irqbalance column skipped: {why}", file=sys.stderr)
    # bytecode on disk, as a packaged install has it
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(ROOT, "pyirqbalance")],
                   check=False, stdout=subprocess.DEVNULL)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-balancer-") as tmp:
        for name, desc in _machines(a.big):
            if a.only and name not in a.only:
                continue
            cases = [("oneshot", desc), ("pass, all firing", desc),
                     ("pass, 10% firing", _firing(desc, 0.1))]
            for what, d in cases:
                path = os.path.join(tmp, f"{d.get('name', name)}.json")
                with open(path, "w") as f:
                    json.dump(d, f)
                work = os.path.join(tmp, f"{name}-{what.split(',')[0]}-{len(rows)}")
                floor = None
                bal: tuple[float | None, int | None] = (None, None)
                if what == "oneshot":
                    irqb_argv = [IRQBALANCE_BIN, "--oneshot", "--foreground", "--interval=1"]
                    irqb = _oneshot(irqb_argv, path, work + "-irqb", a.reps) if ok else (None, None)
                    py = _oneshot(PY("--oneshot", "--interval=1"), path, work + "-py", a.reps)
                    if a.balanced:
                        bal = _oneshot(PY("--oneshot", "--interval=1", "--placement=balanced"),
                                       path, work + "-bal", a.reps)
                else:
                    irqb = (_per_pass(harness.IRQBALANCE, path, work + "-irqb", a.passes, a.reps,
                                      a.by_difference) if ok else (None, None))
                    py = _per_pass(PY("--foreground", "--interval=1"), path, work + "-py", a.passes,
                                   a.reps, a.by_difference)
                    floor = _per_pass(FLOOR, path, work + "-floor", a.passes, a.reps,
                                      a.by_difference)[0]
                    if a.balanced:
                        bal = _per_pass(PY("--foreground", "--interval=1", "--placement=balanced"),
                                        path, work + "-bal", a.passes, a.reps, a.by_difference)
                rows.append((name, _cpus(desc), _irq_count(desc), what, irqb, py, floor, bal))
                print(f"  {name} {what}: irqbalance {irqb} pyirqbalance {py} reading {floor} "
                      f"balanced {bal}", file=sys.stderr)
    print(f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} CPUs "
          f"({os.uname().release}); irqbalance {harness.irqbalance_version() if ok else '-'}.\n")
    bal_head = " balanced CPU ms | balanced ÷ default |" if a.balanced else ""
    print("| machine | CPUs | IRQs | what | irqbalance CPU ms | pyirqbalance CPU ms | ratio "
          "| reading only ms | peak RSS irqbalance MiB | peak RSS pyirqbalance MiB |" + bal_head)
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"
          + ("---:|---:|" if a.balanced else ""))
    for name, cpus, irqs, what, (ims, irss), (pms, prss), floor, (bms, _) in rows:
        ratio = f"{pms / ims:.2f}" if ims else "-"
        fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
        mib = lambda kb: "-" if kb is None else f"{kb / 1024:.1f}"  # noqa: E731
        bal_cells = f" {fmt(bms)} | {bms / pms:.2f} |" if a.balanced and bms and pms else ""
        print(f"| {name} | {cpus} | {irqs} | {what} | {fmt(ims)} | {fmt(pms)} | {ratio} "
              f"| {fmt(floor)} | {mib(irss)} | {mib(prss)} |" + bal_cells)
    return 0


if __name__ == "__main__":
    sys.exit(main())
