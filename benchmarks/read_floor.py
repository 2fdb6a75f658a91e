#!/usr/bin/env python3
"""The floor of a balancing pass: read /proc/interrupts and /proc/stat, nothing else.

A stand-in balancer for the harness's cycles mode (``bench_balancer.py`` runs it
beside both balancers): at start-up and every ``--interval`` seconds it reads
/proc/interrupts the way pyirqbalance does -- whole, into one buffer used again
(``SysRoot.read_into``), up to the scanner's memo limit, and in chunks above it
(``SysRoot.read_chunks``) -- then /proc/stat, until SIGTERM. Its CPU time per
pass is what the two reads cost in that harness (the files come through FIFOs),
which no balancer can go below.

    python3 benchmarks/read_floor.py --sysroot DIR [--interval 1]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pyirqbalance.kernel.procinterrupts import MEMO_LIMIT
from pyirqbalance.kernel.sysroot import KernelReadError, SysRoot


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sysroot", required=True)
    ap.add_argument("--interval", type=float, default=1.0)
    a = ap.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    root = SysRoot(a.sysroot)
    interrupts, stat = root.proc("interrupts"), root.proc("stat")
    buf, size = bytearray(), 0
    while True:
        try:
            if 0 < size <= MEMO_LIMIT:  # IrqCountScanner.wants_whole
                buf = root.read_into(interrupts, buf)
                size = len(buf)
            else:
                size = sum(map(len, root.read_chunks(interrupts)))
            root.read_bytes(stat)
        except KernelReadError as err:
            print(err, file=sys.stderr)
            return 1
        if stop.wait(a.interval):
            return 0


if __name__ == "__main__":
    sys.exit(main())
