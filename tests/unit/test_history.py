"""History store: deltas across wraps, resets and reboots; rollup windows; durability."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pyirqbalance.engine.model import PassReport, Snapshot
from pyirqbalance.history import (
    HistoryConfig,
    HistoryError,
    HistoryRecorder,
    HistoryStore,
    IrqMeta,
    Reading,
    SeriesRow,
    reading_from_snapshot,
)
from pyirqbalance.history.deltas import WRAP_WINDOW, Change, counter_delta
from pyirqbalance.kernel.sysroot import SysRoot

BTIME = 1_700_000_000.0


def reading(ts: float, counts: tuple[int, ...], boot: str = "boot-a", label: str = "24",
            btime: float = BTIME, name: str = "eth0") -> Reading:
    return Reading(ts, boot, btime, (SeriesRow(label, (0, 1), counts),),
                   (IrqMeta(int(label), name),))


@pytest.fixture
def store(tmp_path: Path):
    s = HistoryStore(str(tmp_path / "history.sqlite"))
    yield s
    s.close()


@pytest.mark.parametrize(
    "previous, current, bits, expected",
    [
        (10, 25, 32, (15, Change.UP)),
        (7, 7, 32, (0, Change.UP)),
        (2**32 - 5, 10, 32, (15, Change.WRAP)),          # wrapped past 2**32
        (2**32 - 1, 0, 32, (1, Change.WRAP)),
        (1_000_000, 10, 32, (10, Change.RESET)),         # re-registered: counts from 0
        (2**32 - WRAP_WINDOW, 0, 32, (0, Change.RESET)),  # a "wrap" of 2**30 is not believable
        (2**32 - 5, 10, 64, (10, Change.RESET)),          # jiffies are 64-bit: no wrap there
    ],
)
def test_counter_delta(previous, current, bits, expected):
    assert counter_delta(previous, current, bits) == expected


def test_sums_across_wrap_reset_and_reboot(store: HistoryStore):
    t = BTIME + 100
    assert store.record(reading(t, (10, 0))).baseline
    store.record(reading(t + 60, (20, 5)))                 # +10 +5
    store.record(reading(t + 120, (2**32 - 3, 5)))         # +2**32-23
    rec = store.record(reading(t + 180, (7, 5)))           # wrap: +10
    assert (rec.wraps, rec.resets) == (1, 0)
    rec = store.record(reading(t + 240, (3, 6)))           # reset (driver reload): +3, +1
    assert (rec.wraps, rec.resets) == (0, 1)               # cpu0 7 -> 3 is a reset, cpu1 5 -> 6 up
    # Reboot: a new boot id; counters restarted at 0.
    rb = store.record(reading(t + 400, (4, 2), boot="boot-b", btime=t + 300))
    assert rb.baseline
    store.record(reading(t + 460, (9, 2), boot="boot-b", btime=t + 300))  # +5

    s = store.summary(BTIME, t + 1000)
    assert s.per_cpu == {0: 10 + 10 + (2**32 - 23) + 10 + 3 + 4 + 5, 1: 5 + 1 + 2}
    assert [b.boot_id for b in s.boots] == ["boot-a", "boot-b"]
    assert s.reboots == 1
    assert (s.wraps, s.resets) == (1, 1)
    assert s.irqs[0].irq == 24 and s.irqs[0].name == "eth0"
    assert s.covered_from == BTIME and s.covered_to == t + 460


def test_window_starting_inside_a_boot_excludes_its_baseline(store: HistoryStore):
    t = BTIME + 100
    store.record(reading(t, (10, 0)))
    store.record(reading(t + 60, (30, 0)))
    s = store.summary(BTIME + 50, t + 60)   # starts after boot, before the first sample
    assert s.per_cpu == {0: 20}
    assert len(s.notes) == 1 and "excluded" in s.notes[0]
    assert s.covered_from == t


def test_rollup_windows_match_sample_counts(store: HistoryStore):
    """Three days of samples, +1 per sample on CPU 0: any window sums to its sample count."""
    start = 1_699_990_000.0  # not aligned to hours or days
    step = 600.0
    n = int(3 * 86400 / step)
    for k in range(n):
        store.record(reading(start + k * step, (k, 0), btime=start - 10))
    times = [start + k * step for k in range(n)]
    for a, b in [(start + 1, start + 3 * 86400), (start + 5000.5, start + 200000.0),
                 (start + 86400 * 0.7, start + 86400 * 1.9), (start + 700, start + 1300)]:
        expected = sum(1 for ts in times[1:] if a < ts <= b)
        assert store.summary(a, b).per_cpu.get(0, 0) == expected, (a, b)


def test_restart_in_same_boot_continues_deltas(tmp_path: Path):
    path = str(tmp_path / "h.sqlite")
    with HistoryStore(path) as s:
        s.record(reading(BTIME + 60, (100, 0)))
    with HistoryStore(path) as s:
        rec = s.record(reading(BTIME + 600, (150, 0)))
        assert not rec.baseline
        assert s.summary(BTIME + 61, BTIME + 600).per_cpu == {0: 50}


def test_vanished_irq_that_returns_counts_from_zero(store: HistoryStore):
    store.record(reading(BTIME + 60, (100, 0)))
    store.record(Reading(BTIME + 120, "boot-a", BTIME, (SeriesRow("25", (0, 1), (1, 0)),)))
    store.record(reading(BTIME + 180, (40, 0)))   # IRQ 24 registered again: 40 since then
    s = store.summary(BTIME + 61, BTIME + 180)
    assert {t.irq: t.total for t in s.irqs} == {24: 40, 25: 1}
    assert s.resets == 0


def test_prune_keeps_the_retention(tmp_path: Path):
    with HistoryStore(str(tmp_path / "h.sqlite"), retention_days=1) as s:
        for k in range(4):
            s.record(reading(BTIME + k * 43200, (k * 10, 0)))
        assert s.prune(now=BTIME + 3 * 43200 + 1) == 2   # samples older than a day
        assert s.summary(0, BTIME + 10**6).samples == 2


def test_overrides_persist(tmp_path: Path):
    path = str(tmp_path / "h.sqlite")
    with HistoryStore(path) as s:
        s.set_override(24, 0xF)
        s.set_override(25, 0x1)
        s.delete_override(25)
    with HistoryStore(path) as s:
        assert s.overrides() == {24: 0xF}


def test_not_a_database_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "h.sqlite"
    path.write_bytes(b"this is not sqlite\n" * 300)
    with pytest.raises(HistoryError, match="not a usable SQLite database"):
        HistoryStore(str(path))


def test_missing_store_without_create(tmp_path: Path):
    with pytest.raises(HistoryError, match="no such file"):
        HistoryStore(str(tmp_path / "none.sqlite"), create=False)


def test_recorder_with_unusable_store_disables_history_only(tmp_path: Path, caplog):
    bad = tmp_path / "h.sqlite"
    bad.write_bytes(b"garbage" * 1000)
    rec = HistoryRecorder(SysRoot(tmp_path), HistoryConfig(path=str(bad)))
    with caplog.at_level(logging.ERROR, logger="pyirqbalance"):
        rec.start()
        rec.stop()
    assert rec.error is not None and "not a usable SQLite database" in rec.error
    assert sum("history disabled" in r.message for r in caplog.records) == 1
    rec.on_pass(PassReport(0, False, snapshot=Snapshot(0.0, b"", None)))  # ignored, no raise


INTERRUPTS = """\
           CPU0       CPU1
  0:         40          0   IO-APIC   2-edge      timer
 24:        100        200   PCI-MSI 49152-edge      eth0
