"""sd_notify and journal protocols, spoken to sockets the tests bind themselves."""

from __future__ import annotations

import array
import logging
import os
import socket
import struct
import sys
import threading

import pytest

from pyirqbalance.service.notify import (
    NativeJournalHandler,
    Notifier,
    PriorityPrefixFormatter,
    journal_stream_is_stderr,
    syslog_priority,
    watchdog_interval,
)
from tests.waiting import wait_until


@pytest.fixture
def dgram(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def test_notify_sends_one_datagram_of_assignments(dgram):
    sock, path = dgram
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.enabled and n.notify("READY=1", "STATUS=balancing 3 IRQs")
    assert sock.recv(4096) == b"READY=1\nSTATUS=balancing 3 IRQs"
    n.close()


def test_notify_abstract_address():
    name = f"pyirqbalance-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).notify("WATCHDOG=1")
        assert sock.recv(100) == b"WATCHDOG=1"


def test_notify_never_blocks_on_a_receiver_that_stopped_reading(dgram):
    """A full receive queue (net.unix.max_dgram_qlen datagrams) drops the datagram:
    a blocking send would hang the main loop, and SIGTERM with it."""
    sock, path = dgram
    n = Notifier({"NOTIFY_SOCKET": path})
    results: list[bool] = []

    def flood() -> None:
        results.extend(n.notify(f"STATUS=pass {k}") for k in range(2000))

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    wait_until(lambda: not thread.is_alive(), 30, "2000 notifications sent or dropped")
    assert results[0] is True and results[-1] is False   # queued at first, dropped once full
    assert sock.recv(4096) == b"STATUS=pass 0"
    n.close()


def test_notify_without_systemd_is_a_no_op(tmp_path):
    assert not Notifier({}).notify("READY=1")
    assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody")}).notify("READY=1")


@pytest.mark.parametrize("env, expected", [
    ({"WATCHDOG_USEC": "60000000"}, 30.0),
    ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
    ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}, None),   # meant for another process
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "x"}, None),
    ({}, None),
])
def test_watchdog_interval(env, expected):
    assert watchdog_interval(env) == expected


def test_syslog_priorities():
    assert [syslog_priority(lv) for lv in (10, 20, 30, 40, 50)] == [7, 6, 4, 3, 2]


def test_priority_prefix_on_every_line():
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "a\nb", None, None)
    assert PriorityPrefixFormatter("%(message)s").format(record) == "<4>a\n<4>b"


def test_journal_stream_must_be_stderr(tmp_path, monkeypatch):
    with open(tmp_path / "stream", "w") as f:
        monkeypatch.setattr(sys, "stderr", f)
        st = os.fstat(f.fileno())
        assert journal_stream_is_stderr({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not journal_stream_is_stderr({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
        assert not journal_stream_is_stderr({})


def parse_entry(data: bytes) -> dict[str, str]:
    """journald's native format: NAME=value lines, or NAME\\n<u64 le length><bytes>\\n."""
    fields = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            name, _, value = line.partition(b"=")
            i = nl + 1
        else:
            name = line
            (size,) = struct.unpack("<Q", data[nl + 1 : nl + 9])
            value = data[nl + 9 : nl + 9 + size]
            assert data[nl + 9 + size : nl + 10 + size] == b"\n"
            i = nl + 10 + size
        fields[name.decode()] = value.decode()
    return fields


def test_native_journal_entry(dgram):
    sock, path = dgram
    handler = NativeJournalHandler("pyirqbalance", path)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("test-journal")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.error("IRQ %d:\nsecond line", 24)
        fields = parse_entry(sock.recv(65536))
    finally:
        log.removeHandler(handler)
        handler.close()
    assert fields["MESSAGE"] == "IRQ 24:\nsecond line"
    assert fields["PRIORITY"] == "3" and fields["SYSLOG_IDENTIFIER"] == "pyirqbalance"
    assert fields["LOGGER"] == "test-journal" and fields["CODE_FUNC"] == "test_native_journal_entry"


def test_native_journal_too_big_for_a_datagram_goes_in_a_memfd(dgram):
    sock, path = dgram
    handler = NativeJournalHandler("pyirqbalance", path)
    handler._socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = "x" * 300_000
    record = logging.LogRecord("t", logging.INFO, __file__, 1, big, None, None)
    handler.emit(record)
    fds = array.array("i")
    msg, anc, _, _ = sock.recvmsg(16, socket.CMSG_LEN(fds.itemsize))
    handler.close()
    assert msg == b""
    level, kind, data = anc[0]
    assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
    fds.frombytes(data[: fds.itemsize])
    with os.fdopen(fds[0], "rb") as f:
        fields = parse_entry(os.pread(f.fileno(), 1 << 20, 0))  # journald maps it from 0
    assert fields["MESSAGE"] == big and fields["PRIORITY"] == "6"
