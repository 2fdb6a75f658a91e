"""The Grafana dashboard: generated with grafana-foundation-sdk, committed as JSON."""

from __future__ import annotations

import json
import sys

import pytest

from .conftest import MONITORING

DASHBOARD = MONITORING / "grafana" / "pyirqbalance.json"

sys.path.insert(0, str(MONITORING))
import generate  # noqa: E402  (monitoring/generate.py is a script, not a package)


def test_committed_dashboard_is_what_the_sdk_generates():
    pytest.importorskip("grafana_foundation_sdk", reason="the test extra installs it")
    assert DASHBOARD.read_text() == generate.outputs()["grafana/pyirqbalance.json"], (
        "run monitoring/generate.py")


def test_fleet_and_host_rows():
    board = json.loads(DASHBOARD.read_text())
    rows: dict[str, list[dict]] = {}
    current = None
    for panel in board["panels"]:
        if panel["type"] == "row":
            current = panel["title"]
            rows[current] = []
        else:
            rows[current].append(panel)
    fleet, host = rows["Fleet"], rows["Host $instance"]
    assert {p["type"] for p in fleet} >= {"table", "timeseries"}
    assert any(p["type"] == "heatmap" for p in host)
    exprs = " ".join(t["expr"] for p in host for t in p["targets"])
    for metric in ("pyirqbalance_cpu_irq_seconds_total", "pyirqbalance_irq_moves_last_pass",
                   "pyirqbalance_pass_duration_seconds_bucket"):
        assert metric in exprs
    fleet_exprs = " ".join(t["expr"] for p in fleet for t in p["targets"])
    for metric in ("imbalance", "foreign_writes", "affinity_write_errors"):
        assert metric in fleet_exprs
