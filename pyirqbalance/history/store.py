"""History store: per-IRQ per-CPU interrupt counts over time, in SQLite (WAL).

What is kept, and why it stays small:

* ``samples`` -- one row per recorded reading: boot, interval ``(t0, ts]``,
  whether it is a boot's *baseline* (the counts since boot, first seen),
  and how many counters wrapped or reset in it.
* ``cells`` -- only the counters that moved: ``(sample, cell, delta)`` with
  ``cell = series << 16 | cpu``. An x86 IRQ is delivered to one CPU at a
  time, so a 256-CPU x 2048-IRQ machine changes at most ~2048 of its 524,288
  cells a minute, and far fewer in practice (idle queues do not move).
* ``hour`` / ``day`` -- the same deltas summed per UTC hour and day, so a
  30-day window adds up ~30 day rows per cell plus the edges, not 43,200
  samples.
* ``lastval`` -- the last absolute value of every counter of the current
  boot, so a restarted daemon continues the deltas where it stopped.
* ``series`` / ``irqmeta`` / ``boots`` -- IRQ labels, name/chip/affinity
  changes, boot ids with their boot time. ``overrides`` -- affinities set
  through the API (see :mod:`pyirqbalance.api.overrides`).

Durability: WAL journal and one transaction per reading. A kill -9 at any
point loses at most the reading being written; SQLite's journal makes the
file consistent again at the next open.

Deltas are computed when a reading is recorded (:func:`.deltas.counter_delta`:
32-bit wraps and re-registrations), and a new boot id starts from zero, so a
window query is plain sums and is right across reboots and wraps.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .deltas import Change, counter_delta
from .records import (
    JIFFIES_IRQ,
    JIFFIES_SOFTIRQ,
    Boot,
    HistoryBusy,
    HistoryConfig,
    HistoryError,
    IrqMeta,
    IrqTotal,
    LastReading,
    Reading,
    Recorded,
    WindowSummary,
    iso_time,
)

__all__ = ["CPU_BITS", "DAY", "HOUR", "HistoryStore"]

SCHEMA_VERSION = 1
HOUR, DAY = 3600, 86400
CPU_BITS = 16
_CPU_MASK = (1 << CPU_BITS) - 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS boots (
    boot INTEGER PRIMARY KEY, boot_id TEXT UNIQUE NOT NULL, btime REAL,
    first_ts REAL NOT NULL, last_ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS series (
    series INTEGER PRIMARY KEY, label TEXT UNIQUE NOT NULL, irq INTEGER);
CREATE TABLE IF NOT EXISTS irqmeta (
    series INTEGER NOT NULL, boot INTEGER NOT NULL, ts REAL NOT NULL,
    name TEXT, chip TEXT, hwirq TEXT, affinity TEXT, effective TEXT);
CREATE INDEX IF NOT EXISTS irqmeta_series ON irqmeta (series, ts);
CREATE TABLE IF NOT EXISTS samples (
    sample INTEGER PRIMARY KEY, boot INTEGER NOT NULL, t0 REAL NOT NULL, ts REAL NOT NULL,
    baseline INTEGER NOT NULL, wraps INTEGER NOT NULL, resets INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS samples_ts ON samples (ts);
CREATE TABLE IF NOT EXISTS cells (
    sample INTEGER NOT NULL, cell INTEGER NOT NULL, delta INTEGER NOT NULL,
    PRIMARY KEY (sample, cell)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hour (
    bucket INTEGER NOT NULL, cell INTEGER NOT NULL, delta INTEGER NOT NULL,
    PRIMARY KEY (bucket, cell)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS day (
    bucket INTEGER NOT NULL, cell INTEGER NOT NULL, delta INTEGER NOT NULL,
    PRIMARY KEY (bucket, cell)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lastval (
    cell INTEGER PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS overrides (
    irq INTEGER PRIMARY KEY, mask TEXT NOT NULL, since REAL NOT NULL);
"""


#: Seconds a connection waits for another holder of the store's lock by default.
BUSY_TIMEOUT = 10.0


