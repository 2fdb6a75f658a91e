"""Policy script and banscript hooks (classify.c get_irq_user_policy; 1.0-1.4's banscript):
output parsing, directories, timeouts."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from pyirqbalance.engine.model import BalanceLevel, HintPolicy, IrqPolicy
from pyirqbalance.service.policy import (
    MAX_CONSECUTIVE_TIMEOUTS,
    make_policy_hook,
    parse_policy_output,
    run_hook,
)
from tests.waiting import wait_dead

LOG = logging.getLogger("test-policy")


def script(path: Path, body: str, executable: bool = True) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755 if executable else 0o644)
    return str(path)


# --------------------------------------------------------------------------
# output parsing
# --------------------------------------------------------------------------


def test_every_key():
    policy, warnings = parse_policy_output(
        "ban=true\nbalance_level=cache\nnuma_node=1\nhintpolicy=subset\n")
    assert policy == IrqPolicy(True, BalanceLevel.CACHE, 1, HintPolicy.SUBSET)
    assert warnings == []


def test_keys_and_enumerated_values_are_case_insensitive():
    policy, _ = parse_policy_output("BAN=False\nBalance_Level=CORE\nHINTPOLICY=Exact\nnuma_node=-1")
    assert policy == IrqPolicy(False, BalanceLevel.CORE, -1, HintPolicy.EXACT)


def test_bad_lines_are_warned_about_and_the_rest_applies():
    policy, warnings = parse_policy_output(
        "garbage\nban=maybe\ncolour=blue\nbalance_level=package\nnuma_node=x\n"
        "ban=true \nhintpolicy=sub\n\x00\xff")
    assert policy == IrqPolicy(balance_level=BalanceLevel.PACKAGE)
    assert warnings == [
        "Bad format for policy, ignoring: garbage",
        "Unknown value for ban policy: maybe",
        "Unknown key returned, ignoring: colour",
        "Bad value for numa_node policy: x",
        "Unknown value for ban policy: true ",   # no trimming, as irqbalance
        "Unknown value for hintpolicy: sub",
        "Bad format for policy, ignoring: \x00\xff",
    ]


def test_value_split_at_the_first_equals_sign():
    policy, warnings = parse_policy_output("balance_level=core=x\n")
    assert policy.balance_level is None
    assert warnings == ["Bad value for balance_level policy: core=x"]


# --------------------------------------------------------------------------
# running hooks
# --------------------------------------------------------------------------


def test_run_hook_gets_argv_without_a_shell(tmp_path):
    s = script(tmp_path / "p", 'printf "%s|" "$@"; echo oops >&2; exit 3\n')
    result = run_hook([s, "/sys/bus/pci/devices/0000:00:1f.2", "$(id)"], 5)
    assert result.stdout == "/sys/bus/pci/devices/0000:00:1f.2|$(id)|"
    assert (result.status, result.signal, result.stderr, result.error) == (3, None, "oops\n", None)


def test_timeout_kills_the_whole_process_group(tmp_path):
    """The shell and the child it started die; the child's death is awaited, not sampled
    (SIGKILL is delivered asynchronously, and the orphan is reaped by init later)."""
    pidfile = tmp_path / "child.pid"
    s = script(tmp_path / "hang", f"sleep 300 & echo $! > {pidfile}; wait\n")
    # On a busy machine the shell may not reach the "echo" before a short timeout:
    # try longer timeouts until it has started its child, so there is a child to check.
    for timeout in (0.5, 2, 8, 30):
        result = run_hook([s], timeout)
        assert result.status is None and result.error == f"timed out after {timeout:g} s"
        if pidfile.exists() and pidfile.read_text().endswith("\n"):
            break
    child = int(pidfile.read_text())
    wait_dead(child)


def test_output_is_capped_but_drained(tmp_path):
    s = script(tmp_path / "loud", "head -c 3000000 /dev/zero | tr '\\0' x; echo ban=true\n")
    result = run_hook([s], 30, limit=1000)
    assert result.status == 0 and result.stdout == "x" * 1000


def test_signal_death_reads_as_exit_0(tmp_path):
    s = script(tmp_path / "crash", "echo ban=true; kill -SEGV $$\n")
    result = run_hook([s], 5)
    assert (result.status, result.signal, result.stdout) == (0, 11, "ban=true\n")


def test_missing_script_is_an_error_not_an_exception(tmp_path):
    result = run_hook([str(tmp_path / "none")], 5)
    assert result.status is None and result.error.startswith("cannot run")


# --------------------------------------------------------------------------
# the hook the balancer calls
# --------------------------------------------------------------------------


def test_no_scripts_no_hook():
    assert make_policy_hook(None, None, 2, LOG) is None


def test_single_script(tmp_path):
    s = script(tmp_path / "p",
               'if [ "$2" = 5 ]; then echo ban=true; else echo balance_level=core; fi\n')
    hook = make_policy_hook(s, None, 5, LOG)
    assert hook("/sys", 5) == IrqPolicy(ban=True)
    assert hook("/sys", 6) == IrqPolicy(balance_level=BalanceLevel.CORE)


def test_non_zero_exit_discards_the_policy(tmp_path, caplog):
    s = script(tmp_path / "p", "echo ban=true; exit 2\n")
    hook = make_policy_hook(s, None, 5, LOG)
    with caplog.at_level(logging.WARNING, "test-policy"):
        assert hook("/sys", 5) is None
        assert hook("/sys", 5) is None
    assert [r.getMessage() for r in caplog.records].count(
        f"policy script returned non-zero code!  skipping user policy ({s}, IRQ 5, exit 2)") == 1


def test_garbage_affects_only_that_irq_and_is_logged_once(tmp_path, caplog):
    s = script(tmp_path / "p", 'if [ "$2" = 7 ]; then echo "%%%"; fi; echo numa_node=0\n')
    hook = make_policy_hook(s, None, 5, LOG)
    with caplog.at_level(logging.WARNING, "test-policy"):
        for _ in range(3):
            assert hook("/sys", 7) == IrqPolicy(numa_node=0)
            assert hook("/sys", 8) == IrqPolicy(numa_node=0)
    assert [r.getMessage() for r in caplog.records] == [
        f"{s} (IRQ 7): Bad format for policy, ignoring: %%%"]


def test_hanging_script_times_out_then_is_skipped(tmp_path, caplog):
    runs = tmp_path / "runs"
    s = script(tmp_path / "p",
               f'echo x >> {runs}; if [ "$2" = 1 ]; then echo ban=true; exit 0; fi; sleep 60\n')
    # long enough for a shell to start on a busy machine: only "sleep 60" may time out
    hook = make_policy_hook(s, None, 2, LOG)
    with caplog.at_level(logging.ERROR, "test-policy"):
        assert hook("/sys", 9) is None                 # timed out: defaults
        # other IRQs are unaffected (and reset the count)
        assert hook("/sys", 1) == IrqPolicy(ban=True)
        for irq in range(10, 10 + MAX_CONSECUTIVE_TIMEOUTS + 2):
            assert hook("/sys", irq) is None
    assert len(runs.read_text().split()) == 2 + MAX_CONSECUTIVE_TIMEOUTS
    assert any("not run again until reload" in r.getMessage() for r in caplog.records)


def test_missing_policy_script_is_skipped(tmp_path):
    hook = make_policy_hook(str(tmp_path / "none"), None, 1, LOG)
    assert hook("/sys", 1) is None


def test_relative_path_is_made_absolute(tmp_path, monkeypatch):
    script(tmp_path / "p", "echo ban=true\n")
    monkeypatch.chdir(tmp_path)
    hook = make_policy_hook("p", None, 5, LOG)
    monkeypatch.chdir("/")
    assert hook("/sys", 1) == IrqPolicy(ban=True)


# --------------------------------------------------------------------------
# directory of scripts (irqbalance 1.9)
# --------------------------------------------------------------------------


def make_dir(tmp_path: Path, scripts: dict[str, tuple[str, bool]]) -> tuple[str, list[str]]:
    d = tmp_path / "policy.d"
    d.mkdir()
    for name, (body, executable) in scripts.items():
        script(d / name, body, executable)
    return str(d), os.listdir(d)


def test_directory_runs_in_readdir_order_until_one_accepts(tmp_path):
    log = tmp_path / "log"
    body = f'echo $(basename $0) >> {log}; echo balance_level=package; exit %d\n'
    d, order = make_dir(tmp_path, {
        "a": (body % 1, True), "b": (body % 0, True), "c": (body % 1, True),
        "d": (body % 0, False),  # not executable: skipped
    })
    hook = make_policy_hook(d, None, 5, LOG)
    assert hook("/sys", 3) == IrqPolicy(balance_level=BalanceLevel.PACKAGE)
    executable = [n for n in order if n != "d"]
    expected = executable[: executable.index("b") + 1]
    assert log.read_text().split() == expected


@pytest.mark.parametrize("code", [1, 7])
def test_directory_leftover_keys_quirk(tmp_path, code):
    """get_irq_user_policy: the last script that ran keeps its keys even if it exited 1 or more."""
    d, _ = make_dir(tmp_path, {"only": (f"echo ban=true; exit {code}\n", True)})
    assert make_policy_hook(d, None, 5, LOG)("/sys", 3) == IrqPolicy(ban=True)


def test_directory_error_exit_is_logged(tmp_path, caplog):
    d, _ = make_dir(tmp_path, {"bad": ("exit 9\n", True)})
    with caplog.at_level(logging.ERROR, "test-policy"):
        assert make_policy_hook(d, None, 5, LOG)("/sys", 3) == IrqPolicy()
    assert f"Error executing policy script {d}/bad : 9" in caplog.text


# --------------------------------------------------------------------------
# banscript (irqbalance 1.0.4-1.4)
# --------------------------------------------------------------------------


def test_banscript_non_zero_bans_pci_irqs_only(tmp_path):
    calls = tmp_path / "calls"
    s = script(tmp_path / "ban", f'echo "$1 $2" >> {calls}; [ "$2" = 5 ] && exit 1; exit 0\n')
    hook = make_policy_hook(None, s, 5, LOG, sysfs_root="/fake/sys")
    dev = "/fake/sys/bus/pci/devices/0000:00:1f.2"
    assert hook(dev, 5) == IrqPolicy(ban=True)
    assert hook(dev, 6) is None
    assert hook("/fake/sys", 5) is None           # no PCI device: never asked
    assert calls.read_text() == f"{dev} 5\n{dev} 6\n"


def test_banscript_killed_by_a_signal_does_not_ban(tmp_path):
    s = script(tmp_path / "ban", "kill -KILL $$\n")
    assert make_policy_hook(None, s, 5, LOG)("/sys/bus/pci/devices/x", 5) is None


def test_banscript_adds_a_ban_to_the_policy(tmp_path):
    p = script(tmp_path / "p", "echo balance_level=core\n")
    b = script(tmp_path / "b", "exit 1\n")
    hook = make_policy_hook(p, b, 5, LOG)
    assert hook("/sys/bus/pci/devices/x", 4) == IrqPolicy(ban=True, balance_level=BalanceLevel.CORE)


def test_scripts_are_not_run_through_a_shell(tmp_path):
    """A path with a space and a ';' is one argv element, not a command line."""
    s = script(tmp_path / "my policy;x", "echo ban=true\n")
    assert stat.S_ISREG(os.stat(s).st_mode)
    assert make_policy_hook(s, None, 5, LOG)("/sys", 1) == IrqPolicy(ban=True)
