"""Readers that try to take every API worker: sampling requests, pipelining clients that
never read, a history store locked by another process. Health and writes must still be
answered, and nothing is disabled for good (docs/security.md)."""

from __future__ import annotations

import json
import re
import signal
import socket
import sqlite3
import threading
import urllib.error
import urllib.request
from typing import Any

from tests.hostile.conftest import wait_for

#: A request the daemon answers at once when it has a worker (a failure limit, not a measure:
#: a busy machine can take seconds; still far below the 60 s a parked sampling request waits).
PROMPT = 20.0
#: Bytes of padding that make /proc/interrupts, and so each raw distribution reply, large.
PAD = 6_000_000


def raw_request(port: int, text: str, *, rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    s.sendall(text.encode())
    return s


def read_reply(s: socket.socket, timeout: float) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.0-style reply (the server closes after it)."""
    s.settimeout(timeout)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def no_reply_yet(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        s.recv(1, socket.MSG_PEEK)  # a reply, or the end of the connection
        return False
    except BlockingIOError:
        return True
    finally:
        s.setblocking(True)


def server_side_state(server_port: int, client_port: int) -> str | None:
    """State (hex, 01 = ESTABLISHED) of the daemon's end of a loopback connection, if any."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote = (int(x.rsplit(":", 1)[1], 16) for x in fields[1:3])
            if (local, remote) == (server_port, client_port):
                return fields[3]
    return None


def put(url: str, timeout: float) -> int:
    req = urllib.request.Request(url, method="PUT", data=b"")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_sampling_requests_wait_without_holding_a_worker(live):
    d = live().start()
    sampling = "GET /get_interrupt_by_cpu?second=60 HTTP/1.0\r\nHost: x\r\n\r\n"
    socks = [raw_request(d.port, sampling) for _ in range(8)]
    try:
        # Parked: they hold no worker, so health and writes are answered meanwhile.
        status, body = d.get("/api/v1/health", timeout=PROMPT)
        assert status == 200 and body["status"] == "ok", body
        assert put(d.url + "/api/v1/irqsummary/0?cpus=0", PROMPT) < 500  # answered
        # A ninth one from the same client is refused at once instead of queued.
        ninth = raw_request(d.port, sampling)
        status, text = read_reply(ninth, PROMPT)
        assert status == 503 and b"too many sampling requests" in text, text
        assert all(no_reply_yet(s) for s in socks)
    finally:
        for s in socks:
            s.close()
    # The requests of clients that hung up give their places back; a short sampling
    # request then measures: one count per CPU of the machine.
    def sample() -> tuple[int, bytes]:
        s = raw_request(d.port, "GET /get_interrupt_by_cpu?second=1 HTTP/1.0\r\nHost: x\r\n\r\n")
        with s:
            return read_reply(s, PROMPT + 1)

    status, text = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(sample()))
    assert sorted(json.loads(text)) == ["CPU0", "CPU1", "CPU2", "CPU3"]
    d.assert_balancing()
    d.assert_clean_log()


def test_clients_that_pipeline_large_replies_and_never_read_are_cut_off(live):
    d = live()
    d.kernel.edit = lambda text: text + " " * PAD + "\n"
    d.start()
    pipelined = "GET /get_current_distribution HTTP/1.1\r\nHost: x\r\n\r\n" * 3
    socks = [raw_request(d.port, pipelined, rcvbuf=4096) for _ in range(4)]
    ports = [s.getsockname()[1] for s in socks]
    try:
        for _ in range(3):
            status, body = d.get("/api/v1/health", timeout=PROMPT)
            assert status == 200, body
        # The replies nobody takes are abandoned: the daemon ends the connections.
        def states() -> list[str | None]:
            return [server_side_state(d.port, p) for p in ports]

        assert wait_for(lambda: "01" not in states(), 90), (states(), d.log()[-3000:])
    finally:
        for s in socks:
            s.close()
    status, body = d.get("/get_current_distribution", timeout=30)
    assert status == 200 and len(body) > PAD
    d.assert_balancing()
    d.assert_clean_log()