def _failure(path: str, what: str, err: sqlite3.Error) -> HistoryError:
    """The store's error for ``err``: :class:`HistoryBusy` for a lock held elsewhere."""
    text = str(err)
    if isinstance(err, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return HistoryBusy(f"history store {path}: {what}: locked by another process ({text})")
    return HistoryError(f"history store {path}: {what}: {err}")


@dataclass
class _Diff:
    """One reading against the last values: what to store and how counters moved."""

    deltas: list[tuple[int, int]] = field(default_factory=list)
    changed: list[tuple[int, int]] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    wraps: int = 0
    resets: int = 0
    invalid: int = 0

    def add(self, last: dict[int, int], cell: int, value: int, bits: int) -> None:
        if not 0 <= value < 1 << min(bits, 63):  # SQLite integers are signed 64-bit
            self.invalid += 1
            return
        prev = last.get(cell)
        if prev is None:
            # A new IRQ (or CPU) counts from its registration, after the last reading.
            delta = value
        elif value == prev:
            return
        else:
            delta, how = counter_delta(prev, value, bits)
            self.wraps += how is Change.WRAP
            self.resets += how is Change.RESET
        if value != (prev or 0):
            last[cell] = value
            self.changed.append((cell, value))
        if delta:
            self.deltas.append((cell, delta))


def _rowid(cursor: sqlite3.Cursor) -> int:
    """The rowid an INSERT gave its row."""
    rowid = cursor.lastrowid
    if rowid is None:  # only after a statement that inserted nothing
        raise sqlite3.DatabaseError("INSERT gave no rowid")
    return rowid


_HEX = frozenset("0123456789abcdefABCDEF")
#: Longest override mask kept (8192 CPUs).
_MASK_DIGITS = 2048

#: The store's mode (SQLite gives its -wal and -shm files the same).
DB_MODE = 0o600


def _private(path: str) -> None:
    """Create the database file with :data:`DB_MODE`, or bring an existing one to it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, DB_MODE)
    try:
        os.fchmod(fd, DB_MODE)
    finally:
        os.close(fd)


class HistoryStore:
    """One connection to the store; use it from one thread (open one per thread)."""

    def __init__(self, path: str, *, retention_days: float = 30, create: bool = True,
                 busy_timeout: float = BUSY_TIMEOUT) -> None:
        """``create=False``: a reader's connection (never creates, writes or waits
        to write anything); ``busy_timeout``: seconds to wait for a lock another
        connection holds, then :class:`HistoryBusy`."""
        self.path = path
        self.retention_days = retention_days
        if not create and not os.path.exists(path):
            raise HistoryError(f"history store {path}: no such file (is history enabled?)")
        try:
            if create:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
                _private(path)
            self._db = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout)
        except OSError as err:
            raise HistoryError(f"history store {path}: cannot open: {err}") from err
        except sqlite3.Error as err:
            raise _failure(path, "cannot open", err) from err
        try:
            if create:
                self._wal(busy_timeout)
                # NORMAL in WAL mode: a commit survives a process crash; only a power
                # loss may drop the last transactions, never corrupt the file.
                self._db.execute("PRAGMA synchronous=NORMAL")
                with self._transaction():  # IMMEDIATE: two openers do not both create it
                    version = self._meta_get("schema") if self._has_meta() else None
                    if version is None:
                        for statement in _SCHEMA.split(";"):
                            if statement.strip():
                                self._db.execute(statement)
                        self._meta_set("schema", str(SCHEMA_VERSION))
                        version = str(SCHEMA_VERSION)
            else:
                version = self._meta_get("schema") if self._has_meta() else None
            if version is None:
                raise HistoryError(f"history store {path}: not initialised")
            if version != str(SCHEMA_VERSION):
                raise HistoryError(
                    f"history store {path}: schema version {version}, this pyirqbalance "
                    f"reads version {SCHEMA_VERSION}"
                )
        except sqlite3.DatabaseError as err:
            self._db.close()
            failure = _failure(path, "cannot open", err)
            if isinstance(failure, HistoryBusy):
                raise failure from err
            raise HistoryError(
                f"history store {path}: not a usable SQLite database: {err}") from err
        except HistoryError:
            self._db.close()
            raise
        self._series: dict[str, int] = {}
        self._last: dict[int, int] | None = None
        self._rows: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self._meta: dict[int, tuple] | None = None
        #: Series with counters in ``_last`` (None: not computed yet).
        self._known: set[int] | None = None

    @classmethod
    def open(cls, config: HistoryConfig, *, create: bool = True,
             busy_timeout: float = BUSY_TIMEOUT) -> HistoryStore:
        return cls(config.path, retention_days=config.retention_days, create=create,
                   busy_timeout=busy_timeout)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------
    # small helpers
    # ------------------------------------------------------------------

    def _wal(self, wait: float) -> None:
        """Switch to WAL once; the switch needs a moment alone with the file, and
        SQLite does not wait for that through its busy timeout."""
        deadline = time.monotonic() + wait
        while True:
            try:
                mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
                if mode != "wal":
                    self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _has_meta(self) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        return row is not None

    def _meta_get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _meta_set(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _series_id(self, label: str) -> int:
        sid = self._series.get(label)
        if sid is None:
            row = self._db.execute("SELECT series FROM series WHERE label = ?", (label,)).fetchone()
            if row is None:
                irq = int(label) if label.isdigit() else None
                sid = _rowid(self._db.execute(
                    "INSERT INTO series (label, irq) VALUES (?, ?)", (label, irq)))
            else:
                sid = row[0]
            self._series[label] = sid
        return sid

    def _load_state(self) -> tuple[dict[int, int], dict[int, tuple]]:
        if self._last is None:
            self._last = dict(self._db.execute("SELECT cell, value FROM lastval"))
        if self._meta is None:
            self._meta = {
                r[0]: tuple(r[1:])
                for r in self._db.execute(
                    "SELECT series, name, chip, hwirq, affinity, effective FROM irqmeta "
                    "WHERE rowid IN (SELECT MAX(rowid) FROM irqmeta GROUP BY series)"
                )
            }
        return self._last, self._meta

    # ------------------------------------------------------------------
    # writing
    # ------------------------------------------------------------------

    def record(self, reading: Reading) -> Recorded:
        """Store one reading as deltas against the previous one of the same boot."""
        try:
            with self._transaction():
                return self._record(reading)
        except sqlite3.DatabaseError as err:
            # The in-memory state may be ahead of the rolled-back transaction.
            self._last, self._meta, self._rows, self._known = None, None, {}, None
            raise _failure(self.path, "cannot record", err) from err

    def _record(self, reading: Reading) -> Recorded:
        last, meta = self._load_state()
        boot = self._boot(reading)
        baseline, t0 = self._start_of(reading, last)
        diff = self._diff(reading, last)
        self._forget_vanished(last, diff.seen)
        sample = self._write_sample(reading, boot, t0, baseline, diff)
        self._write_meta(reading, meta, boot)
        self._meta_set("boot_id", reading.boot_id)
        self._meta_set("last_ts", repr(reading.ts))
        return Recorded(sample, baseline, len(diff.deltas), diff.wraps, diff.resets, diff.invalid)

    def _boot(self, reading: Reading) -> int:
        """The row of the reading's boot (created at its first reading), its last_ts moved on."""
        db = self._db
        row = db.execute(
            "SELECT boot FROM boots WHERE boot_id = ?", (reading.boot_id,)
        ).fetchone()
        if row is None:
            return _rowid(db.execute(
                "INSERT INTO boots (boot_id, btime, first_ts, last_ts) VALUES (?, ?, ?, ?)",
                (reading.boot_id, reading.btime, reading.ts, reading.ts),
            ))
        db.execute("UPDATE boots SET last_ts = ? WHERE boot = ?", (reading.ts, row[0]))
        return int(row[0])

    def _start_of(self, reading: Reading, last: dict[int, int]) -> tuple[bool, float]:
        """(is a baseline, start of the interval the reading covers)."""
        previous_ts = self._meta_get("last_ts")
        if self._meta_get("boot_id") == reading.boot_id and previous_ts is not None:
            return False, float(previous_ts)
        # A new boot: every counter restarted at 0, the reading *is* the delta.
        last.clear()
        self._rows.clear()
        self._known = set()
        self._db.execute("DELETE FROM lastval")
        return True, reading.btime if reading.btime is not None else reading.ts

    def _diff(self, reading: Reading, last: dict[int, int]) -> _Diff:
        """Each cell's delta against the last values, which it updates."""
        diff = _Diff()
        for series_row in reading.rows:
            sid = self._series_id(series_row.label)
            diff.seen.add(sid)
            key = (series_row.cpus, series_row.counts)
            if self._rows.get(series_row.label) == key:
                continue  # the whole row is unchanged: nothing to compare cell by cell
            self._rows[series_row.label] = key
            base = sid << CPU_BITS
            for cpu, value in zip(series_row.cpus, series_row.counts):
                diff.add(last, base | cpu, value, series_row.bits)
        return diff

    def _forget_vanished(self, last: dict[int, int], seen: set[int]) -> None:
        """An IRQ that vanished and comes back is a new registration counting from 0."""
        if self._known is None:
            self._known = {cell >> CPU_BITS for cell in last}
        vanished = self._known - seen
        if vanished:
            gone = [cell for cell in last if cell >> CPU_BITS in vanished]
            for cell in gone:
                del last[cell]
            self._db.executemany("DELETE FROM lastval WHERE cell = ?", ((c,) for c in gone))
            self._rows = {k: v for k, v in self._rows.items() if self._series.get(k) in seen}
        self._known = seen

    def _write_sample(self, reading: Reading, boot: int, t0: float, baseline: bool,
                      diff: _Diff) -> int:
        db = self._db
        sample = _rowid(db.execute(
            "INSERT INTO samples (boot, t0, ts, baseline, wraps, resets) VALUES (?, ?, ?, ?, ?, ?)",
            (boot, t0, reading.ts, int(baseline), diff.wraps, diff.resets),
        ))
        db.executemany(
            "INSERT INTO cells (sample, cell, delta) VALUES (?, ?, ?)",
            ((sample, c, d) for c, d in diff.deltas),
        )
        if not baseline:
            # Baselines (counts since boot) are kept out of the rollups: they
            # belong to (btime, ts], not to the hour of ts.
            for table, width in (("hour", HOUR), ("day", DAY)):
                bucket = int(reading.ts // width)
                db.executemany(
                    f"INSERT INTO {table} (bucket, cell, delta) VALUES (?, ?, ?) "
                    "ON CONFLICT (bucket, cell) DO UPDATE SET delta = delta + excluded.delta",
                    ((bucket, c, d) for c, d in diff.deltas),
                )
        db.executemany("INSERT OR REPLACE INTO lastval (cell, value) VALUES (?, ?)", diff.changed)
        return sample

    def _write_meta(self, reading: Reading, meta: dict[int, tuple], boot: int) -> None:
        """A row of IRQ metadata each time an IRQ's name, chip or affinity changes."""
        for m in reading.meta:
            sid = self._series_id(str(m.irq))
            values = (m.name, m.chip, m.hwirq, m.affinity, m.effective)
            if meta.get(sid) != values:
                meta[sid] = values
                self._db.execute(
                    "INSERT INTO irqmeta (series, boot, ts, name, chip, hwirq, affinity, "
                    "effective) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (sid, boot, reading.ts, *values),
                )

    def prune(self, now: float | None = None) -> int:
        """Drop what is older than the retention; returns the number of samples dropped."""
        cutoff = (time.time() if now is None else now) - self.retention_days * DAY
        try:
            with self._transaction():
                db = self._db
                row = db.execute("SELECT MAX(sample) FROM samples WHERE ts < ?",
                                 (cutoff,)).fetchone()
                if row[0] is None:
                    return 0
                dropped = db.execute("DELETE FROM samples WHERE sample <= ?", (row[0],)).rowcount
                db.execute("DELETE FROM cells WHERE sample <= ?", (row[0],))
                db.execute("DELETE FROM hour WHERE bucket < ?", (int(cutoff // HOUR),))
                db.execute("DELETE FROM day WHERE bucket < ?", (int(cutoff // DAY),))
                db.execute(
                    "DELETE FROM boots WHERE last_ts < ? AND boot_id != ?",
                    (cutoff, self._meta_get("boot_id") or ""),
                )
                return dropped
        except sqlite3.DatabaseError as err:
            raise _failure(self.path, "cannot prune", err) from err

    # ------------------------------------------------------------------
    # overrides (affinities pinned through the API)
    # ------------------------------------------------------------------

    def overrides(self) -> dict[int, int]:
        """The pinned IRQs; rows not an IRQ and a hex mask are left out (``bad_overrides``)."""
        out: dict[int, int] = {}
        self.bad_overrides: list[tuple[object, object]] = []
        for irq, mask in self._query("SELECT irq, mask FROM overrides"):
            if (isinstance(irq, int) and 0 <= irq < 1 << 32 and isinstance(mask, str)
                    and 0 < len(mask) <= _MASK_DIGITS and mask.isascii()
                    and all(c in _HEX for c in mask)):
                out[irq] = int(mask, 16)
            else:
                self.bad_overrides.append((irq, mask))
        return out

    def set_override(self, irq: int, mask: int) -> None:
        self._execute(
            "INSERT OR REPLACE INTO overrides (irq, mask, since) VALUES (?, ?, ?)",
            (irq, format(mask, "x"), time.time()),
        )

    def delete_override(self, irq: int) -> None:
        self._execute("DELETE FROM overrides WHERE irq = ?", (irq,))

    # ------------------------------------------------------------------
    # reading
    # ------------------------------------------------------------------

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as err:
            raise _failure(self.path, "cannot read", err) from err

    def _execute(self, sql: str, params: tuple = ()) -> None:
        try:
            self._db.execute(sql, params)
        except sqlite3.DatabaseError as err:
            raise _failure(self.path, "cannot write", err) from err

    def sample_count(self) -> int:
        """Readings recorded (all boots)."""
        return int(self._query("SELECT COUNT(*) FROM samples")[0][0])

    def last_reading(self) -> LastReading | None:
        """The last recorded reading's boot, time and absolute counters (None: nothing yet)."""
        boot_id, ts = self._meta_get("boot_id"), self._meta_get("last_ts")
        if boot_id is None or ts is None:
            return None
        values: dict[str, dict[int, int]] = {}
        for label, cpu, value in self._query(
                f"SELECT s.label, l.cell & {_CPU_MASK}, l.value FROM lastval l "
                f"JOIN series s ON s.series = l.cell >> {CPU_BITS}"):
            values.setdefault(label, {})[cpu] = value
        return LastReading(boot_id, float(ts), values)

    def boots(self) -> tuple[Boot, ...]:
        return tuple(
            Boot(*r) for r in self._query(
                "SELECT boot_id, btime, first_ts, last_ts FROM boots ORDER BY first_ts")
        )

    def current_boot(self) -> Boot | None:
        boot_id = self._query("SELECT value FROM meta WHERE key = 'boot_id'")
        if not boot_id:
            return None
        rows = self._query(
            "SELECT boot_id, btime, first_ts, last_ts FROM boots WHERE boot_id = ?", boot_id[0])
        return Boot(*rows[0]) if rows else None

    def irq_meta(self, irq: int) -> IrqMeta | None:
        """The latest recorded name and affinity of an IRQ."""
        rows = self._query(
            "SELECT name, chip, hwirq, affinity, effective FROM irqmeta JOIN series USING (series) "
            "WHERE label = ? ORDER BY irqmeta.rowid DESC LIMIT 1", (str(irq),))
        return IrqMeta(irq, *rows[0]) if rows else None

    def size_bytes(self) -> int:
        """Bytes on disk: the database and its write-ahead log."""
        return sum(os.path.getsize(p) for p in (self.path, self.path + "-wal") if os.path.exists(p))

    def integrity_check(self) -> str:
        """SQLite's ``integrity_check``: "ok" or the first problems found."""
        return "; ".join(r[0] for r in self._query("PRAGMA integrity_check"))

    def summary(self, start: float, stop: float) -> WindowSummary:
        """Interrupts per CPU and IRQ in ``(start, stop]`` (epoch seconds)."""
        if stop < start:
            raise ValueError("stop is before start")
        q = self._query
        window = q(
            "SELECT sample, boot, t0, ts, baseline FROM samples WHERE baseline = 1 "
            "AND ts > ? AND ts <= ?", (start, stop))
        baselines_in = [r[0] for r in window if r[2] >= start]
        baselines_out = [r for r in window if r[2] < start]
        notes = [
            f"counts between boot and the first sample at {iso_time(r[3])} are excluded: "
            "the window starts after that boot, before its first sample"
            for r in baselines_out
        ]
        skip = tuple(r[0] for r in window)

        # Full UTC hours and days inside the window come from the rollups,
        # the ragged edges from the samples themselves.
        h_lo, h_hi = math.floor(start / HOUR) + 1, math.floor(stop / HOUR)
        parts: list[str] = []
        params: list[Any] = []
        edges: list[tuple[float, float]] = []
        if h_lo < h_hi:
            d_lo, d_hi = -(-h_lo * HOUR // DAY), h_hi * HOUR // DAY
            if d_lo < d_hi:
                parts.append("SELECT cell, delta FROM day WHERE bucket >= ? AND bucket < ?")
                params += [d_lo, d_hi]
                hours = [(h_lo, d_lo * 24), (d_hi * 24, h_hi)]
            else:
                hours = [(h_lo, h_hi)]
            for h0, h1 in hours:
                if h0 < h1:
                    parts.append("SELECT cell, delta FROM hour WHERE bucket >= ? AND bucket < ?")
                    params += [h0, h1]
            edges = [(start, h_lo * HOUR), (h_hi * HOUR, stop)]
        else:
            edges = [(start, stop)]
        for lo, hi in edges:
            # (lo, hi] for the window's start edge, [lo, hi) inside, (.., stop] at its end.
            op_lo = ">" if lo == start else ">="
            op_hi = "<=" if hi == stop else "<"
            span = q("SELECT MIN(sample), MAX(sample) FROM samples "
                     f"WHERE ts {op_lo} ? AND ts {op_hi} ?", (lo, hi))[0]
            if span[0] is not None:
                parts.append(
                    "SELECT cell, delta FROM cells WHERE sample BETWEEN ? AND ? "
                    f"AND sample NOT IN ({','.join('?' * len(skip))})"
                )
                params += [span[0], span[1], *skip]
        if baselines_in:
            marks = ",".join("?" * len(baselines_in))
            parts.append(f"SELECT cell, delta FROM cells WHERE sample IN ({marks})")
            params += baselines_in

        sums = q(
            "SELECT cell, SUM(delta) FROM (" + " UNION ALL ".join(parts) + ") GROUP BY cell",
            tuple(params),
        ) if parts else []
        covered = q(
            "SELECT MIN(t0), MAX(ts), COUNT(*), COALESCE(SUM(wraps), 0), COALESCE(SUM(resets), 0) "
            "FROM samples WHERE ts > ? AND ts <= ? AND (baseline = 0 OR t0 >= ?)",
            (start, stop, start),
        )[0]
        boots = tuple(
            Boot(*r) for r in q(
                "SELECT boot_id, btime, first_ts, last_ts FROM boots WHERE boot IN "
                "(SELECT DISTINCT boot FROM samples WHERE ts > ? AND ts <= ?) ORDER BY first_ts",
                (start, stop))
        )
        return self._assemble(start, stop, sums, covered, boots, tuple(notes))

    def _assemble(self, start: float, stop: float, sums: list[tuple[int, int]], covered: tuple,
                  boots: tuple[Boot, ...], notes: tuple[str, ...]) -> WindowSummary:
        labels = dict(self._query("SELECT series, label FROM series"))
        names = dict(self._query(
            "SELECT series, name FROM irqmeta "
            "WHERE rowid IN (SELECT MAX(rowid) FROM irqmeta GROUP BY series)"))
        per_cpu: dict[int, int] = {}
        per_irq: dict[int, dict[int, int]] = {}
        jiffies: dict[str, dict[int, int]] = {JIFFIES_IRQ: {}, JIFFIES_SOFTIRQ: {}}
        for cell, delta in sums:
            if not delta:
                continue
            sid, cpu = cell >> CPU_BITS, cell & _CPU_MASK
            label = labels.get(sid, "")
            if label in jiffies:
                jiffies[label][cpu] = delta
            elif label.isdigit():
                per_irq.setdefault(sid, {})[cpu] = delta
                per_cpu[cpu] = per_cpu.get(cpu, 0) + delta
        irqs = sorted(
            (IrqTotal(int(labels[sid]), names.get(sid) or "", sum(cpus.values()), cpus)
             for sid, cpus in per_irq.items()),
            key=lambda t: t.irq,
        )
        return WindowSummary(
            start=start, stop=stop, covered_from=covered[0], covered_to=covered[1],
            samples=covered[2], boots=boots, wraps=covered[3], resets=covered[4],
            per_cpu=per_cpu, irqs=tuple(irqs), irq_jiffies=jiffies[JIFFIES_IRQ],
            softirq_jiffies=jiffies[JIFFIES_SOFTIRQ], notes=notes,
        )
