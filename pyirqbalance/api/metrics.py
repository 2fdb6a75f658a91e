"""Prometheus metrics, every name prefixed ``pyirqbalance_``, on a private registry.

``on_pass`` is cheap (a few counter increments and keeping the pass's
snapshot); per-CPU and per-IRQ figures are computed from the last two
snapshots when Prometheus scrapes, on the API's thread, never on the
balancing loop. Per-IRQ series carry ``irq``, ``name``, ``class`` and
``node`` labels and are capped at ``per_irq_limit`` (busiest IRQs first; 0
turns them off) so a 2048-IRQ machine does not flood the TSDB.
"""

from __future__ import annotations

import errno as errno_names
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .. import __version__
from ..engine.activate import ERRNO_POLICY
from ..engine.model import PassReport, Snapshot
from ..history.deltas import counter_delta
from ..kernel.procinterrupts import InterruptRow, Interrupts, ParseError, parse_interrupts
from ..kernel.procstat import ParseError as StatParseError
from ..kernel.procstat import Stat, parse_stat

__all__ = ["CONTENT_TYPE", "DEFAULT_PER_IRQ_LIMIT", "PREFIX", "Metrics"]

PREFIX = "pyirqbalance_"
DEFAULT_PER_IRQ_LIMIT = 256
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The daemon's metrics; ``on_pass`` is a per-pass listener, ``render`` the scrape."""

    def __init__(self, balancer: Any = None, *, per_irq_limit: int = DEFAULT_PER_IRQ_LIMIT,
                 hz: int = 100) -> None:
        self.balancer = balancer
        self.per_irq_limit = per_irq_limit
        self.hz = hz
        self.registry = CollectorRegistry()
        r = self.registry
        self.passes = Counter(PREFIX + "passes", "Balancing passes run", registry=r)
        self.rescans = Counter(PREFIX + "rescans", "Passes that rebuilt the topology", registry=r)
        self.moves = Counter(PREFIX + "irq_moves", "smp_affinity writes the kernel accepted",
                             registry=r)
        self.moves_last = Gauge(PREFIX + "irq_moves_last_pass", "IRQs moved by the last pass",
                                registry=r)
        self.write_errors = Counter(PREFIX + "affinity_write_errors",
                                    "smp_affinity writes the kernel refused", ["errno"], registry=r)
        for err in ERRNO_POLICY:  # the refusals the kernel is known for start at 0
            self.write_errors.labels(errno_names.errorcode[err])
        self.duration = Histogram(PREFIX + "pass_duration_seconds", "Duration of a balancing pass",
                                  buckets=_DURATION_BUCKETS, registry=r)
        self.cpu = Counter(PREFIX + "pass_cpu_seconds", "CPU time spent in balancing passes",
                           registry=r)
        self.last_pass = Gauge(PREFIX + "last_pass_timestamp_seconds",
                               "When the last pass read /proc", registry=r)
        info = Gauge(PREFIX + "info", "pyirqbalance version", ["version"], registry=r)
        info.labels(__version__).set(1)
        self._lock = threading.Lock()
        self._snapshots: list[Snapshot] = []
        self._parsed: dict[int, tuple[Interrupts | None, Stat | None]] = {}
        r.register(_SnapshotCollector(self))

    def on_pass(self, report: PassReport) -> None:
        self.passes.inc()
        if report.rescanned:
            self.rescans.inc()
        self.moves.inc(report.moved)
        self.moves_last.set(report.moved)
        for w in report.writes:
            if w.errno:
                self.write_errors.labels(errno_names.errorcode.get(w.errno, str(w.errno))).inc()
        self.duration.observe(report.duration_s)
        self.cpu.inc(report.cpu_s)
        if report.snapshot is not None:
            self.last_pass.set(report.snapshot.taken_at)
            with self._lock:
                self._snapshots = [*self._snapshots[-1:], report.snapshot]

    def render(self) -> bytes:
        """The text exposition format (what ``/metrics`` serves)."""
        return generate_latest(self.registry)

    def _parse(self, snap: Snapshot) -> tuple[Interrupts | None, Stat | None]:
        key = id(snap)
        if key not in self._parsed:
            try:
                interrupts = parse_interrupts(snap.interrupts.decode("utf-8", "replace"))
            except ParseError:
                interrupts = None
            try:
                stat = parse_stat(snap.stat) if snap.stat else None
            except StatParseError:
                stat = None
            self._parsed = {k: v for k, v in self._parsed.items()
                            if k in {id(s) for s in self._snapshots}}
            self._parsed[key] = (interrupts, stat)
        return self._parsed[key]

    def _labels(self, irq: int, name: str) -> tuple[str, str, str, str]:
        cls, node = "", ""
        b = self.balancer
        if b is not None:
            info = b.irq_info(irq)
            if info is not None:
                cls = info.irq_class.label
                node = str(info.node.number) if info.node is not None else ""
            elif b.is_banned(irq):
                cls = "banned"
        return str(irq), name, cls, node


