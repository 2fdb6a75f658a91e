"""History store at scale: size per day and window query time, 256 CPUs x 2048 IRQs.

Usage: python3 benchmarks/bench_history.py [--days 30] [--active 0.25] [--dir DIR]

Recording 30 days of 1-minute readings through ``HistoryStore.record`` would
take hours (43,200 readings of 524,288 counters), so the benchmark does two
things:

1. times ``record`` itself on full-size readings (parse not included), and
   measures the bytes each reading adds;
2. fills the *same schema* directly in SQL with the rows ``record`` would
   have written for N days -- ``samples``, the changed ``cells`` and the
   ``hour``/``day`` rollups -- and then times ``HistoryStore.summary`` on
   windows of 30 days, 1 day and 1 hour with edges off the hour.

Sparsity assumption (stated in docs/api.md): x86 delivers an IRQ to one CPU
(its effective affinity), so an IRQ moves one cell per minute; a fraction
``--active`` of the IRQs fire in a given minute (default 25%: on a machine
with 2048 vectors most queues are idle at any moment); 5% of IRQs move to
another CPU each day; every CPU's irq and softirq jiffies change every
minute (512 cells). That is ~1,024 changed cells a minute out of 524,800.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyirqbalance.history.records import JIFFIES_IRQ, JIFFIES_SOFTIRQ, Reading, SeriesRow
from pyirqbalance.history.store import CPU_BITS, DAY, HOUR, HistoryStore

NCPU, NIRQ = 256, 2048
STEP = 60.0
T0 = 1_700_000_000.0


def time_record(path: str, active: float, n: int = 5) -> tuple[float, float]:
    """Seconds per full-size reading, and bytes per reading, through ``record``."""
    rng = random.Random(1)
    cpus = tuple(range(NCPU))
    counts = [[0] * NCPU for _ in range(NIRQ)]
    jiffies = [[0] * NCPU, [0] * NCPU]
    home = [i % NCPU for i in range(NIRQ)]

    def reading(k: int) -> Reading:
        for i in range(NIRQ):
            if rng.random() < active:
                counts[i][home[i]] += rng.randint(1, 5000)
        for j in jiffies:
            for c in cpus:
                j[c] += rng.randint(0, 3)
        rows = [SeriesRow(str(i), cpus, tuple(counts[i])) for i in range(NIRQ)]
        rows += [SeriesRow(JIFFIES_IRQ, cpus, tuple(jiffies[0]), 64),
                 SeriesRow(JIFFIES_SOFTIRQ, cpus, tuple(jiffies[1]), 64)]
        return Reading(T0 + k * STEP, "bench", T0 - 100, tuple(rows))

    with HistoryStore(path) as store:
        store.record(reading(0))                       # the baseline
        readings = [reading(k) for k in range(1, n + 1)]
        size0 = store.size_bytes()
        started = time.perf_counter()
        for r in readings:
            store.record(r)
        elapsed = (time.perf_counter() - started) / n
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return elapsed, (store.size_bytes() - size0) / n


def fill(path: str, days: int, active: float) -> int:
    """Write N days of 1-minute samples straight into the schema; returns the sample count."""
    store = HistoryStore(path)
    db = store._db
    db.execute("PRAGMA cache_size=-262144")
    db.execute("PRAGMA temp_store=MEMORY")
    n = int(days * DAY / STEP)
    pct = int(active * 100)
    db.execute("BEGIN")
    db.execute("INSERT INTO boots (boot_id, btime, first_ts, last_ts) VALUES ('bench', ?, ?, ?)",
               (T0 - 100, T0, T0 + (n - 1) * STEP))
    db.executemany("INSERT INTO series (series, label, irq) VALUES (?, ?, ?)",
                   [(i + 1, str(i), i) for i in range(NIRQ)]
                   + [(NIRQ + 1, JIFFIES_IRQ, None), (NIRQ + 2, JIFFIES_SOFTIRQ, None)])
    db.execute(f"""
        WITH RECURSIVE k(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM k WHERE x < {n - 1})
        INSERT INTO samples (sample, boot, t0, ts, baseline, wraps, resets)
        SELECT x + 1, 1, {T0} + (x - 1) * {STEP}, {T0} + x * {STEP}, x = 0, 0, 0 FROM k""")
    db.execute(f"CREATE TEMP TABLE irq AS WITH RECURSIVE i(n) AS "
               f"(SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n < {NIRQ - 1}) SELECT n FROM i")
    db.execute(f"CREATE TEMP TABLE cpu AS WITH RECURSIVE c(n) AS "
               f"(SELECT 0 UNION ALL SELECT n + 1 FROM c WHERE n < {NCPU - 1}) SELECT n FROM c")
    # One cell per active IRQ per minute, on its CPU of the day; 5% of IRQs move daily.
    db.execute(f"""
        INSERT INTO cells (sample, cell, delta)
        SELECT s.sample,
               ((irq.n + 1) << {CPU_BITS}) | ((irq.n + CASE WHEN irq.n % 20 = 0
                   THEN CAST((s.ts - {T0}) / {DAY} AS INTEGER) ELSE 0 END) % {NCPU}),
               1 + (irq.n * 7919 + s.sample * 104729) % 5000
        FROM samples s, irq
        WHERE (irq.n * 2654435761 + s.sample * 40503) % 100 < {pct}
        ORDER BY s.sample""")
    for sid in (NIRQ + 1, NIRQ + 2):
        db.execute(f"""
            INSERT INTO cells (sample, cell, delta)
            SELECT s.sample, ({sid} << {CPU_BITS}) | cpu.n, 1 + (cpu.n + s.sample) % 3
            FROM samples s, cpu ORDER BY s.sample, cpu.n""")
    for table, width in (("hour", HOUR), ("day", DAY)):
        db.execute(f"""
            INSERT INTO {table} (bucket, cell, delta)
            SELECT CAST(s.ts / {width} AS INTEGER) AS b, c.cell, SUM(c.delta)
            FROM cells c JOIN samples s USING (sample) WHERE s.baseline = 0
            GROUP BY b, c.cell""")
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('boot_id', 'bench')")
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return n


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--active", type=float, default=0.25, help="share of IRQs firing per minute")
    ap.add_argument("--dir", help="where to build the store (default: a temp dir, removed)")
    args = ap.parse_args()
    work = args.dir or tempfile.mkdtemp(prefix="bench-history-")
    try:
        per_record, per_record_bytes = time_record(os.path.join(work, "record.sqlite"), args.active)
        path = os.path.join(work, "history.sqlite")
        started = time.perf_counter()
        n = fill(path, args.days, args.active)
        fill_s = time.perf_counter() - started
        size = os.path.getsize(path)
        end = T0 + (n - 1) * STEP
        rows = [("what", "value")]
        rows.append(("machine", f"{NCPU} CPUs x {NIRQ} IRQs, {args.active:.0%} IRQs active/min"))
        rows.append(("record() of one reading", f"{per_record * 1000:.0f} ms (writer thread)"))
        rows.append(("bytes added per reading", f"{per_record_bytes / 1024:.1f} KiB"))
        rows.append((f"store after {args.days} days ({n} samples)", f"{size / 2**20:.0f} MiB"))
        rows.append(("store per day", f"{size / args.days / 2**20:.1f} MiB"))
        rows.append(("projected 30 days", f"{size / args.days * 30 / 2**30:.2f} GiB (limit 1 GiB)"))
        rows.append(("generation (SQL)", f"{fill_s:.0f} s"))
        with HistoryStore(path) as store:
            for label, a, b in (
                (f"{args.days}-day window query", T0 + 1234.5, end - 777.0),
                ("1-day window query", end - DAY - 1234.5, end - 777.0),
                ("1-hour window query", end - 3600 - 17.0, end - 17.0),
            ):
                s = store.summary(a, b)
                t = best_of(lambda a=a, b=b: store.summary(a, b))
                rows.append((label, f"{t * 1000:.0f} ms ({s.samples} samples, "
                                    f"{len(s.irqs)} IRQs, {sum(s.per_cpu.values())} interrupts)"))
        width = max(len(r[0]) for r in rows)
        for what, value in rows:
            print(f"{what.ljust(width)}  {value}")
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
