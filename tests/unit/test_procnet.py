"""kernel/procnet: the socket table's rows, and who owns a loopback peer's socket."""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

from pyirqbalance.api.server import _peer_of
from pyirqbalance.kernel.procnet import find_owner, parse_tcp_table, read_tcp_owner, rows_with_port
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


def test_rows_with_port_keeps_what_find_owner_needs():
    # Only the rows showing the peer's port are parsed: the owner found must be the
    # one the whole table gives, for every port in it (local or remote side).
    rows = [f"  {i}: 0100007F:{p:04X} 0100007F:{q:04X} 01 00000000:00000000 00:00000000 "
            f"00000000 {1000 + i:5d}        0 {i} 1 0 20 4 30 10 -1\n"
            for i, (p, q) in enumerate([(50000, 9199), (9199, 50000), (50010, 9199),
                                        (50000, 9200), (60000, 50010), (0xC35, 9199)])]
    table = HEAD + "".join(rows) + TCP.split("\n", 1)[1]
    whole = parse_tcp_table(table, "little")
    for port in (50000, 50010, 9199, 60000, 0xC35, 0xC350, 12345):
        kept = parse_tcp_table(rows_with_port(table, port), "little")
        assert len(kept) < len(whole)
        for server in (9199, 9200, 50000):
            assert (find_owner(kept, ("127.0.0.1", port), server)
                    == find_owner(whole, ("127.0.0.1", port), server))
    assert find_owner(parse_tcp_table(rows_with_port(table, 50010), "little"),
                      ("127.0.0.1", 50010), 9199) == 1002
    assert find_owner(parse_tcp_table(rows_with_port(TCP6, 50002), "little"),
                      ("::ffff:127.0.0.1", 50002), 9199) == 65534


def test_a_burst_of_new_connections_reads_the_socket_tables_once():
    from types import SimpleNamespace

    from pyirqbalance.api.gate import TABLE_REUSE, SocketTables, client_of

    now = [100.0]
    reads: list[float] = []
    tables = [TCP]

    def read() -> tuple[str, ...]:
        reads.append(now[0])
        return (tables[0], TCP6)

    shared = SocketTables(read, lambda: now[0])

    def channel(port: int, accepted: float | None) -> SimpleNamespace:
        return SimpleNamespace(addr=("127.0.0.1", port), peer=None, accepted=accepted,
                               server=SimpleNamespace(effective_port=9199))

    # Accepted before the first read: one read answers both (50002 is in tcp6, v4-mapped).
    assert client_of(channel(50000, 99.0), shared) == ("uid", 1000)
    assert client_of(channel(50002, 99.5), shared) == ("uid", 65534)
    assert reads == [100.0]
    # Accepted after that read: its peer may not be in it, so it reads again.
    now[0] = 100.5
    assert client_of(channel(50000, 100.2), shared) == ("uid", 1000)
    assert reads == [100.0, 100.5]
    # A peer the last table does not list is read afresh (it may have connected since).
    tables[0] = TCP.replace("C350 0100007F:23EF 01", "C353 0100007F:23EF 01")
    assert client_of(channel(50003, 99.0), shared) == ("uid", 1000)
    assert reads == [100.0, 100.5, 100.5]
    tables[0] = TCP
    # An old table is not used; nor is it for a channel of unknown accept time.
    now[0] = 100.5 + TABLE_REUSE
    assert client_of(channel(50000, 100.0), shared) == ("uid", 1000)
    assert client_of(channel(50000, None), shared) == ("uid", 1000)
    assert len(reads) == 5
    # Peers that are not on this host never make it read.
    remote = SimpleNamespace(addr=("192.0.2.1", 50000), peer=None, accepted=99.0,
                             server=SimpleNamespace(effective_port=9199))
    assert client_of(remote, shared) == ("addr", "192.0.2.1")
    assert len(reads) == 5


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user")
@pytest.mark.parametrize(("family", "listen", "connect"), [
    (socket.AF_INET, "127.0.0.1", "127.0.0.1"),
    (socket.AF_INET6, "::1", "::1"),
    (socket.AF_INET6, "::", "127.0.0.1"),     # a v4 peer of a dual-stack listener
])
def test_the_kernel_names_the_owner_the_socket_table_shows(family, listen, connect):
    import shutil
    import subprocess

    from pyirqbalance.kernel.procnet import diag_owner

    # The system's interpreter: nobody may not enter the checkout (or its venv).
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.skip("no /usr/bin/python3 to run a client as nobody")
    try:
        socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 4).close()   # NETLINK_SOCK_DIAG
    except OSError:
        pytest.skip("no sock_diag netlink here")

    with socket.socket(family) as server:
        if listen == "::":
            server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        server.bind((listen, 0))
        server.listen()
        port = server.getsockname()[1]
        # A client owned by nobody (65534): the uid read must be the socket's, not ours.
        client = subprocess.Popen(
            [python, "-I", "-c", "import socket, sys; s = socket.create_connection("
             f"({connect!r}, {port})); sys.stdout.write('x'); sys.stdout.flush(); "
             "sys.stdin.read()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, user=65534, cwd="/")
        try:
            assert client.stdout is not None and client.stdout.read(1) == b"x"
            conn, peer = server.accept()
            with conn:
                here = conn.getsockname()[0]
                table = read_tcp_owner(peer[0], peer[1], port)
                assert table == 65534
                assert diag_owner(peer[0], peer[1], here, port) == table
                assert diag_owner(peer[0], peer[1] ^ 1, here, port) is None   # no such socket
                assert diag_owner(peer[0], peer[1], here, port ^ 1) is None
        finally:
            assert client.stdin is not None
            client.stdin.close()
            client.wait(timeout=60)
    assert diag_owner("192.0.2.1", 1, "127.0.0.1", 2) is None   # not loopback: not ours to ask
