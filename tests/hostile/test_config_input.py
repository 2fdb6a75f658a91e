"""Hostile configuration files at start-up and on SIGHUP, against the real process."""

from __future__ import annotations

import logging
import os
import signal

import pytest

from pyirqbalance.api.wiring import build_extras
from pyirqbalance.service.config import ApiConfig, Config, MetricsConfig
from tests.hostile.conftest import one_line_error, run_cli, wait_for

DEEP = "balancing: " + "[" * 100_000 + "]" * 100_000 + "\n"


def _bomb(levels: int = 8) -> str:
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\nbalancing:\n  banned_irqs: *a{levels}\n"


CASES = {
    "deep": (DEEP, "nested more than 32 levels deep"),
    "alias bomb": (_bomb(), "more than 100000 values once its aliases are expanded"),
    "duplicate key": ("balancing:\n  interval: 5\n  interval: 7\n", "duplicate key 'interval'"),
    "big": ("#" * (1 << 20) + "\n", "more than the 1048576 allowed"),
    "bad value echo": ("balancing:\n  interval: '" + "x" * 100_000 + "'\n", "is not allowed"),
    "recursive alias": ("a: &a [*a]\n", "refers to itself"),
    "invalid date": ("balancing:\n  interval: 2024-13-45\n", "month must be in 1..12"),
    "5000-digit integer": ("balancing:\n  interval: " + "9" * 5000 + "\n",
                           "Exceeds the limit (4300 digits)"),
    "int tag on text": ("balancing:\n  interval: !!int abc\n", "invalid literal for int()"),
}
PATH_KEYS = [("daemon", "run_dir"), ("daemon", "pid_file"), ("daemon", "state_dir"),
             ("api", "unix_socket"), ("api", "token_file"), ("history", "path"),
             ("hooks", "policyscript"), ("hooks", "banscript")]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_file_at_start_up_is_one_line_and_exit_2(tmp_path, name):
    text, message = CASES[name]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    out = run_cli(f"--config={cfg}", "--oneshot", "--dry-run", "--sysroot", str(tmp_path))
    assert out.returncode == 2
    line = one_line_error(out)
    assert message in line and len(line) < 300, line


def test_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "c.yaml"
    os.mkfifo(fifo)
    out = run_cli(f"--config={fifo}", "--oneshot", "--dry-run", "--sysroot", str(tmp_path))
    assert out.returncode == 2 and "not a regular file" in one_line_error(out)


def test_a_directory_given_as_the_configuration_is_one_line_and_exit_2(tmp_path):
    out = run_cli(f"--config={tmp_path}", "--oneshot", "--dry-run", "--sysroot", str(tmp_path))
    assert out.returncode == 2 and "not a regular file" in one_line_error(out)


@pytest.mark.parametrize("section, key", PATH_KEYS)
def test_nul_in_a_path_names_the_key(tmp_path, section, key):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f'{section}:\n  {key}: "/tmp/a\\0b"\n')
    out = run_cli(f"--config={cfg}", "--oneshot", "--dry-run", "--sysroot", str(tmp_path))
    assert out.returncode == 2
    assert f"{section}.{key}: '/tmp/a\\x00b' contains a NUL byte" in one_line_error(out)


def test_remote_listen_without_allow_remote_reads_is_refused(tmp_path):
    out = run_cli("--api-listen=0.0.0.0:9199", "--oneshot", "--sysroot", str(tmp_path))
    assert out.returncode == 2
    assert "api.allow_remote_reads" in one_line_error(out)


def test_allowed_remote_reads_warn_and_show_in_health(tmp_path, fake_machine, caplog):
    root, _ = fake_machine("a_desktop4")

    class Balancer:  # what build_extras reads of the balancer
        keep_text = False
        settings = type("S", (), {"hz": 100, "banned_irqs": ()})()

    api = ApiConfig(enabled=True, listen="0.0.0.0:9199", allow_remote_reads=True)
    with caplog.at_level(logging.WARNING):
        extras = build_extras(Config(api=api, metrics=MetricsConfig(enabled=True)), root,
                              Balancer(), logging.getLogger("t"))
    assert "API reads are open to the network on 0.0.0.0:9199" in caplog.text
    service = extras.services[-1]
    assert service.ctx.daemon_status()["api_remote_reads"] is True  # nothing was bound


def test_sighup_with_a_bad_file_keeps_the_running_configuration(live):
    d = live(config="balancing:\n  banned_irqs: [9]\n").start()
    text = d.config.read_text()
    for bad in (DEEP, _bomb(), "balancing:\n  interval: 1\n  interval: 2\n"):
        d.config.write_text(bad)
        want = d.log().count("reload failed") + 1
        d.signal(signal.SIGHUP)
        assert wait_for(lambda n=want: d.log().count("reload failed") == n), d.log()[-2000:]
        d.assert_balancing()
    assert d.ask(b"setup").startswith(b"SLEEP 1 IRQ 9 ")
    d.config.write_text(text)
    assert d.proc is not None and d.proc.poll() is None
    failures = [line for line in d.log().splitlines() if "reload failed" in line]
    assert len(failures) == 3 and all(len(line) < 300 for line in failures)
    d.assert_clean_log()
