"""Talking to a daemon's irqbalance control socket as irqbalance-ui does (uid 0, credentials)."""

from __future__ import annotations

import os
import socket


def ask(path: str, command: bytes, timeout: float = 5) -> bytes:
    """Send one command with this process's credentials; the whole reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        creds = (os.getpid(), os.getuid(), os.getgid())
        s.sendmsg([command], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS,
                               b"".join(x.to_bytes(4, "little") for x in creds))])
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
        return b"".join(chunks)
