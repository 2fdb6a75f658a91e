"""kernel/procnet: the socket table's rows, and who owns a loopback peer's socket."""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

from pyirqbalance.api.server import _peer_of
from pyirqbalance.kernel.procnet import find_owner, parse_tcp_table, read_tcp_owner
from pyirqbalance.service.originals import irq_key

HEAD = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
        "timeout inode\n")
# 127.0.0.1:50000 -> 127.0.0.1:9199, established, uid 1000; the listener (0A), uid 0.
# x86 prints each __be32 word with %08X: 127.0.0.1 reads 0100007F. Ports: 9199 = 0x23EF,
# 50000 = 0xC350.
TCP = HEAD + (
    "   0: 0100007F:23EF 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0"
    "        0 1 1 0 100 0 0 10 0\n"
    "   1: 0100007F:C350 0100007F:23EF 01 00000000:00000000 00:00000000 00000000  1000"
    "        0 2 1 0 20 4 30 10 -1\n"
    "   2: garbage\n"
)
# ::1 port 50001 (0xC351) -> ::1 port 9199, uid 0; ::ffff:127.0.0.1 port 50002, uid 65534.
TCP6 = HEAD + (
    "   0: 00000000000000000000000001000000:C351 00000000000000000000000001000000:23EF 01 "
    "00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1\n"
    "   1: 0000000000000000FFFF00000100007F:C352 0000000000000000FFFF00000100007F:23EF 01 "
    "00000000:00000000 00:00000000 00000000 65534        0 4 1 0 20 4 30 10 -1\n"
)


def test_parse_rows_little_endian():
    rows = parse_tcp_table(TCP, "little")
    assert len(rows) == 2                      # the garbage line is skipped
    assert rows[1].local == (ipaddress.ip_address("127.0.0.1"), 50000)
    assert rows[1].remote == (ipaddress.ip_address("127.0.0.1"), 9199)
    assert (rows[0].state, rows[0].uid, rows[1].state, rows[1].uid) == (0x0A, 0, 1, 1000)
    rows6 = parse_tcp_table(TCP6, "little")
    assert rows6[0].local == (ipaddress.ip_address("::1"), 50001)
    assert rows6[1].local[0] == ipaddress.ip_address("::ffff:127.0.0.1")


def test_parse_big_endian_words():
    text = HEAD + ("   0: 7F000001:C350 7F000001:23EF 01 00000000:00000000 00:00000000 00000000"
                   "     7        0 2 1 0 20 4 30 10 -1\n")
    assert parse_tcp_table(text, "big")[0].local == (ipaddress.ip_address("127.0.0.1"), 50000)


def test_find_owner_matches_the_peer_side():
    rows = parse_tcp_table(TCP, "little") + parse_tcp_table(TCP6, "little")
    assert find_owner(rows, ("127.0.0.1", 50000), 9199) == 1000
    assert find_owner(rows, ("127.0.0.1", 50000), 9200) is None     # another server
    assert find_owner(rows, ("127.0.0.1", 9199), 0) is None          # the listener is not a peer
    assert find_owner(rows, ("::1", 50001), 9199) == 0
    # A v4 peer of a dual-stack listener shows as ::ffff:127.0.0.1 on either side.
    assert find_owner(rows, ("127.0.0.1", 50002), 9199) == 65534
    assert find_owner(rows, ("::ffff:127.0.0.1", 50000), 9199) == 1000


def test_read_tcp_owner_of_a_real_loopback_connection():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname()):
            conn, peer = server.accept()
            with conn:
                assert read_tcp_owner(peer[0], peer[1], server.getsockname()[1]) == os.geteuid()
    assert read_tcp_owner("192.0.2.1", 1, 2) is None            # not loopback: not ours to ask
    assert read_tcp_owner("not an address", 1, 2) is None


def test_unix_peer_credentials():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        assert _peer_of(a).uid == os.geteuid()
    with socket.socket() as tcp:
        assert _peer_of(tcp).uid is None


@pytest.mark.parametrize("text", ["\u0661\u0662\u0662", "\uff11\uff12\uff12", "+122", "1_22",
                                  " 122", "122 ", "", "12345678901"])
def test_restore_file_keys_are_ascii_digits(text):
    with pytest.raises(ValueError):
        irq_key(text)


def test_restore_file_key():
    assert irq_key("122") == 122
