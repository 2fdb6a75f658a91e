"""/proc/net/tcp and /proc/net/tcp6: which user owns a TCP socket on this host.

The API lets a loopback peer write without a token when the peer's socket
belongs to uid 0. The kernel's socket table gives that owner: the entry whose
*local* address is the peer's address and port is the peer's own socket, and
its ``uid`` column is the socket's owner (``sock_i_uid``).

This table is always the **host's** (the daemon's network namespace), also
under ``--sysroot``: a captured or fake machine tree has no network of its
own, and the peer that connected to the daemon is a process on this host.
:func:`read_tcp_owner` therefore reads through ``SysRoot("/")`` on purpose;
nothing else in pyirqbalance reads the host's /proc while a sysroot is set.

Row format (``net/ipv4/tcp_ipv4.c`` ``get_tcp4_sock``, ``tcp6_seq_show``)::

    sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid ...
     0: 0100007F:23E7 0100007F:9C4A 01 00000000:00000000 00:00000000 00000000     0 ...

Addresses are the in-memory ``__be32`` words printed with ``%08X`` (so each
32-bit word appears byte-swapped on a little-endian host), ports ``%04X``.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
from typing import NamedTuple

from .sysroot import SysRoot

__all__ = ["CONNECTED_STATES", "TCP_ESTABLISHED", "TcpSocket", "diag_owner", "find_owner",
           "loopback_peer",
           "owner_in_tables", "parse_tcp_table", "read_tcp_owner", "read_tcp_tables",
           "rows_with_port"]

TCP_ESTABLISHED = 1
#: States of a peer socket still owned by its process (include/net/tcp_states.h):
#: ESTABLISHED, FIN_WAIT1, FIN_WAIT2 (the peer half-closed after sending its
#: request), CLOSE_WAIT, LAST_ACK, CLOSING. Not TIME_WAIT, whose rows show uid 0.
CONNECTED_STATES = frozenset({1, 4, 5, 8, 9, 11})

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TcpSocket(NamedTuple):
    local: tuple[Address, int]
    remote: tuple[Address, int]
    state: int
    uid: int


def _address(text: str, byteorder: str) -> tuple[Address, int]:
    host, _, port = text.partition(":")
    if len(host) not in (8, 32) or len(port) != 4:
        raise ValueError(f"not an address:port field: {text[:64]!r}")
    raw = b"".join(int(host[k:k + 8], 16).to_bytes(4, byteorder)  # type: ignore[arg-type]
                   for k in range(0, len(host), 8))
    ip: Address = ipaddress.IPv4Address(raw) if len(raw) == 4 else ipaddress.IPv6Address(raw)
    return ip, int(port, 16)


def parse_tcp_table(text: str, byteorder: str = sys.byteorder) -> tuple[TcpSocket, ...]:
    """Rows of /proc/net/tcp or /proc/net/tcp6; lines of another shape are skipped."""
    out = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            out.append(TcpSocket(_address(fields[1], byteorder), _address(fields[2], byteorder),
                                 int(fields[3], 16), int(fields[7], 10)))
        except ValueError:
            continue
    return tuple(out)


def rows_with_port(text: str, port: int) -> str:
    """The table's header and the rows that show ``port`` (as ``:%04X`` before a blank).

    A busy host lists thousands of sockets; building addresses for every row
    took tens of milliseconds of the API's I/O thread. The rows left include
    every row whose local port is ``port``, so :func:`find_owner` answers the
    same on them as on the whole table.
    """
    needle = f":{port:04X} "
    lines = text.split("\n")
    return "\n".join([lines[0], *(line for line in lines[1:] if needle in line)])


def _plain(ip: Address) -> Address:
    """``::ffff:127.0.0.1`` -> ``127.0.0.1`` (a v4 peer of a dual-stack listener)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def find_owner(tables: tuple[TcpSocket, ...], peer: tuple[str, int],
               server_port: int) -> int | None:
    """uid of the socket at ``peer`` connected to our ``server_port`` (also half-closed)."""
    want = _plain(ipaddress.ip_address(peer[0]))
    for s in tables:
        if (s.state in CONNECTED_STATES and s.local[1] == peer[1] and s.remote[1] == server_port
                and _plain(s.local[0]) == want):
            return s.uid
    return None


