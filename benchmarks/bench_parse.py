#!/usr/bin/env python3
"""Parse-time benchmark for /proc/interrupts.

Prints a markdown table: for generated kernel-format files (benchmarks/gen_interrupts.py)
and the real 1152-CPU capture, the median CPU time (``time.process_time``) of

* ``parse_irq_counts``             -- a full scan, no row reused;
* ``IrqCountScanner.scan``, all rows unchanged since the previous scan;
* ``IrqCountScanner.scan`` with 10 % of the IRQ rows changed;
* ``parse_interrupts``             -- the full parse for people and the API.

    python3 benchmarks/bench_parse.py [--runs 9] [--quick]
"""

from __future__ import annotations

import argparse
import bz2
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from benchmarks.gen_interrupts import bump, make_state, render  # noqa: E402
from pyirqbalance.kernel.procinterrupts import (  # noqa: E402
    IrqCountScanner,
    parse_interrupts,
    parse_irq_counts,
    reference_irq_counts,
)

REAL = os.path.join(HERE, "..", "tests", "fixtures", "proc", "performancecopilot-pcp", "qa",
                    "linux", "interrupts-1152cpu-x86_64.bz2")


def median_ms(fn, runs: int, before=None) -> float:
    times = []
    for _ in range(runs):
        if before is not None:
            before()
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return statistics.median(times) * 1000


def changed_rows(data: bytes, fraction: float) -> bytes:
    """Add 1 to the first count of ``fraction`` of the numbered rows (a real capture)."""
    lines = data.split(b"\n")
    numbered = [i for i, line in enumerate(lines[1:], 1) if line.lstrip()[:1].isdigit()]
    for i in numbered[::round(1 / fraction)]:
        head, colon, body = lines[i].partition(b":")
        first = body[:11]
        value = int(first) + 1
        lines[i] = head + colon + b" %10d" % value + body[11:]
    return b"\n".join(lines)


def cases(quick: bool):
    sizes = [(64, 512), (256, 2048)] + ([] if quick else [(1024, 8192)])
    for ncpu, nirq in sizes:
        machine, state = make_state(ncpu, nirq)
        data = render(machine, state)
        yield f"{ncpu}×{nirq} generated", data, bump(machine, state, 0.10)
    with open(REAL, "rb") as f:
        data = bz2.decompress(f.read())
    yield "1152×1034 real (pcp)", data, changed_rows(data, 0.10)


def _row(data: bytes, changed: bytes, runs: int) -> list[str]:
    """The table's timing cells for one file: full parse, scanner unchanged / 10% changed,
    parse_interrupts."""
    full = median_ms(lambda: parse_irq_counts(data), runs)
    scanner = IrqCountScanner()
    scanner.scan(data)
    unchanged = median_ms(lambda: scanner.scan(data), runs)
    ten = median_ms(lambda: scanner.scan(changed), runs, before=lambda: scanner.scan(data))
    people = median_ms(lambda: parse_interrupts(data.decode()), max(3, runs // 3))
    return [f"{full:.1f}", f"{unchanged:.2f}", f"{ten:.2f}", f"{people:.0f}"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=9)
    p.add_argument("--quick", action="store_true", help="skip the 1024×8192 case")
    args = p.parse_args(argv)
    print("| case | bytes | full parse_irq_counts ms | scanner unchanged ms "
          "| scanner 10% changed ms | parse_interrupts ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, data, changed in cases(args.quick):
        assert parse_irq_counts(changed) == reference_irq_counts(changed)
        print(f"| {name} | {len(data):,} | " + " | ".join(_row(data, changed, args.runs)) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