NMI:          0          0   Non-maskable interrupts
"""
STAT = """\
cpu  10 0 10 100 0 7 9 0 0 0
cpu0 5 0 5 50 0 3 4 0 0 0
cpu1 5 0 5 50 0 4 5 0 0 0
btime 1700000000
"""


def test_reading_from_snapshot():
    r = reading_from_snapshot(Snapshot(BTIME + 5, INTERRUPTS.encode(), STAT), None)
    assert r.boot_id == "btime:1700000000" and r.btime == BTIME
    rows = {row.label: (row.cpus, row.counts, row.bits) for row in r.rows}
    assert rows == {
        "0": ((0, 1), (40, 0), 32),
        "24": ((0, 1), (100, 200), 32),
        "jiffies:irq": ((0, 1), (3, 4), 64),
        "jiffies:softirq": ((0, 1), (4, 5), 64),
    }
    assert [(m.irq, m.name, m.chip) for m in r.meta] == [(0, "timer", "IO-APIC"),
                                                          (24, "eth0", "PCI-MSI")]


def test_recorder_records_passes(tmp_path: Path):
    (tmp_path / "proc/sys/kernel/random").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/random/boot_id").write_text("1234-abcd\n")
    path = str(tmp_path / "h.sqlite")
    rec = HistoryRecorder(SysRoot(tmp_path), HistoryConfig(path=path, resolution_s=60))
    rec.start()
    rec.on_pass(PassReport(0, False, snapshot=Snapshot(BTIME + 60, INTERRUPTS.encode(), STAT)))
    assert rec.flush()
    later = INTERRUPTS.replace("100        200", "150        200")
    # not due
    rec.on_pass(PassReport(1, False, snapshot=Snapshot(BTIME + 70, later.encode(), STAT)))
    assert rec.flush()
    rec.on_pass(PassReport(2, False, snapshot=Snapshot(BTIME + 125, later.encode(), STAT)))
    rec.stop()
    assert rec.error is None and rec.recorded == 2
    with HistoryStore(path) as s:
        assert [b.boot_id for b in s.boots()] == ["1234-abcd"]
        assert s.summary(BTIME + 61, BTIME + 200).per_cpu == {0: 50}
        assert s.summary(0, BTIME + 200).softirq_jiffies == {0: 4, 1: 5}


_WRITER = textwrap.dedent("""
    import sys, time
    from pyirqbalance.history import HistoryStore, Reading, SeriesRow
    store = HistoryStore(sys.argv[1])
    cpus = tuple(range(64))
    k = 0
    while True:
        rows = tuple(SeriesRow(str(i), cpus, tuple(k * (i + c) for c in cpus)) for i in range(64))
        store.record(Reading(1.7e9 + k, "b", 1.7e9, rows))
        k += 1
        if k == 3:
            print("ready", flush=True)
""")


def test_kill_9_while_writing_leaves_a_readable_store(tmp_path: Path):
    path = str(tmp_path / "h.sqlite")
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, path], stdout=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(0.3)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with HistoryStore(path) as s:
        assert s.integrity_check() == "ok"
        summary = s.summary(0, 2e9)
        n = summary.samples
        assert n >= 3
        # Every committed sample is whole: the sums are the last committed counters.
        last = n - 1
        assert summary.per_cpu[5] == sum(last * (i + 5) for i in range(64))
    # And the file is still a plain SQLite database for other tools.
    assert sqlite3.connect(path).execute("PRAGMA quick_check").fetchone() == ("ok",)
