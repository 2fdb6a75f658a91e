"""Slow and idle HTTP clients against the live daemon's API (waitress)."""

from __future__ import annotations

import socket
import threading
import time

from tests.hostile.conftest import wait_for


class SlowClients:
    """``n`` connections each sending one byte of a request header per second, on one thread."""

    REQUEST = b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200

    def __init__(self, port: int, n: int) -> None:
        self.socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.setblocking(False)
            self.socks.append(s)
        self.closed: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sent = 0
        while not self._stop.wait(1.0):
            byte = self.REQUEST[sent % len(self.REQUEST):][:1]
            sent += 1
            for i, s in enumerate(self.socks):
                if i in self.closed:
                    continue
                try:
                    s.send(byte)
                    if s.recv(1) == b"":
                        self.closed.add(i)
                except BlockingIOError:
                    pass
                except OSError:
                    self.closed.add(i)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for s in self.socks:
            s.close()


def test_health_answers_while_200_slow_clients_are_connected(live):
    d = live().start()
    slow = SlowClients(d.port, 200)
    try:
        for _ in range(5):
            # Answered at all (without the limits it never was); latency: benchmarks/load_api.py.
            status, body = d.get("/api/v1/health")
            assert status == 200 and body["status"] == "ok", body
            time.sleep(1)
        # A request still arriving after 10 s is cut off: the slots come back.
        assert wait_for(lambda: len(slow.closed) == 200, 30)
    finally:
        slow.close()
    d.assert_balancing()
    d.assert_clean_log()


def test_idle_connections_beyond_the_limit_leave_room_for_new_clients(live):
    d = live().start()
    idle = [socket.create_connection(("127.0.0.1", d.port), timeout=5) for _ in range(520)]
    try:
        status, body = d.get("/api/v1/health")
        assert status == 200, body
    finally:
        for s in idle:
            s.close()
    d.assert_balancing()
    d.assert_clean_log()
