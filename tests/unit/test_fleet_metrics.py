"""The fleet metrics: interrupt time shares of the usable CPUs, the daemon's condition.

Shares are worked by hand from two /proc/stat texts 10 s apart at USER_HZ 100: a CPU
whose irq + softirq grew by 500 jiffies spent 5 s of 10 in interrupt context (0.5).
"""

from __future__ import annotations

import time
from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families

from pyirqbalance.api.health import StatusCollector
from pyirqbalance.api.metrics import Metrics
from pyirqbalance.engine.model import PassReport, Snapshot
from pyirqbalance.supervise import StatusBoard, ThreadHealth

INTERRUPTS = (b"           CPU0       CPU1       CPU2       CPU3\n"
              b"  1:  1  2  3  4  IO-APIC  1-edge  i8042\n")
#             user nice system idle iowait irq softirq
STAT_0 = ("cpu  0 0 0 0 0 0 0 0 0 0\n"
          "cpu0 100 0 100 1000 0 100 100 0 0 0\n"
          "cpu1 100 0 100 1000 0 100 100 0 0 0\n"
          "cpu2 100 0 100 1000 0 100 100 0 0 0\n"
          "cpu3 100 0 100 1000 0 100 100 0 0 0\n")
# +10 s: cpu0 +300 irq +200 softirq (0.5), cpu1 +100 (0.1), cpu2 +900 (banned: not counted),
# cpu3 +0 (0.0)
STAT_1 = ("cpu  0 0 0 0 0 0 0 0 0 0\n"
          "cpu0 100 0 100 1000 0 400 300 0 0 0\n"
          "cpu1 100 0 100 1000 0 150 150 0 0 0\n"
          "cpu2 100 0 100 1000 0 600 500 0 0 0\n"
          "cpu3 100 0 100 1000 0 100 100 0 0 0\n")


class FakeBalancer(SimpleNamespace):
    def irq_info(self, irq):
        return None

    def is_banned(self, irq):
        return False

    def original_affinities(self):
        return {45: 0x1, 46: 0x2}


def _balancer(**kw) -> FakeBalancer:
    fields = {"topo": object(), "online_cpus": 0b1111, "banned_cpus": 0b0100,
              "placement_plan": None, "foreign": None, **kw}
    return FakeBalancer(**fields)


def _values(metrics: Metrics) -> dict[str, float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            if not s.labels:
                out[s.name] = s.value
    return out


def _passes(m: Metrics) -> None:
    for t, stat in ((1000.0, STAT_0), (1010.0, STAT_1)):
        m.on_pass(PassReport(cycle=1, rescanned=False,
                             snapshot=Snapshot(t, INTERRUPTS, stat)))


def test_busiest_mean_and_imbalance_of_the_usable_cpus():
    m = Metrics(_balancer(), hz=100)
    _passes(m)
    v = _values(m)
    assert v["pyirqbalance_busiest_cpu_interrupt_time_ratio"] == 0.5
    assert v["pyirqbalance_busiest_cpu"] == 0
    assert v["pyirqbalance_usable_cpus"] == 3
    assert abs(v["pyirqbalance_mean_cpu_interrupt_time_ratio"] - 0.2) < 1e-12  # (.5+.1+0)/3
    assert abs(v["pyirqbalance_interrupt_time_imbalance_ratio"] - 2.5) < 1e-12
    assert "pyirqbalance_interrupt_time_floor_ratio" not in v  # irqbalance's placement


def test_floor_where_the_balanced_plan_computed_one():
    # the plan's floor: 2 s of interrupt time (ns) over a 10 s window
    plan = SimpleNamespace(floor=2e9, window_s=10.0)
    m = Metrics(_balancer(placement_plan=plan), hz=100)
    _passes(m)
    assert _values(m)["pyirqbalance_interrupt_time_floor_ratio"] == 0.2


def test_one_pass_is_no_interval_yet():
    m = Metrics(_balancer(), hz=100)
    m.on_pass(PassReport(cycle=0, rescanned=False, snapshot=Snapshot(1000.0, INTERRUPTS,
                                                                         STAT_0)))
    assert "pyirqbalance_busiest_cpu_interrupt_time_ratio" not in _values(m)


def test_refused_writes_start_at_zero_and_originals_are_counted():
    m = Metrics(_balancer())
    text = m.render().decode()
    for errno_name in ("EIO", "EPERM", "ENOSPC", "EINVAL", "EBUSY"):
        assert f'pyirqbalance_affinity_write_errors_total{{errno="{errno_name}"}} 0.0' in text
    assert "pyirqbalance_originals_recorded 2.0" in text
    assert "pyirqbalance_foreign_writes_enabled 0.0" in text


def test_daemon_condition_metrics():
    board = StatusBoard()
    api, history = ThreadHealth("api"), ThreadHealth("history")
    api.set("running")
    history.set("disabled", "failed 4 times")
    board.threads += [api, history]
    board.interval = 10
    board.last_pass = time.monotonic() - 25
    board.reloads, board.reload_failures, board.last_reload_ok = 3, 1, False
    m = Metrics()
    m.registry.register(StatusCollector(board, history_enabled=lambda: False))
    text = m.render().decode()
    assert 'pyirqbalance_thread_state{state="disabled",thread="history"} 1.0' in text
    assert 'pyirqbalance_thread_state{state="running",thread="history"} 0.0' in text
    assert 'pyirqbalance_thread_state{state="running",thread="api"} 1.0' in text
    v = _values(m)
    assert v["pyirqbalance_last_pass_age_seconds"] >= 25
    assert v["pyirqbalance_pass_interval_seconds"] == 10
    assert v["pyirqbalance_config_reloads_total"] == 3
    assert v["pyirqbalance_config_reload_failures_total"] == 1
    assert v["pyirqbalance_config_last_reload_successful"] == 0
    assert v["pyirqbalance_history_enabled"] == 0


def test_no_history_configured_no_history_series():
    m = Metrics()
    m.registry.register(StatusCollector(StatusBoard()))
    text = m.render().decode()
    assert "pyirqbalance_history_enabled" not in text
    assert "pyirqbalance_last_pass_age_seconds" not in text  # no pass yet
