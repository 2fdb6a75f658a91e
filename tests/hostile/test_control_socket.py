"""Hostile clients of irqbalance's control socket (idle, many, vanished) against the live daemon."""

from __future__ import annotations

import socket
import time

from tests.hostile.conftest import DEADLINE, needs_root, wait_for

SETUP = b"SLEEP 1 BANNED 00000000"


def _idle(path: str, n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)  # blocking: waits while the listen backlog is full
        s.settimeout(5)
        out.append(s)
    return out


def _closed_by_peer(s: socket.socket) -> bool:
    s.settimeout(0)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


@needs_root
def test_root_is_answered_while_200_idle_clients_are_connected_and_after(live):
    d = live().start()
    clients = _idle(str(d.socket_path()), 200)
    try:
        assert d.ask(b"setup") == SETUP
        # Answered while all 200 were connected: none had reached its own 10 s timeout yet,
        # which would have freed a place (the log, not a time limit, says so).
        assert "timed out" not in d.log()
        assert d.ask(b"stats").startswith(b"TYPE ")
    finally:
        for s in clients:
            s.close()
    assert d.ask(b"setup") == SETUP
    d.assert_balancing()
    d.assert_clean_log()


@needs_root
def test_served_after_silent_clients_time_out(live):
    """The outage of the report: 70 silent clients, their 10 s timeout, then nothing was served."""
    d = live().start()
    clients = _idle(str(d.socket_path()), 70)
    try:
        assert wait_for(lambda: all(_closed_by_peer(s) for s in clients), 10 + DEADLINE, 0.5)
        assert d.ask(b"setup") == SETUP
    finally:
        for s in clients:
            s.close()
    d.assert_balancing()
    d.assert_clean_log()


@needs_root
def test_beyond_the_cap_the_oldest_idle_client_is_closed_first(live):
    d = live().start()
    path = str(d.socket_path())
    first = _idle(path, 10)
    time.sleep(0.5)  # accepted before the others (insertion order is age)
    rest = _idle(path, 256)
    try:
        assert d.ask(b"setup") == SETUP
        assert wait_for(lambda: all(_closed_by_peer(s) for s in first))
        # Closed are the oldest: what is closed is a prefix of the clients in the order they
        # connected. On a machine slow enough for the newest to reach their 10 s timeout too,
        # those go oldest first as well, so the order holds whatever the speed. Read newest
        # first: a newer client found closed means every older one was closed before it
        # (and stays closed).
        found = [_closed_by_peer(s) for s in reversed(first + rest)][::-1]
        open_at = found.index(False) if False in found else len(found)
        assert not any(found[open_at:]), "a newer client closed while an older one is open"
        assert open_at >= len(first)
    finally:
        for s in first + rest:
            s.close()
    assert "closing the oldest" in d.log()
    d.assert_balancing()
    d.assert_clean_log()
