"""With CI set, a session in which a whole tier skipped fails (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import CI_TIERS, covered_tiers, idle_tiers

ROOT = Path(__file__).resolve().parents[2]


def test_the_tiers_exist():
    for where in CI_TIERS.values():
        assert (ROOT / where).exists(), where


def test_covered_tiers_follow_the_paths_given():
    every = list(CI_TIERS)
    assert covered_tiers([], ROOT, ROOT) == every
    assert covered_tiers(["tests"], ROOT, ROOT) == every
    assert covered_tiers(["."], ROOT / "tests", ROOT) == every
    assert covered_tiers(["tests/unit"], ROOT, ROOT) == []
    assert covered_tiers(["tests/integration"], ROOT, ROOT) == ["uisocket-live", "sysvinit"]
    assert covered_tiers(["tests/seed/test_defects.py::test_x"], ROOT, ROOT) == ["seed"]


def test_idle_tiers_are_those_without_a_run_test():
    assert idle_tiers({"seed": 3}, ["seed", "hostile"]) == ["hostile"]
    assert idle_tiers({"seed": 3, "hostile": 1}, ["seed", "hostile"]) == []
    assert idle_tiers({"seed": 3}, ["seed", "hostile"], {"hostile"}) == []


#: A plugin that skips every test, as a machine without a tier's tools would.
SKIP_ALL = """
import pytest

def pytest_runtest_setup(item):
    pytest.skip("planted: the tier's tools are missing")
"""


def _pytest(*args: str, ci: bool, plugin_dir: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "1"
    if plugin_dir is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_dir),
                                                          env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_a_tier_that_ran_nothing_fails_the_session_in_ci(tmp_path):
    # every packaging test skipped, as on a machine without the Debian tools
    (tmp_path / "planted_skip.py").write_text(SKIP_ALL)
    args = ("tests/packaging", "-p", "planted_skip")
    out = _pytest(*args, ci=True, plugin_dir=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "no test of the packaging tier (tests/packaging) ran" in out.stdout
    # outside CI the run is only skips (0), without the tier message
    out = _pytest(*args, ci=False, plugin_dir=tmp_path)
    assert out.returncode == 0 and "packaging tier" not in out.stdout, out.stdout


def test_a_tier_deselected_on_purpose_is_not_idle():
    # pytest -m "not slow" leaves every slow tier out by choice: no tier message
    for args in (("tests/packaging", "-m", "not slow"),
                 ("tests/packaging", "-k", "no_test_has_this_name")):
        out = _pytest(*args, ci=True)
        assert out.returncode == 5, out.stdout + out.stderr
        assert "tier" not in out.stdout, out.stdout