def loopback_peer(peer_host: str) -> Address | None:
    """The peer's address when it is a loopback one (its socket is on this host), else None."""
    try:
        ip = _plain(ipaddress.ip_address(peer_host.split("%", 1)[0]))
    except ValueError:
        return None
    return ip if ip.is_loopback else None


def read_tcp_tables() -> tuple[str, ...]:
    """The text of the host's /proc/net/tcp and /proc/net/tcp6 (those that can be read)."""
    host = SysRoot("/")
    texts = (host.try_read_text(host.proc("net", name)) for name in ("tcp", "tcp6"))
    return tuple(text for text in texts if text is not None)


def owner_in_tables(tables: tuple[str, ...], peer_host: str, peer_port: int,
                    server_port: int) -> int | None:
    """:func:`read_tcp_owner` on tables read before (:func:`read_tcp_tables`)."""
    ip = loopback_peer(peer_host)
    if ip is None:
        return None
    for text in tables:
        uid = find_owner(parse_tcp_table(rows_with_port(text, peer_port)), (str(ip), peer_port),
                         server_port)
        if uid is not None:
            return uid
    return None


def read_tcp_owner(peer_host: str, peer_port: int, server_port: int) -> int | None:
    """Owner uid of the peer's socket of a loopback connection, None if not found.

    Reads the host's socket tables (see the module docstring for why not the
    sysroot's). Non-loopback peers give None: their sockets are not on this host.
    """
    if loopback_peer(peer_host) is None:
        return None
    return owner_in_tables(read_tcp_tables(), peer_host, peer_port, server_port)


# sock_diag (include/uapi/linux/sock_diag.h, inet_diag.h): one socket looked up by its
# addresses and ports, instead of the whole table (net/ipv4/inet_diag.c
# inet_diag_find_one_icsk).
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLMSG_ERROR = 2
_NLM_F_REQUEST = 1
_NOCOOKIE = 0xFFFFFFFF
#: struct inet_diag_msg: family, state, timer, retrans, the 48-byte sockid, then
#: expires, rqueue, wqueue, uid, inode.
_DIAG_MSG = struct.Struct("=BBBB48sIIIII")


def diag_owner(peer_host: str, peer_port: int, server_host: str,
               server_port: int) -> int | None:
    """Owner uid of the loopback peer's socket connected to ``server_host:server_port``.

    Asks the kernel for that one socket (sock_diag netlink), which takes
    microseconds where reading /proc/net/tcp takes milliseconds on a busy host.
    None when the kernel cannot answer (no sock_diag, no such socket) or the
    socket is not in a connected state: then :func:`read_tcp_owner` is the way.
    """
    peer, server = loopback_peer(peer_host), _address_of(server_host)
    if peer is None or server is None or peer.version != server.version:
        return None
    family = socket.AF_INET if peer.version == 4 else socket.AF_INET6
    sockid = (struct.pack("!HH", peer_port, server_port) + peer.packed.ljust(16, b"\0")
              + server.packed.ljust(16, b"\0") + struct.pack("=III", 0, _NOCOOKIE, _NOCOOKIE))
    req = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sockid
    msg = struct.pack("=IHHII", 16 + len(req), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0) + req
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
            nl.sendto(msg, (0, 0))
            data = nl.recv(4096, socket.MSG_DONTWAIT)  # answered while the request was sent
    except OSError:
        return None
    if len(data) < 16 + _DIAG_MSG.size:
        return None
    kind = struct.unpack_from("=H", data, 4)[0]
    if kind != _SOCK_DIAG_BY_FAMILY:
        return None
    _, state, _, _, got, _, _, _, uid, _ = _DIAG_MSG.unpack_from(data, 16)
    if state not in CONNECTED_STATES or got[:4] != sockid[:4]:
        return None
    return int(uid)


def _address_of(host: str) -> Address | None:
    try:
        return _plain(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        return None
