"""No background thread dies silently: failures are logged, restarted, or disabled with a reason."""

from __future__ import annotations

import logging
import sqlite3
import threading

from pyirqbalance.api.uisocket import ControlSocket, SetupState
from pyirqbalance.engine.model import PassReport, Snapshot
from pyirqbalance.history import HistoryConfig, HistoryRecorder
from pyirqbalance.history.store import HistoryStore
from pyirqbalance.supervise import StatusBoard, ThreadHealth, supervise
from tests.controlsocket import connect
from tests.hostile.conftest import DEADLINE, wait_for

LOG = logging.getLogger("test-threads")


def _run(body, **kw) -> ThreadHealth:
    health = ThreadHealth("t")
    stop = threading.Event()
    t = threading.Thread(target=supervise, args=(body, health, LOG),
                         kwargs={"stopping": stop.is_set, "pause": 0.01, **kw})
    t.start()
    t.join(10)
    assert not t.is_alive()
    return health


def test_a_failing_body_is_restarted_then_disabled_with_the_reason(caplog):
    calls = []
    disabled = []

    def body() -> None:
        calls.append(1)
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    with caplog.at_level(logging.ERROR, "test-threads"):
        health = _run(body, on_disable=disabled.append)
    assert len(calls) == 4  # the first run and three restarts
    assert health.state == "disabled" and health.restarts == 4
    assert "OverflowError: Python int too large" in health.error
    assert disabled == [health.error]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("restarting" in m for m in messages) == 3
    assert sum("disabled" in m for m in messages) == 1
    assert all("Traceback" not in m for m in messages)


def test_a_body_that_recovers_keeps_running():
    calls = []

    def body() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("transient")

    health = _run(body)
    assert len(calls) == 3 and health.state == "stopped" and health.restarts == 2
    assert health.ok


def test_board_reports_problems():
    board = StatusBoard()
    ok, bad = ThreadHealth("a"), ThreadHealth("b")
    ok.set("running")
    bad.set("disabled", "failed 4 times")
    board.threads += [ok, bad]
    board.flags["cpu_mismatch"] = lambda: "IRQ 1 has 4 CPU columns"
    status = board.to_json()
    assert status["problems"] == ["b: disabled (failed 4 times)",
                                  "cpu_mismatch: IRQ 1 has 4 CPU columns"]
    assert status["threads"]["a"] == {"state": "running", "restarts": 0, "error": None}


def test_history_writer_crash_is_restarted_and_shown(tmp_path, monkeypatch):
    real = HistoryStore.record
    fails = [2]

    def record(self, reading):
        if fails[0]:
            fails[0] -= 1
            raise OverflowError("int too big")
        return real(self, reading)

    monkeypatch.setattr(HistoryStore, "record", record)
    (tmp_path / "proc").mkdir()
    from pyirqbalance.kernel.sysroot import SysRoot

    rec = HistoryRecorder(SysRoot(str(tmp_path)), HistoryConfig(str(tmp_path / "h.sqlite"),
                                                                resolution_s=1e-3),
                          LOG, read_when_idle=False)
    rec.start()
    try:
        text = b"           CPU0       CPU1\n  1:         10          5   IO-APIC   1-edge  i8042\n"
        for i in range(6):
            snap = Snapshot(1000.0 + i, text, None)
            rec.on_pass(PassReport(cycle=i, rescanned=False, snapshot=snap))
            assert wait_for(lambda: rec._pending is None, 10)
            assert wait_for(lambda: rec.health.state == "running", 10)
        assert wait_for(lambda: rec.recorded >= 1, 10)
        assert rec.health.restarts == 2 and rec.error is None and rec.active
        # Once it records again, health no longer shows the old failure.
        assert wait_for(lambda: rec.health.error is None, 10), rec.health.to_json()
    finally:
        rec.stop()


class _Target:
    def __init__(self) -> None:
        self.fail = 1

    def control_stats(self) -> bytes:
        return b""

    def control_setup(self) -> SetupState:
        return SetupState(10, (), 0)

    def control_set_interval(self, seconds: int) -> None: ...

    def control_ban_irqs(self, irqs) -> None: ...

    def control_ban_cpus(self, cpulist) -> None: ...


def test_control_socket_thread_failure_is_restarted(tmp_path, monkeypatch):
    import os
    import socket

    sock = ControlSocket(_Target(), run_dir=str(tmp_path), pid=1, log=LOG)
    real = ControlSocket._accept
    fails = [1]

    def accept(self, sel, clients):
        if fails[0]:
            fails[0] -= 1
            raise RuntimeError("boom")
        return real(self, sel, clients)

    monkeypatch.setattr(ControlSocket, "_accept", accept)
    sock.start()
    try:
        def ask() -> bytes | None:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(DEADLINE)
                connect(s, sock.path, DEADLINE)
                creds = (os.getpid(), 0, 0)
                s.sendmsg([b"setup"], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS,
                                        b"".join(x.to_bytes(4, "little") for x in creds))])
                try:
                    return s.recv(4096)
                except OSError:
                    return None

        assert wait_for(lambda: ask() == b"SLEEP 10 BANNED 00000000")
        assert sock.health.restarts == 1 and sock.health.state == "running"
    finally:
        sock.stop()


def test_live_history_failure_is_shown_and_balancing_goes_on(live):
    d = live().start()
    assert wait_for(lambda: d.history.exists() and d.history.stat().st_size > 0)
    with sqlite3.connect(d.history, timeout=10) as db:  # someone damages the store
        db.execute("DROP TABLE cells")
    assert wait_for(lambda: d.health()["history"]["error"]), d.log()[-2000:]
    health = d.health()
    assert health["status"] == "degraded"
    assert health["threads"]["history writer"]["state"] == "disabled"
    assert d.metric("pyirqbalance_thread_up", 'thread="history writer"') == 0.0
    d.assert_balancing()
    assert d.log().count("history disabled") == 1
    d.assert_clean_log()
