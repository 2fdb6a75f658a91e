"""A oneshot run imports only what it uses: daemon-only modules stay unloaded.

Start-up is most of a oneshot's CPU (docs/architecture.md), so the control
socket, policy hooks, REST API, history, metrics and the stdlib modules only
they need are imported where they are used. Each case runs the real
``pyirqbalance`` entry point in a fresh interpreter on a fake machine and
lists ``sys.modules`` afterwards.
"""

from __future__ import annotations

import ast
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Runs the entry point (app.main) with the arguments after the output path, then writes
# the exit status and the loaded modules there.
_PROBE = """
import sys
from pyirqbalance.app import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    f.write(repr((code, sorted(sys.modules))))
"""

#: Never needed by a oneshot run (dry or not) without policy scripts.
DAEMON_ONLY = (
    "pyirqbalance.api.uisocket",
    "pyirqbalance.service.policy",
    "pyirqbalance.api",
    "pyirqbalance.history",
    "pyirqbalance.api.metrics",
    "logging.handlers",
    "socket",
    "selectors",
    "subprocess",
    "pathlib",
    "shlex",
    "difflib",
    "psutil",
    "flask",
    "waitress",
    "prometheus_client",
    "sqlite3",
)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("IRQBALANCE_", "NOTIFY_", "WATCHDOG_", "JOURNAL_"))
           and k != "INVOCATION_ID"}
    # -S below: no site start-up, whose .pth files (an editable install's finder) import
    # pathlib and more themselves; the installed packages stay importable through the path.
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *site.getsitepackages()])
    return env


def _modules_after(tmp_path: Path, *args: str) -> set[str]:
    out = tmp_path / "modules.txt"
    proc = subprocess.run([sys.executable, "-S", "-c", _PROBE, str(out), *args],
                          env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    code, modules = ast.literal_eval(out.read_text())
    assert code == 0, proc.stderr
    return set(modules)


def _loaded(modules: set[str], names) -> list[str]:
    return sorted(m for m in modules for name in names if m == name or m.startswith(name + "."))


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> str:
    from tests.conftest import load_machine
    from tests.oracle import mkfake

    out = tmp_path_factory.mktemp("startup") / "a_desktop4"
    mkfake.build_tree(load_machine("a_desktop4"), str(out))
    return str(out)


def test_oneshot_dry_run_imports_no_daemon_module(tmp_path, tree):
    modules = _modules_after(tmp_path, "--oneshot", "--dry-run", "--sysroot", tree)
    assert "pyirqbalance.engine.balancer" in modules  # the probe did run a pass
    assert _loaded(modules, DAEMON_ONLY + ("pyirqbalance.service.notify", "json")) == []


def test_oneshot_imports_no_daemon_module(tmp_path, tree):
    """The real oneshot (writes the fake tree's masks) also notifies systemd: notify, not socket."""
    modules = _modules_after(tmp_path, "--oneshot", "--interval=1", "--sysroot", tree)
    assert "pyirqbalance.service.notify" in modules
    assert _loaded(modules, DAEMON_ONLY) == []