class _Lock:
    """Another process holding the history store's write lock (here: this test's connection)."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('x', 'y')")

    def release(self) -> None:
        self.db.execute("ROLLBACK")
        self.db.close()


def _writer(d: Any) -> dict[str, Any]:
    return d.health()["threads"]["history writer"]


def test_a_writer_holding_the_store_lock_neither_blocks_queries_nor_disables_history(live):
    d = live().start()
    assert wait_for(lambda: d.get("/api/v1/irqsummary?start=-1h")[0] == 200)
    lock = _Lock(str(d.history))
    try:
        results: list[int] = []

        def query() -> None:
            results.append(d.get("/api/v1/irqsummary?start=-1h", timeout=PROMPT)[0])

        threads = [threading.Thread(target=query) for _ in range(8)]
        for t in threads:
            t.start()
        status, body = d.get("/api/v1/health", timeout=PROMPT)
        assert status == 200, body
        for t in threads:
            t.join()
        assert results == [200] * 8  # readers never wait for the write lock
        # The writer waits for the store; history is not disabled.
        assert wait_for(lambda: _writer(d)["state"] == "waiting"), _writer(d)
        health = d.health()
        assert health["history"]["enabled"] and health["history"]["error"] is None, health
        assert "locked by another process" in d.log()
    finally:
        lock.release()
    assert wait_for(lambda: _writer(d)["state"] == "running"), _writer(d)
    # Recording again clears the wait's message from health.
    assert wait_for(lambda: _writer(d)["error"] is None), _writer(d)
    assert wait_for(lambda: d.get("/api/v1/irqsummary?start=-1h")[0] == 200)
    d.assert_balancing()
    d.assert_clean_log()


def test_a_store_error_during_report_and_by_cpu_is_503(live):
    d = live().start()
    assert wait_for(lambda: d.get("/api/v1/irqsummary?start=-1h")[0] == 200)
    db = sqlite3.connect(str(d.history), isolation_level=None, timeout=30)
    db.execute("DROP TABLE cells")  # damaged under the daemon: queries fail after opening
    db.close()
    for path in ("/api/v1/report?start=-1h", "/api/v1/get_interrupt_by_cpu?cpu=0&second=86400",
                 "/api/v1/irqsummary?start=-1h"):
        status, body = d.get(path)
        assert status == 503 and "history store" in body["error"], (path, body)
    d.assert_balancing()
    assert "Traceback" not in d.log()


def test_times_that_look_like_epoch_seconds_but_are_no_number_are_400(live):
    d = live().start()
    for value in ("1.2.3e5", ".e5"):
        for path in ("/api/v1/irqsummary", "/api/v1/report"):
            status, body = d.get(f"{path}?start={value}")
            assert status == 400 and body["parameter"] == "start", (path, value, body)
        # The seed route answers an unreadable date the seed server's way.
        status, body = d.get(f"/irqsummary?start={value}")
        assert status == 200 and body == {"message": "start is not a valid format (%m%d%H%M)"}
    d.assert_clean_log()


def test_health_turns_unhealthy_while_the_main_loop_is_stuck(live, tmp_path):
    flag = tmp_path / "hang"
    hook = tmp_path / "policy"
    hook.write_text(f"#!/bin/sh\nif [ -e {flag} ]; then exec sleep 40; fi\n"
                    "echo balance_level=core\n")
    hook.chmod(0o755)
    d = live(config=f"hooks:\n  policyscript: {hook}\n  timeout_s: 60\n").start()
    health = d.health()
    assert health["flags"]["pass_stalled"] is None and health["status"] == "ok", health
    assert 0 <= health["last_pass_age_s"] <= health["stalled_after_s"] == 13.0, health
    flag.touch()
    d.signal(signal.SIGHUP)  # the rebuild's hook hangs: no pass ends meanwhile
    stuck = wait_for(lambda: (lambda h: h if h["flags"]["pass_stalled"] else None)(d.health()),
                     60)
    assert stuck, d.log()[-2000:]
    assert stuck["status"] == "degraded" and stuck["last_pass_age_s"] > 13.0, stuck
    assert any("main loop is stuck" in p for p in stuck["problems"]), stuck
    flag.unlink()
    # Once the hook returns, passes come again and health says so.
    assert wait_for(lambda: d.health()["flags"]["pass_stalled"] is None, 90), d.log()[-2000:]
    d.assert_balancing()
    d.assert_clean_log()


def test_a_count_longer_than_the_int_conversion_limit_is_an_out_of_range_count(live):
    d = live().start()
    row = re.compile(r"^( *126:)( +)(\d+)", re.M)
    d.kernel.edit = lambda text: row.sub(lambda m: m[1] + " " + "9" * 5000, text, count=1)
    assert wait_for(lambda: "are not counts" in d.log())
    for path in ("/irqsummary", "/api/v1/irqsummary", "/get_current_distribution?format=json",
                 "/get_interrupt_by_cpu?second=0", "/api/v1/get_interrupt_by_cpu?cpu=0",
                 "/api/v1/report", "/api/v1/irqsummary/126"):
        status, body = d.get(path)
        assert status == 200, (path, body)
    d.kernel.edit = None
    d.assert_balancing(3)
    health = d.health()
    assert health["threads"]["history writer"] == {"state": "running", "restarts": 0,
                                                   "error": None}, health
    assert health["history"]["enabled"] and health["status"] == "ok", health
    d.assert_clean_log()
