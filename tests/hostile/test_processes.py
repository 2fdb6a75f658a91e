"""The daemon as a process among others: hook descendants that leave their session, the
umask it was started with, control-socket clients that flood the log, TCP peers that
half-close."""

from __future__ import annotations

import os
import signal
import socket
import stat

from tests.controlsocket import connect
from tests.hostile.conftest import DEADLINE, needs_root, sleeping, unique_seconds, wait_for


def test_hook_descendants_that_call_setsid_are_ended_with_the_hook(live, tmp_path):
    mark = unique_seconds(1717)
    hook = tmp_path / "policy"
    hook.write_text(f"#!/bin/sh\nsetsid sleep {mark} </dev/null >/dev/null 2>&1 &\n"
                    "echo balance_level=core\n")
    hook.chmod(0o755)
    d = live(config=f"hooks:\n  policyscript: {hook}\n").start()
    try:
        for _ in range(2):
            d.signal(signal.SIGHUP)  # every rebuild runs the hook for every IRQ again
            d.assert_balancing(2)
        assert wait_for(lambda: not sleeping(mark)), sleeping(mark)
        d.assert_clean_log()
    finally:
        for pid in sleeping(mark):
            os.kill(int(pid), signal.SIGKILL)


@needs_root
def test_the_daemon_sets_its_own_umask(live, tmp_path):
    pidfile = tmp_path / "pyirqbalance.pid"
    d = live(args=(f"--pid={pidfile}",))
    old = os.umask(0)
    try:
        d.start()
    finally:
        os.umask(old)
    assert wait_for(lambda: d.socket_path().exists() and pidfile.exists())
    assert stat.S_IMODE(pidfile.stat().st_mode) == 0o644
    assert stat.S_IMODE(d.socket_path().stat().st_mode) & 0o027 == 0
    assert stat.S_IMODE((d.run_dir / "pyirqbalance.lock").stat().st_mode) == 0o640
    d.assert_clean_log()


@needs_root
def test_bad_control_socket_messages_are_logged_at_a_bounded_rate(live):
    d = live().start()
    path = str(d.socket_path())
    for _ in range(300):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(DEADLINE)
            connect(s, path, DEADLINE)
            s.sendall(b"x" * 16384)  # irqbalance's buffer full: "Received command too long."
            s.recv(16)  # closed without a reply
    assert d.ask(b"setup").startswith(b"SLEEP ")
    assert wait_for(lambda: "the next ones are not logged" in d.log())
    assert d.log().count("Received command too long.") == 10
    assert d.log().count("the next ones are not logged") == 1
    d.assert_balancing()
    d.assert_clean_log()


@needs_root
def test_a_root_client_that_half_closes_after_its_request_is_not_refused(live):
    d = live().start()
    with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
        s.sendall(b"DELETE /api/v1/irqsummary/122 HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\nContent-Length: 0\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    assert status not in (401, 403), reply
    assert status < 500, reply
    d.assert_clean_log()