def _process_families() -> Iterator[Any]:
    """The daemon's own process: memory, CPU, open files and threads (psutil).

    Our own process, so the live /proc whatever sysroot the balancer reads;
    psutil also gives the same figures where /proc/self looks different
    (containers with a private /proc, other kernels' field layouts).
    """
    import psutil  # deferred: metrics only (start-up cost)

    proc = psutil.Process()
    with proc.oneshot():
        figures = (
            ("resident_memory_bytes", "Resident set size of the daemon",
             proc.memory_info().rss),
            ("open_fds", "File descriptors the daemon has open", proc.num_fds()),
            ("threads", "Threads of the daemon (loop, API, history, control socket)",
             proc.num_threads()),
        )
        cpu = proc.cpu_times()
    for name, text, value in figures:
        g = GaugeMetricFamily(PREFIX + name, text)
        g.add_metric([], value)
        yield g
    c = CounterMetricFamily(PREFIX + "process_cpu_seconds", "CPU time of the daemon, user + system")
    c.add_metric([], cpu.user + cpu.system)
    yield c


class _SnapshotCollector(Collector):
    """Per-CPU and per-IRQ figures from the last two pass snapshots, at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Any]:
        m = self.m
        yield from _process_families()
        yield from _balancer_families(m.balancer)
        with m._lock:
            snaps = list(m._snapshots)
            parsed = [m._parse(s) for s in snaps]
        if not snaps:
            return
        interrupts, stat = parsed[-1]
        if interrupts is None:
            return
        prev_i, prev_s = parsed[0] if len(snaps) == 2 else (None, None)
        dt = snaps[-1].taken_at - snaps[0].taken_at if len(snaps) == 2 else 0.0
        rows = _numbered(interrupts)
        yield _cpu_totals(interrupts, rows)
        deltas: dict[int, int] = {}
        if prev_i is not None and dt > 0:
            deltas, rate = _cpu_rates(interrupts, prev_i, rows, dt)
            yield rate
        if stat is not None:
            yield from _stat_families(stat, prev_s if dt > 0 else None, m.hz, dt)
            if prev_s is not None and dt > 0:
                yield from _share_families(m, stat, prev_s, dt)
        yield from _irq_families(m, rows, deltas)


def _numbered(interrupts: Interrupts) -> list[tuple[int, InterruptRow]]:
    """The numbered rows with their IRQ number, in file order."""
    return [(r.irq, r) for r in interrupts.rows if r.irq is not None]


def _cpu_totals(interrupts: Interrupts,
                rows: list[tuple[int, InterruptRow]]) -> CounterMetricFamily:
    per_cpu = dict.fromkeys(interrupts.cpus, 0)
    for _, r in rows:
        for cpu, n in zip(interrupts.cpus, r.counts):
            per_cpu[cpu] += n
    total = CounterMetricFamily(PREFIX + "cpu_interrupts",
                                "Interrupts of numbered IRQs per CPU", labels=["cpu"])
    for cpu, n in per_cpu.items():
        total.add_metric([str(cpu)], n)
    return total


def _cpu_rates(interrupts: Interrupts, prev: Interrupts, rows: list[tuple[int, InterruptRow]],
               dt: float) -> tuple[dict[int, int], GaugeMetricFamily]:
    """Interrupts of each IRQ since the previous snapshot, and the per-CPU rate family."""
    before = {irq: dict(zip(prev.cpus, r.counts)) for irq, r in _numbered(prev)}
    rate = GaugeMetricFamily(PREFIX + "cpu_interrupts_per_second",
                             "Interrupts per second per CPU over the last pass interval",
                             labels=["cpu"])
    cpu_d = dict.fromkeys(interrupts.cpus, 0)
    deltas: dict[int, int] = {}
    for irq, r in rows:
        old = before.get(irq, {})
        irq_d = 0
        for cpu, n in zip(interrupts.cpus, r.counts):
            d = counter_delta(old[cpu], n)[0] if cpu in old else 0
            cpu_d[cpu] += d
            irq_d += d
        deltas[irq] = irq_d
    for cpu, d in cpu_d.items():
        rate.add_metric([str(cpu)], d / dt)
    return deltas, rate


def _stat_families(stat: Stat, prev: Stat | None, hz: int, dt: float) -> Iterator[Any]:
    """irq and softirq seconds per CPU, and their share of the last interval."""
    prev_by = prev.by_cpu() if prev is not None else None
    for field in ("irq", "softirq"):
        c = CounterMetricFamily(PREFIX + f"cpu_{field}_seconds",
                                f"Time spent in {field} context per CPU (/proc/stat)",
                                labels=["cpu"])
        for t in stat.cpus:
            c.add_metric([str(t.cpu)], getattr(t, field) / hz)
        yield c
        if prev_by is None:
            continue
        g = GaugeMetricFamily(PREFIX + f"cpu_{field}_ratio",
                              f"Share of time in {field} context over the last pass interval",
                              labels=["cpu"])
        for t in stat.cpus:
            old = prev_by.get(t.cpu)
            if old is not None:
                spent = max(0, getattr(t, field) - getattr(old, field))
                g.add_metric([str(t.cpu)], spent / hz / dt)
        yield g


def _usable_cpus(balancer: Any) -> int | None:
    """The CPUs IRQs may use (online, not banned); None without a balancer."""
    if balancer is None or getattr(balancer, "topo", None) is None:
        return None
    return int(balancer.online_cpus & ~balancer.banned_cpus)


def _share_families(m: Metrics, stat: Stat, prev: Stat, dt: float) -> Iterator[Any]:
    """How unbalanced the host is now: the busiest usable CPU's interrupt time
    (irq + softirq) as a share of the last pass interval, the mean over the usable
    CPUs, their ratio, and the placement's floor where it computed one."""
    usable = _usable_cpus(m.balancer)
    before = prev.by_cpu()
    shares: dict[int, float] = {}
    for t in stat.cpus:
        old = before.get(t.cpu)
        if old is None or (usable is not None and not usable >> t.cpu & 1):
            continue
        shares[t.cpu] = max(0, t.irq_softirq - old.irq_softirq) / m.hz / dt
    if not shares:
        return
    busiest_cpu = max(shares, key=lambda c: (shares[c], -c))
    busiest, mean = shares[busiest_cpu], sum(shares.values()) / len(shares)
    figures = [
        ("busiest_cpu_interrupt_time_ratio",
         "Share of the last pass interval the busiest usable CPU spent in irq + softirq",
         busiest),
        ("busiest_cpu", "The usable CPU with the most irq + softirq time over the last pass "
                        "interval", busiest_cpu),
        ("mean_cpu_interrupt_time_ratio",
         "Mean share of the last pass interval the usable CPUs spent in irq + softirq", mean),
        ("usable_cpus", "CPUs IRQs may be placed on (online, not banned)", len(shares)),
    ]
    if mean > 0:
        figures.append(("interrupt_time_imbalance_ratio",
                        "Busiest usable CPU's interrupt time over the mean (1: even)",
                        busiest / mean))
    plan = getattr(m.balancer, "placement_plan", None)
    floor, window = getattr(plan, "floor", None), getattr(plan, "window_s", None)
    if floor is not None and window:
        figures.append(("interrupt_time_floor_ratio",
                        "The lowest busiest-CPU interrupt time share any placement could reach "
                        "(--placement=balanced's last plan)", floor / 1e9 / window))
    for name, text, value in figures:
        g = GaugeMetricFamily(PREFIX + name, text)
        g.add_metric([], value)
        yield g


