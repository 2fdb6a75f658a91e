"""The daemon's own condition as Prometheus metrics (beside ``/api/v1/health``).

* ``pyirqbalance_thread_up{thread}`` -- 1 while a background thread serves,
  0 while it restarts or after it was disabled;
* ``pyirqbalance_thread_restarts_total{thread}`` -- failures it came back from;
* ``pyirqbalance_thread_state{thread,state}`` -- 1 for each thread's current
  state (starting, running, restarting, disabled, stopped), 0 for the others;
* ``pyirqbalance_condition{condition}`` -- 1 while a named problem holds
  (``cpu_mismatch``: sysfs and /proc/interrupts disagree on the CPUs, no
  balancing meanwhile);
* ``pyirqbalance_last_pass_age_seconds``, ``pyirqbalance_pass_interval_seconds``
  -- how long ago the last pass ended (monotonic clock) and how often one runs;
* ``pyirqbalance_config_reloads_total``, ``pyirqbalance_config_reload_failures_total``,
  ``pyirqbalance_config_last_reload_successful``;
* ``pyirqbalance_history_enabled`` -- 1 while the configured history store
  records, 0 once it cannot (no series when history is off).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..supervise import StatusBoard
from .metrics import PREFIX

__all__ = ["THREAD_STATES", "StatusCollector"]

#: Every state a supervised thread can be in (supervise.ThreadHealth).
THREAD_STATES = ("starting", "running", "restarting", "disabled", "stopped")


class StatusCollector(Collector):
    """Collects :class:`~pyirqbalance.supervise.StatusBoard` at each scrape."""

    def __init__(self, board: StatusBoard,
                 history_enabled: Callable[[], bool] | None = None) -> None:
        self.board = board
        self.history_enabled = history_enabled

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        up = GaugeMetricFamily(PREFIX + "thread_up",
                               "1 while a background thread serves, 0 when restarting or disabled",
                               labels=["thread"])
        restarts = CounterMetricFamily(PREFIX + "thread_restarts",
                                       "Failures a background thread was restarted after",
                                       labels=["thread"])
        for t in self.board.threads:
            up.add_metric([t.name], 1.0 if t.state in ("starting", "running") else 0.0)
            restarts.add_metric([t.name], float(t.restarts))
        state = GaugeMetricFamily(PREFIX + "thread_state",
                                  "1 for the state a background thread is in, 0 for the others",
                                  labels=["thread", "state"])
        for t in self.board.threads:
            for name in THREAD_STATES:
                state.add_metric([t.name, name], 1.0 if t.state == name else 0.0)
        condition = GaugeMetricFamily(PREFIX + "condition",
                                      "1 while the named problem holds", labels=["condition"])
        for name, check in self.board.flags.items():
            condition.add_metric([name], 0.0 if check() is None else 1.0)
        yield up
        yield restarts
        yield state
        yield condition
        yield from self._daemon()

    def _daemon(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        b = self.board
        age = b.pass_age()
        if age is not None:
            g = GaugeMetricFamily(PREFIX + "last_pass_age_seconds",
                                  "Seconds since the last completed balancing pass ended")
            g.add_metric([], age)
            yield g
        if b.interval is not None:
            g = GaugeMetricFamily(PREFIX + "pass_interval_seconds",
                                  "Seconds between balancing passes")
            g.add_metric([], float(b.interval))
            yield g
        for name, text, value in (
            ("config_reloads", "Configuration reloads (SIGHUP)", b.reloads),
            ("config_reload_failures",
             "Configuration reloads that failed (the running configuration was kept)",
             b.reload_failures),
        ):
            c = CounterMetricFamily(PREFIX + name, text)
            c.add_metric([], float(value))
            yield c
        ok = GaugeMetricFamily(PREFIX + "config_last_reload_successful",
                               "0 after a reload that failed, until one succeeds")
        ok.add_metric([], 1.0 if b.last_reload_ok else 0.0)
        yield ok
        if self.history_enabled is not None:
            g = GaugeMetricFamily(PREFIX + "history_enabled",
                                  "1 while the history store records passes")
            g.add_metric([], 1.0 if self.history_enabled() else 0.0)
            yield g
