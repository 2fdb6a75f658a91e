"""Connecting to a unix-socket listener whose backlog is full (the API's unix address).

On Linux a unix stream listener with a full backlog fails a non-blocking connect with
EAGAIN at once; a socket with a timeout is non-blocking underneath, so a client that
connects with a timeout must wait for room itself, as a blocking connect() would.
"""

from __future__ import annotations

import socket
import threading

import pytest

from pyirqbalance.api.client import ApiClient, connect_unix


def _full_listener(path: str) -> tuple[socket.socket, list[socket.socket]]:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(0)
    queued = []
    while True:  # fill the backlog: the kernel's answer, not a count of ours
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
        except BlockingIOError:
            s.close()
            return listener, queued
        queued.append(s)


def test_a_plain_timeout_connect_fails_at_once_on_a_full_backlog(tmp_path):
    """The kernel behaviour the client works around (if this changes, so may the client)."""
    listener, queued = _full_listener(str(tmp_path / "s"))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            with pytest.raises(BlockingIOError):
                s.connect(str(tmp_path / "s"))
    finally:
        for q in queued:
            q.close()
        listener.close()


def test_the_api_client_waits_until_the_listener_accepts(tmp_path):
    """pyirqbalancectl against a busy daemon's unix address: answered, not EAGAIN."""
    path = str(tmp_path / "s")
    listener, queued = _full_listener(path)
    released = threading.Event()

    def serve_one_later() -> None:
        released.wait(10)
        listener.settimeout(10)  # a client that gave up is not waited for forever
        for _ in queued:  # the backlog's queued connections, accepted and dropped first
            listener.accept()[0].close()
        try:
            conn = listener.accept()[0]
        except TimeoutError:
            return
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            body = b'{"ok": true}'
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    t = threading.Thread(target=serve_one_later)
    t.start()
    try:
        threading.Timer(0.2, released.set).start()
        reply = ApiClient(f"unix:{path}", timeout=30).request("GET", "/api/v1/health")
        assert (reply.status, reply.data) == (200, {"ok": True})
    finally:
        released.set()
        t.join()
        for q in queued:
            q.close()
        listener.close()


def test_connect_gives_up_at_its_deadline(tmp_path):
    path = str(tmp_path / "s")
    listener, queued = _full_listener(path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(0.3)
            with pytest.raises(TimeoutError, match="backlog stayed full"):
                connect_unix(s, path, 0.3)
    finally:
        for q in queued:
            q.close()
        listener.close()
