"""The daemon's own condition as Prometheus metrics (beside ``/api/v1/health``).

* ``pyirqbalance_thread_up{thread}`` -- 1 while a background thread serves,
  0 while it restarts or after it was disabled;
* ``pyirqbalance_thread_restarts_total{thread}`` -- failures it came back from;
* ``pyirqbalance_condition{condition}`` -- 1 while a named problem holds
  (``cpu_mismatch``: sysfs and /proc/interrupts disagree on the CPUs, no
  balancing meanwhile).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..supervise import StatusBoard
from .metrics import PREFIX

__all__ = ["StatusCollector"]


class StatusCollector(Collector):
    """Collects :class:`~pyirqbalance.supervise.StatusBoard` at each scrape."""

    def __init__(self, board: StatusBoard) -> None:
        self.board = board

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
        condition = GaugeMetricFamily(PREFIX + "condition",
                                      "1 while the named problem holds", labels=["condition"])
        for name, check in self.board.flags.items():
            condition.add_metric([name], 0.0 if check() is None else 1.0)
        yield up
        yield restarts
        yield condition
