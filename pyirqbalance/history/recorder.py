"""Feeds the history store from the balancer's passes, off the balancing loop.

``on_pass`` only hands the pass's :class:`~pyirqbalance.engine.model.Snapshot` to a
writer thread (the latest one wins: deltas are taken against the last
*recorded* reading, so skipping passes loses nothing). The writer records a
reading when ``resolution_s`` has passed, and reads /proc itself when no pass
came for that long (``--interval`` longer than the resolution). A store
another process keeps locked is waited for at most :data:`RECORD_BUSY_TIMEOUT`
seconds, then that reading is skipped (the next one covers it) and the
store tried again every :data:`BUSY_RETRY` seconds, with one warning and the
thread's health saying ``waiting`` meanwhile; history is never disabled for
it. Any other store error disables history with one clear log line; the
balancer never sees it.
Any other failure of the writer is logged and the writer restarted
(:func:`~pyirqbalance.supervise.supervise`); after three in a row history
is disabled with the reason, shown by ``/api/v1/health``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

from ..engine.model import PassReport, Snapshot
from ..kernel.cpumask import format_cpulist
from ..kernel.procinterrupts import ParseError as InterruptsParseError
from ..kernel.procinterrupts import parse_interrupts
from ..kernel.procirq import read_smp_affinity
from ..kernel.procstat import ParseError as StatParseError
from ..kernel.procstat import parse_stat
from ..kernel.sysfs import parse_strict_cpulist
from ..kernel.sysroot import KernelReadError, SysRoot
from ..supervise import ThreadHealth, supervise
from .records import (
    JIFFIES_IRQ,
    JIFFIES_SOFTIRQ,
    HistoryBusy,
    HistoryConfig,
    HistoryError,
    IrqMeta,
    Reading,
    SeriesRow,
)
from .store import DAY, HistoryStore

__all__ = ["HistoryRecorder", "boot_identity", "read_boot_id", "reading_from_snapshot"]

#: A pass this much earlier than the resolution still counts as due (timer jitter).
_JITTER = 0.9
#: Shortest wait before the writer reads /proc itself for lack of passes.
_MIN_IDLE_READ = 1.0
#: Seconds the writer waits for a lock another process holds on the store.
RECORD_BUSY_TIMEOUT = 2.0
#: Seconds between tries while another process holds the store's lock.
BUSY_RETRY = 5.0


def read_boot_id(root: SysRoot) -> str | None:
    """/proc/sys/kernel/random/boot_id: a new random UUID at every boot."""
    line = root.read_first_line(root.proc("sys", "kernel", "random", "boot_id"))
    return line.strip() or None if line is not None else None


def boot_identity(boot_id: str | None, btime: float | None) -> str:
    """The boot id, or the boot time standing for it (a tree without /proc/sys)."""
    if boot_id is not None:
        return boot_id
    return f"btime:{int(btime)}" if btime is not None else "unknown"


def reading_from_snapshot(snapshot: Snapshot, boot_id: str | None) -> Reading:
    """The store's view of one pass: IRQ rows, jiffies columns, names (affinities unset).

    Without a boot id (a tree without /proc/sys) the boot time stands for the boot.
    Raises ValueError (the parsers' ParseError) on text that is not /proc.
    """
    interrupts = parse_interrupts(snapshot.interrupts.decode("utf-8", "replace"))
    stat = parse_stat(snapshot.stat) if snapshot.stat else None
    btime = float(stat.btime) if stat is not None and stat.btime is not None else None
    rows = [
        SeriesRow(str(r.irq), interrupts.cpus, r.counts)
        for r in interrupts.rows if r.irq is not None
    ]
    if stat is not None:
        cpus = tuple(c.cpu for c in stat.cpus)
        rows.append(SeriesRow(JIFFIES_IRQ, cpus, tuple(c.irq for c in stat.cpus), 64))
        rows.append(SeriesRow(JIFFIES_SOFTIRQ, cpus, tuple(c.softirq for c in stat.cpus), 64))
    meta = tuple(
        IrqMeta(r.irq, r.actions, r.chip, r.hwirq) for r in interrupts.rows if r.irq is not None
    )
    return Reading(snapshot.taken_at, boot_identity(boot_id, btime), btime, tuple(rows), meta)


class HistoryRecorder:
    """A daemon service: ``start``/``stop`` with the daemon, ``on_pass`` per pass."""

    #: What the daemon calls it in a log line.
    label = "the history recorder"

    def __init__(self, root: SysRoot, config: HistoryConfig,
                 log: logging.Logger | None = None, *, read_when_idle: bool = True) -> None:
        self.root = root
        self.config = config
        #: Read /proc when no pass came for ``resolution_s`` (off: passes only).
        self.read_when_idle = read_when_idle
        self.log = log or logging.getLogger("pyirqbalance")
        #: Why history is off (None while it works).
        self.error: str | None = None
        self.recorded = 0
        self._pending: Snapshot | None = None
        #: The writer is handling a snapshot it took.
        self._busy = False
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._last_ts: float | None = None
        self._last_prune = 0.0
        #: The writer thread's state (shown by /api/v1/health and the metrics).
        self.health = ThreadHealth("history writer")
        #: Counters left out because their value was not a count (see Recorded.invalid).
        self.invalid = 0

    @property
    def active(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self.error is None

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(
            target=supervise, args=(self._run, self.health, self.log),
            kwargs={"stopping": lambda: self._stopping, "on_disable": self._disable},
            name="pyirqbalance-history", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Record what is pending, then end the writer thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def on_pass(self, report: PassReport) -> None:
        """Hand the pass's snapshot over; never blocks on the store."""
        if report.snapshot is None or self.error is not None:
            return
        with self._wake:
            self._pending = report.snapshot
            self._wake.notify()

    def flush(self, timeout: float = 10) -> bool:
        """Wait until the pending snapshot is recorded (or skipped as not due)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._wake:
                if self._pending is None and not self._busy:
                    return True
            time.sleep(0.01)
        return False

    # ------------------------------------------------------------------
    # the writer thread
    # ------------------------------------------------------------------

    def _fail(self, err: Exception) -> None:
        self.error = str(err)
        self.health.set("disabled", self.error)
        self.log.error("history disabled: %s (balancing continues)", err)

    def _disable(self, why: str) -> None:
        self.error = f"history writer {why}"
        with self._wake:
            self._pending, self._busy = None, False

    def _locked(self, err: HistoryBusy) -> None:
        """The store is locked by another process: say so once, try again later."""
        if self.health.state != "waiting":
            self.log.warning("history: %s; retrying every %.0f s (balancing continues)",
                             err, BUSY_RETRY)
        self.health.set("waiting", str(err))

    def _usable(self) -> None:
        """A reading was recorded: a wait for the lock or an earlier failure is over."""
        if self.health.state == "waiting":
            self.log.warning("history: the store is usable again")
        if self.health.state == "waiting" or self.health.error is not None:
            self.health.recovered()

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` unless stopping; False once stopping."""
        with self._wake:
            if not self._stopping:
                self._wake.wait(seconds)
            return not self._stopping

    def _run(self) -> None:
        while True:
            try:
                store = HistoryStore.open(self.config, busy_timeout=RECORD_BUSY_TIMEOUT)
                break
            except HistoryBusy as err:
                self._locked(err)
                if not self._pause(BUSY_RETRY):
                    return
            except HistoryError as err:
                self._fail(err)
                return
        try:
            self._loop(store)
        finally:
            self._busy = False
            store.close()

    def _loop(self, store: HistoryStore) -> None:
        while True:
            with self._wake:
                if self._pending is None and not self._stopping:
                    self._wake.wait(max(self.config.resolution_s, _MIN_IDLE_READ))
                snapshot, self._pending = self._pending, None
                self._busy = snapshot is not None
                stopping = self._stopping
            if snapshot is None and not stopping and self.read_when_idle:
                snapshot = self._read_snapshot()
            if snapshot is not None and self._due(snapshot.taken_at, stopping):
                self._record(store, snapshot)
            self._busy = False
            if self.error is not None or stopping:
                return

    def _due(self, ts: float, stopping: bool) -> bool:
        if self._last_ts is None or stopping:
            return True
        return ts - self._last_ts >= self.config.resolution_s * _JITTER

    def _read_snapshot(self) -> Snapshot | None:
        try:
            data = self.root.read_bytes(self.root.proc("interrupts"))
        except KernelReadError:
            return None
        return Snapshot(time.time(), data, self.root.try_read_text(self.root.proc("stat")))

    def _affinities(self, irqs: list[int]) -> dict[int, tuple[str | None, str | None]]:
        out = {}
        for irq in irqs:
            mask = read_smp_affinity(self.root, irq)
            effective = parse_strict_cpulist(self.root.read_first_line(
                self.root.proc("irq", str(irq), "effective_affinity_list")))
            out[irq] = (
                None if mask is None else format_cpulist(mask),
                None if effective is None else format_cpulist(effective),
            )
        return out

    def _invalid(self, count: int, ts: float) -> None:
        level = logging.WARNING if not self.invalid else logging.DEBUG
        self.invalid += count
        self.log.log(level, "history: %d counters at %.0f are not counts (beyond their width) and "
                     "were left out; their next good value covers the gap", count, ts)

    def _record(self, store: HistoryStore, snapshot: Snapshot) -> None:
        try:
            reading = reading_from_snapshot(snapshot, read_boot_id(self.root))
        except (InterruptsParseError, StatParseError) as err:
            self.log.warning("history: pass at %.0f not recorded: %s", snapshot.taken_at, err)
            return
        affinity = self._affinities([m.irq for m in reading.meta])
        reading = replace(reading, meta=tuple(
            replace(m, affinity=affinity[m.irq][0], effective=affinity[m.irq][1])
            for m in reading.meta
        ))
        try:
            recorded = store.record(reading)
            self._usable()
            self._last_ts = snapshot.taken_at
            self.recorded += 1
            if recorded.invalid:
                self._invalid(recorded.invalid, snapshot.taken_at)
            if snapshot.taken_at - self._last_prune > DAY / 24:
                store.prune(snapshot.taken_at)
                self._last_prune = snapshot.taken_at
        except HistoryBusy as err:
            self._locked(err)
            self._pause(BUSY_RETRY)
        except HistoryError as err:
            self._fail(err)