def _balancer_families(balancer: Any) -> Iterator[Any]:
    """Foreign smp_affinity writes (engine/foreign.py) and the originals kept for --restore."""
    if balancer is None:
        return
    originals = GaugeMetricFamily(
        PREFIX + "originals_recorded",
        "IRQs whose smp_affinity before pyirqbalance first changed it is recorded")
    originals.add_metric([], len(balancer.original_affinities()))
    yield originals
    foreign = getattr(balancer, "foreign", None)
    enabled = GaugeMetricFamily(PREFIX + "foreign_writes_enabled",
                                "1 while smp_affinity changes by others are looked for")
    enabled.add_metric([], 0 if foreign is None else 1)
    yield enabled
    if foreign is None:
        return
    view = foreign.view
    total = CounterMetricFamily(PREFIX + "foreign_writes",
                                "smp_affinity changes of balanced IRQs pyirqbalance did not make")
    total.add_metric([], sum(f.changes for f in view))
    yield total
    writes = CounterMetricFamily(PREFIX + "irq_foreign_writes",
                                 "smp_affinity changes of this IRQ pyirqbalance did not make",
                                 labels=["irq", "name"])
    for f in view:
        writes.add_metric([str(f.irq), f.name], f.changes)
    yield writes
    alone = GaugeMetricFamily(PREFIX + "irqs_left_alone",
                              "IRQs no longer balanced because something else keeps changing them")
    alone.add_metric([], len(foreign.left_alone))
    yield alone


def _irq_families(m: Metrics, rows: list[tuple[int, InterruptRow]],
                  deltas: dict[int, int]) -> Iterator[Any]:
    """Per-IRQ totals of the busiest ``per_irq_limit`` IRQs, and how many were left out."""
    if m.per_irq_limit > 0:
        busiest = sorted(rows, key=lambda ir: (-deltas.get(ir[0], 0), -ir[1].total, ir[0]))
        kept = busiest[:m.per_irq_limit]
        c = CounterMetricFamily(PREFIX + "irq_interrupts", "Interrupts per IRQ since boot",
                                labels=["irq", "name", "class", "node"])
        for irq, r in sorted(kept, key=lambda ir: ir[0]):
            c.add_metric(m._labels(irq, r.actions), r.total)
        yield c
    dropped = GaugeMetricFamily(PREFIX + "irq_series_dropped",
                                "IRQs left out of the per-IRQ series by the cardinality cap")
    dropped.add_metric([], max(0, len(rows) - max(m.per_irq_limit, 0)))
    yield dropped
