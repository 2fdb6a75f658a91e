"""Kernel faults and hostile files against the live daemon: it keeps balancing, loses nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from pyirqbalance.kernel.procinterrupts import parse_interrupts
from pyirqbalance.kernel.sysroot import SysRoot
from tests.hostile.conftest import affinities, run_cli, wait_for
from tests.waiting import wait_until

HUGE = "9" * 26


def _huge_count(irq: int):
    row = re.compile(rf"^( *{irq}:)( +)(\d+)", re.M)
    return lambda text: row.sub(lambda m: m[1] + " " + HUGE, text, count=1)


def _live_totals(root: SysRoot) -> dict[int, int]:
    with open(root.proc("interrupts")) as f:
        parsed = parse_interrupts(f.read())
    return {r.irq: r.total for r in parsed.rows if r.irq is not None}


def test_a_26_digit_count_neither_kills_history_nor_loses_counts(live):
    d = live().start()
    d.kernel.edit = _huge_count(126)
    d.assert_balancing(3)
    assert wait_for(lambda: "are not counts" in d.log())
    d.kernel.edit = None
    d.assert_balancing(3)
    health = d.health()
    writer = health["threads"]["history writer"]
    assert writer == {"state": "running", "restarts": 0, "error": None}
    assert health["history"]["enabled"] and health["status"] == "ok"
    # Counts since boot from history equal what /proc/interrupts says once it stops moving.
    d.kernel.frozen = True
    live_totals = {irq: n for irq, n in _live_totals(d.root).items() if n}  # history lists movers

    def history_matches() -> bool:
        status, body = d.get("/api/v1/irqsummary?start=1")
        totals = {row["irq"]: row["total"] for row in body["irqs"]} if status == 200 else {}
        return totals == live_totals

    if not wait_for(history_matches):
        body = d.get("/api/v1/irqsummary?start=1")[1]
        got = {row["irq"]: row["total"] for row in body["irqs"]}
        raise AssertionError({k: (v, got.get(k)) for k, v in live_totals.items()
                              if got.get(k) != v})
    assert d.log().count("are not counts") == 1
    d.assert_clean_log()


def _set_online(tree: Path, cpus: str, cpu3: str) -> None:
    base = tree / "sys" / "devices" / "system" / "cpu"
    (base / "online").write_text(cpus + "\n")
    (base / "cpu3" / "online").write_text(cpu3 + "\n")


def test_cpu_disagreement_is_retried_flagged_then_cleared(live):
    d = live().start()
    _set_online(d.tree, "0-2", "0")  # /proc/interrupts keeps 4 columns
    d.signal(signal.SIGHUP)
    assert wait_for(lambda: "rescanning again" in d.log())
    assert wait_for(lambda: d.health()["flags"]["cpu_mismatch"])
    assert "4 CPU columns" in d.health()["flags"]["cpu_mismatch"]
    assert d.health()["status"] == "degraded"
    assert d.metric("pyirqbalance_condition", 'condition="cpu_mismatch"') == 1.0
    _set_online(d.tree, "0-3", "1")
    assert wait_for(lambda: d.health()["flags"]["cpu_mismatch"] is None)
    d.assert_balancing()
    assert d.metric("pyirqbalance_condition", 'condition="cpu_mismatch"') == 0.0
    assert "agree on the CPUs again" in d.log()
    d.assert_clean_log()


@pytest.mark.parametrize("content", ['{"122": "0000', "[1,2]", '{"x": 5}', "\udcff"])
def test_corrupt_original_affinity_file_is_set_aside_and_originals_restorable(live, content):
    d = live(api=False)
    before = affinities(d.root)
    d.state_dir.mkdir(parents=True)
    state = d.state_dir / "original-affinity.json"
    state.write_text(content, errors="surrogateescape")
    d.start(wait=False)
    assert wait_for(lambda: affinities(d.root) != before)
    assert wait_for(lambda: list(d.state_dir.glob("original-affinity.json.corrupt-*")))
    assert d.stop() == 0
    aside = next(d.state_dir.glob("original-affinity.json.corrupt-*"))
    assert aside.read_bytes() == content.encode(errors="surrogateescape")
    assert d.log().count("is damaged") == 1
    assert (state.stat().st_mode & 0o777) == 0o600
    out = run_cli("--restore", f"--sysroot={d.tree}")
    assert out.returncode == 0, out.stderr
    assert affinities(d.root) == before
    d.assert_clean_log()


@pytest.mark.parametrize("delay", [0.6, 1.0, 1.3, 1.6, 2.2])
def test_restore_after_kill_9_at_any_point(live, delay):
    d = live(api=False)
    before = affinities(d.root)
    d.start(wait=False)
    time.sleep(delay)
    assert d.proc is not None
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    out = run_cli("--restore", f"--sysroot={d.tree}")
    assert out.returncode == 0, out.stderr
    _wait_restored(d, before)


def _wait_restored(d, before: dict[int, int]) -> None:
    """Every smp_affinity is back as it was, once the fake kernel has taken the writes.

    It takes writes every 0.25 s: it may have read the killed daemon's last write just
    before --restore wrote the same file, and shows that one until its next round (the
    kernel, which takes a write inside write(), never does).
    """
    def diff() -> dict[int, tuple[int, int | None]]:
        now = affinities(d.root)
        return {irq: (mask, now.get(irq)) for irq, mask in before.items() if now.get(irq) != mask}

    try:
        wait_until(lambda: not diff(), what="every IRQ back on its original mask")
    except AssertionError as err:
        raise AssertionError(f"{err}: IRQ: (original, now) {diff()}") from None


def test_restore_after_kill_9_once_balanced(live):
    d = live(api=False)
    before = affinities(d.root)
    d.start(wait=False)
    assert wait_for(lambda: affinities(d.root) != before)
    assert d.proc is not None
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    saved = json.loads((d.state_dir / "original-affinity.json").read_text())["irqs"]
    changed = {irq for irq, mask in affinities(d.root).items() if mask != before[irq]}
    assert changed <= {int(irq) for irq in saved}
    out = run_cli("--restore", f"--sysroot={d.tree}")
    assert out.returncode == 0, out.stderr
    _wait_restored(d, before)


def test_api_port_taken_is_logged_and_balancing_goes_on(live):
    """An API that cannot listen is one log line; the daemon balances on without it."""
    d = live()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", d.port))
        taken.listen()
        before = affinities(d.root)
        d.start(wait=False)
        assert d.proc is not None
        # The first pass places a_desktop4's NIC queues on single CPUs (written files).
        assert wait_for(lambda: "pass 1: moved" in d.log() or d.proc.poll() is not None), \
            d.log()
        assert d.proc.poll() is None, d.log()
        assert affinities(d.root) != before
    errors = [line for line in d.log().splitlines() if line.startswith("API not started")]
    assert len(errors) == 1 and f"127.0.0.1:{d.port}" in errors[0] and "in use" in errors[0]
    assert "balancing goes on" in errors[0] and "ApiService" not in d.log()
    d.assert_clean_log()


def test_api_socket_directory_missing_is_logged_shown_in_health_and_balancing_goes_on(
        live, tmp_path):
    d = live()
    d.config.write_text(d.config.read_text().replace(
        "api:\n", f"api:\n  unix_socket: {tmp_path}/missing/api.sock\n"))
    d.start()
    d.assert_balancing()
    errors = [line for line in d.log().splitlines() if line.startswith("API not started")]
    assert len(errors) == 1 and "missing/api.sock" in errors[0], d.log()
    assert "No such file or directory" in errors[0]
    health = d.health()
    unix = health["threads"][f"api unix:{tmp_path}/missing/api.sock"]
    assert unix["state"] == "disabled" and "No such file or directory" in unix["error"]
    assert health["threads"][f"api 127.0.0.1:{d.port}"]["state"] == "running"
    assert health["status"] == "degraded"
    assert any("missing/api.sock" in problem for problem in health["problems"])
    d.assert_clean_log()


@pytest.fixture
def immutable():
    """chattr +i on files (a write by root then fails with EPERM); undone at teardown."""
    made: list[Path] = []

    def make(path: Path) -> bool:
        ok = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
        if ok:
            made.append(path)
        return ok

    yield make
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)


def test_refused_write_is_logged_and_not_writable(live, immutable):
    d = live()
    target = d.tree / "proc" / "irq" / "128" / "smp_affinity"
    if not immutable(target):
        pytest.skip("chattr +i not supported on this file system")
    d.start()
    assert wait_for(lambda: "IRQ 128: the kernel refused smp_affinity" in d.log())
    line = next(line for line in d.log().splitlines() if "IRQ 128: the kernel refused" in line)
    assert "not managed until the next rescan" in line  # shown at the default level
    status, body = d.get("/api/v1/irqsummary/128")
    assert status == 200 and body["writable"] is False
    status, body = d.get("/api/v1/irqsummary/126")
    assert status == 200 and body["writable"] is True
    d.assert_balancing()
    d.assert_clean_log()


def test_files_are_private(live):
    d = live().start()
    assert wait_for(lambda: (d.state_dir / "original-affinity.json").exists())
    assert wait_for(lambda: d.history.exists())
    modes = {p.name: p.stat().st_mode & 0o777 for p in (
        d.history, d.state_dir / "original-affinity.json", d.run_dir / "pyirqbalance.lock")}
    assert modes == {"history.sqlite": 0o600, "original-affinity.json": 0o600,
                     "pyirqbalance.lock": 0o640}
    for extra in ("history.sqlite-wal", "history.sqlite-shm"):
        path = d.history.parent / extra
        if path.exists():
            assert path.stat().st_mode & 0o077 == 0, extra
    assert not [p for p in os.listdir(d.state_dir) if p.endswith(".tmp")]
