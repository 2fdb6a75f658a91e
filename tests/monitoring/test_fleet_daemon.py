"""The mixin against a real daemon: a hot spot and a foreign writer make the alerts fire.

The daemon (tests/monitoring/conftest.py) runs on a fake machine with CPU 0 spending
90 % of its time in irq context and a NIC queue's smp_affinity changed behind its
back. Its own /metrics scrapes, one per pass, become promtool ``input_series`` (one
scrape a minute, then the last scrape held), and ``promtool test rules`` checks that
the hot-spot and balancer-fight alerts fire -- and that the hot spot waits its 10
minutes. Every metric the rules and the dashboard use must be one the daemon exports.
"""

from __future__ import annotations

import json
import re
import subprocess

import yaml

from .conftest import FOREIGN_IRQ, FOREIGN_WRITES, MONITORING, promtool
from .series import input_series, samples

ALERTS = MONITORING / "prometheus" / "pyirqbalance-alerts.yaml"
RULES = MONITORING / "prometheus" / "pyirqbalance-rules.yaml"
DASHBOARD = MONITORING / "grafana" / "pyirqbalance.json"
TARGET = 'instance="fake:9199", job="pyirqbalance"'
HOLD = 20  # minutes the last scrape is held


def _firing(alert: str, severity: str, at: int, fires: bool) -> dict:
    labels = (f'ALERTS{{alertname="{alert}", alertstate="firing", {TARGET}, '
              f'severity="{severity}"}}')
    return {"expr": f'ALERTS{{alertname="{alert}", alertstate="firing"}}',
            "eval_time": f"{at}m",
            "exp_samples": [{"labels": labels, "value": 1}] if fires else []}


def test_hot_spot_and_fight_alerts_fire_on_the_daemons_own_series(fleet_daemon, tmp_path):
    scrapes = fleet_daemon.scrapes
    counts = [samples(s).get("pyirqbalance_foreign_writes_total{}", 0.0) for s in scrapes]
    assert counts[-1] >= FOREIGN_WRITES
    last_change = max(i for i in range(1, len(counts)) if counts[i] != counts[i - 1])
    busiest = [samples(s).get("pyirqbalance_busiest_cpu_interrupt_time_ratio{}")
               for s in scrapes]
    assert busiest[-1] is not None and busiest[-1] > 0.5, busiest
    end = len(scrapes) - 1 + HOLD
    test = {
        "rule_files": [str(ALERTS), str(RULES)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": input_series(scrapes, TARGET, HOLD),
            "promql_expr_test": [
                _firing("PyirqbalanceBalancerFight", "warning", last_change + 1, True),
                _firing("PyirqbalanceInterruptHotSpot", "warning", end, True),
                # busy for less than 10 minutes yet: pending, not firing
                _firing("PyirqbalanceInterruptHotSpot", "warning", 5, False),
                _firing("PyirqbalanceIrqsLeftAlone", "info", end, True),
                _firing("PyirqbalanceStuck", "critical", end, False),
            ],
        }],
    }
    path = tmp_path / "fleet_test.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    out = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_foreign_writes_show_in_health(fleet_daemon):
    foreign = fleet_daemon.health()["foreign_writes"]
    assert foreign["enabled"] is True
    irq = foreign["irqs"][str(FOREIGN_IRQ)]
    assert irq["changes"] >= FOREIGN_WRITES and irq["left_alone"] is True
    assert foreign["left_alone"] == [FOREIGN_IRQ]
    assert f"IRQ {FOREIGN_IRQ} left alone" in " ".join(fleet_daemon.health()["problems"])
    log = fleet_daemon.log()
    assert log.count(f"IRQ {FOREIGN_IRQ} (") >= 2  # the first change, and leaving it alone
    assert "leaving it alone" in log
    fleet_daemon.assert_clean_log()


def test_the_scrape_is_promtool_clean(fleet_daemon):
    out = subprocess.run([promtool(), "check", "metrics"], input=fleet_daemon.scrapes[-1],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stdout.strip() and not out.stderr.strip(), (
        out.stdout + out.stderr)


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def _used(expr: str) -> set[str]:
    """Metric names in a PromQL expression (label names and functions filtered out below)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)        # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)                    # matchers
    return {n for n in _NAME.findall(expr) if n.startswith("pyirqbalance_") or ":" in n}


def test_every_metric_the_rules_and_dashboard_use_is_exported(fleet_daemon):
    exported = {key.partition("{")[0] for s in fleet_daemon.scrapes for key in samples(s)}
    groups = [g for f in (ALERTS, RULES) for g in yaml.safe_load(f.read_text())["groups"]]
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    exprs = [r["expr"] for g in groups for r in g["rules"]]
    board = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    used = set().union(*(_used(e) for e in exprs))
    assert {n for n in used if ":" in n} <= recorded
    missing = {n for n in used if ":" not in n} - exported
    assert not missing, f"used by the mixin, not exported by the daemon: {sorted(missing)}"
    # the check sees what it should: a name the daemon does not export is caught
    assert "pyirqbalance_no_such_metric" in _used("rate(pyirqbalance_no_such_metric[5m])")


def _exported_names(scrape: str) -> set[str]:
    """Metric names as documented: counters with _total, histograms by their base name."""
    names = set()
    for key in samples(scrape):
        name = key.partition("{")[0]
        if name.endswith("_created"):
            continue  # prometheus-client's creation timestamps of counters and histograms
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name.removesuffix(suffix) + "_bucket" in scrape:
                name = name.removesuffix(suffix)
        names.add(name)
    return names


def test_docs_list_every_metric_the_daemon_exports(fleet_daemon):
    text = (MONITORING.parent / "docs" / "monitoring.md").read_text()
    section = text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(pyirqbalance_[a-z0-9_]+)`", section, re.M))
    exported = set().union(*(_exported_names(s) for s in fleet_daemon.scrapes))
    assert sorted(exported - documented) == [], "exported, not in docs/monitoring.md"
    assert sorted(documented - exported) == [], "in docs/monitoring.md, not exported"
