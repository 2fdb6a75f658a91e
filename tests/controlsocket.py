"""Talking to a daemon's irqbalance control socket as irqbalance-ui does (uid 0, credentials)."""

from __future__ import annotations

import os
import socket
import time

from tests.waiting import DEFAULT_TIMEOUT_S


def ask(path: str, command: bytes, timeout: float = DEFAULT_TIMEOUT_S) -> bytes:
    """Send one command with this process's credentials; the whole reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        connect(s, path, timeout)
        creds = (os.getpid(), os.getuid(), os.getgid())
        s.sendmsg([command], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS,
                               b"".join(x.to_bytes(4, "little") for x in creds))])
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
        return b"".join(chunks)


def connect(s: socket.socket, path: str, timeout: float) -> None:
    """A blocking connect with a deadline, as irqbalance-ui's blocking connect() behaves: a
    socket with a timeout is non-blocking underneath, and on a unix socket a full listen
    backlog then fails with EAGAIN at once instead of waiting for the listener to accept."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            s.connect(path)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
