"""The mixin's Prometheus rules: valid, unit-tested alert by alert, and what generate.py writes.

``promtool`` comes from Debian's ``prometheus`` package (``.ci/run`` installs it without
starting the server); the tests skip without it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from .conftest import MONITORING, promtool

ALERTS = MONITORING / "prometheus" / "pyirqbalance-alerts.yaml"
RULES = MONITORING / "prometheus" / "pyirqbalance-rules.yaml"
UNIT_TESTS = MONITORING / "prometheus" / "tests" / "pyirqbalance-alerts_test.yaml"

sys.path.insert(0, str(MONITORING))
import generate  # noqa: E402  (monitoring/generate.py is a script, not a package)


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, input=stdin,
                          timeout=120)


def test_promtool_check_rules():
    out = _run("check", "rules", str(ALERTS), str(RULES))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_promtool_unit_tests_pass():
    out = _run("test", "rules", str(UNIT_TESTS))
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_is_tested_firing_and_not_firing():
    alerts = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"]
              for r in g["rules"]}
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(UNIT_TESTS.read_text())["tests"]:
        for t in case.get("alert_rule_test", []):
            (firing if t.get("exp_alerts") else quiet).add(t["alertname"])
    assert alerts - firing == set()
    assert alerts - quiet == set()


def test_a_changed_threshold_breaks_the_unit_tests(tmp_path):
    """The unit tests pin the default thresholds: rules made with another one fail them."""
    params = generate.DEFAULTS._replace(hot_spot_share=0.85)
    for rel, text in generate.outputs(params, rules_only=True).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    tests = tmp_path / "prometheus" / "tests"
    tests.mkdir()
    (tests / UNIT_TESTS.name).write_text(UNIT_TESTS.read_text())
    out = _run("test", "rules", str(tests / UNIT_TESTS.name))
    assert out.returncode != 0
    assert "PyirqbalanceInterruptHotSpot" in out.stdout + out.stderr


def test_committed_rules_are_what_generate_writes():
    files = generate.outputs(rules_only=True)
    for rel, text in files.items():
        assert (MONITORING / rel).read_text() == text, f"{rel}: run monitoring/generate.py"


def test_generate_set_changes_a_threshold(tmp_path):
    rc = generate.main(["--out", str(tmp_path), "--rules-only", "--set", "hot_spot_share=0.7",
                        "--set", 'selector=job="irq"'])
    assert rc == 0
    text = (tmp_path / "prometheus" / "pyirqbalance-alerts.yaml").read_text()
    assert 'pyirqbalance_busiest_cpu_interrupt_time_ratio{job="irq"} > 0.7' in text


def test_generate_refuses_an_unknown_parameter(tmp_path):
    with pytest.raises(SystemExit, match="hot_spot_shares"):
        generate.main(["--out", str(tmp_path), "--rules-only", "--set", "hot_spot_shares=1"])
