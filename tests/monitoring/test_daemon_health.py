"""The daemon's condition in /metrics and /api/v1/health: reloads, IRQs left alone, originals.

A live daemon on a fake machine (the hostile tier's LiveDaemon): a reload with a broken
file is counted as failed and keeps the configuration; a good one succeeds and hands
back an IRQ left alone after a foreign write.
"""

from __future__ import annotations

import signal

from tests.hostile.conftest import LiveDaemon, wait_for

from .conftest import FOREIGN_IRQ

CONFIG = "foreign_writes:\n  max_changes: 1\n"


def test_reloads_and_left_alone_irqs_in_metrics_and_health(tmp_path):
    d = LiveDaemon(tmp_path / "d", config=CONFIG)
    try:
        d.start()
        d.assert_balancing(1)
        assert (d.metric("pyirqbalance_originals_recorded") or 0) > 0
        assert d.metric("pyirqbalance_config_last_reload_successful") == 1
        good = d.config.read_text()

        # something else moves the NIC queue: with max_changes 1 it is left alone at once
        path = d.root.irq_file(FOREIGN_IRQ, "smp_affinity")
        for _ in range(10):
            with d.kernel.lock:
                current = int((d.root.try_read_text(path) or "1").strip(), 16)
                with open(path, "w") as f:
                    f.write("1\n" if current != 1 else "2\n")
            if wait_for(lambda: d.metric("pyirqbalance_irqs_left_alone") == 1, 5):
                break
        assert d.metric("pyirqbalance_irqs_left_alone") == 1, d.log()[-3000:]
        health = d.health()
        assert health["foreign_writes"]["left_alone"] == [FOREIGN_IRQ]
        assert health["status"] == "degraded"
        assert d.metric("pyirqbalance_condition", 'condition="irqs_left_alone"') == 1

        d.config.write_text(good + "balancing:\n  intervall: 3\n")
        d.signal(signal.SIGHUP)
        assert wait_for(lambda: d.metric("pyirqbalance_config_reload_failures_total") == 1)
        assert d.metric("pyirqbalance_config_last_reload_successful") == 0
        assert d.health()["foreign_writes"]["left_alone"] == [FOREIGN_IRQ]  # kept

        d.config.write_text(good)
        d.signal(signal.SIGHUP)
        assert wait_for(lambda: d.metric("pyirqbalance_config_last_reload_successful") == 1)
        assert d.metric("pyirqbalance_config_reloads_total") == 2
        assert d.metric("pyirqbalance_config_reload_failures_total") == 1
        assert wait_for(lambda: d.metric("pyirqbalance_irqs_left_alone") == 0)
        health = d.health()
        assert health["foreign_writes"]["left_alone"] == []
        assert health["foreign_writes"]["irqs"][str(FOREIGN_IRQ)]["changes"] >= 1
        d.assert_balancing(2)
        d.assert_clean_log()
    finally:
        d.stop()
