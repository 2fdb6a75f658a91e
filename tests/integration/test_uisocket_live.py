"""The control socket served live: a client speaking irqbalance-ui's protocol.

Every exchange goes through a real AF_UNIX socket with explicit
SCM_CREDENTIALS, as irqbalance-ui sends them. Expected replies are the real
irqbalance 1.9.2's (tests/fixtures/uisocket, tools/capture_ui_replies.py).
The misbehaving-client tests assert what must still work while a client
misbehaves (another client is answered), never how long anything takes.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from pyirqbalance.api.uisocket import (
    ABSTRACT_ADDRESS,
    RECV_SIZE,
    ControlSocket,
    ControlSocketError,
    SetupState,
    format_stats,
)
from pyirqbalance.engine.balancer import Balancer
from pyirqbalance.engine.model import BalancerSettings
from tests.oracle import mkfake
from tests.oracle.kernfs import KernfsSysRoot

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: uid 0 is the only sender the socket accepts"
)

FIXTURE = Path(__file__).parent.parent / "fixtures" / "uisocket" / "irqbalance-1.9.2-a_desktop4"
CAPTURE = json.loads((FIXTURE / "capture.json").read_text())
PID = 4242


def request(address: str | bytes, message: bytes, *, uid: int = 0, timeout: float = 30.0) -> bytes:
    """irqbalance-ui's exchange: connect, sendmsg with credentials, read until EOF."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(address)
        creds = struct.pack("=iII", os.getpid(), uid, os.getgid())
        s.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)])
        return read_all(s)


def read_all(s: socket.socket) -> bytes:
    chunks = []
    while data := s.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


class FakeTarget:
    """A daemon stand-in: fixed stats bytes, setup state changed by the settings calls."""

    def __init__(
        self, stats: bytes = b"", interval: int = 5, banned: tuple[int, ...] = (9,)
    ) -> None:
        self.stats = stats
        self.state = SetupState(interval, banned, 0)
        self.calls: list[tuple[str, object]] = []
        self.stats_requests = 0

    def control_stats(self) -> bytes:
        self.stats_requests += 1
        return self.stats

    def control_setup(self) -> SetupState:
        return self.state

    def control_set_interval(self, seconds: int) -> None:
        self.calls.append(("sleep", seconds))
        self.state = dataclasses.replace(self.state, interval=seconds)

    def control_ban_irqs(self, irqs: tuple[int, ...]) -> None:
        self.calls.append(("ban irqs", irqs))
        self.state = dataclasses.replace(self.state, banned_irqs=irqs)

    def control_ban_cpus(self, cpulist: str | None) -> None:
        self.calls.append(("cpus", cpulist))


@pytest.fixture
def serve(tmp_path: Path):
    """``serve(target, **kw) -> ControlSocket`` started in a tmp run dir, stopped at teardown."""
    started: list[ControlSocket] = []

    def start(target: object, **kw: object) -> ControlSocket:
        server = ControlSocket(target, run_dir=str(tmp_path), pid=PID, **kw)  # type: ignore
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def in_child(fn: Callable[[], bytes]) -> tuple[int, bytes]:
    """Run ``fn`` in a forked child; (wait status, what it returned)."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(rfd)
        try:
            out = fn()
        except BaseException as err:  # report, never return into pytest
            out = b"EXC " + repr(err).encode()
        os.write(wfd, out)
        os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as r:
        out = r.read()
    _, status = os.waitpid(pid, 0)
    return status, out


# ----------------------------------------------------------------------
# address, replies, settings
# ----------------------------------------------------------------------


def test_file_socket_path_and_unlink_on_stop(tmp_path: Path) -> None:
    server = ControlSocket(FakeTarget(), run_dir=str(tmp_path), pid=PID)
    server.start()
    path = tmp_path / f"irqbalance{PID}.sock"
    assert server.address == str(path)
    assert path.is_socket()
    server.stop()
    assert not path.exists()
    with pytest.raises(FileNotFoundError):
        request(str(path), b"setup")


def test_setup_reply_is_byte_exact(serve) -> None:
    server = serve(FakeTarget(interval=5, banned=(9,)))
    expected = CAPTURE["steps"][0]["setup"].encode()
    assert expected == b"SLEEP 5 IRQ 9 LOAD 0 DIFF 0 CLASS 0 BANNED 00000000"
    assert request(server.address, b"setup") == expected


def test_stats_reply_is_what_the_target_gives(serve) -> None:
    stats = CAPTURE["steps"][1]["stats"].encode()
    server = serve(FakeTarget(stats=stats))
    assert request(server.address, b"stats") == stats
    assert request(server.address, b"statsANDMORE") == stats


def test_captured_settings_script_replayed_live(serve) -> None:
    target = FakeTarget(interval=5, banned=(9,))
    server = serve(target)
    replayed = 0
    for step in CAPTURE["steps"]:
        if "send" not in step or "uid" in step:
            continue
        assert request(server.address, step["send"].encode()) == b""
        assert request(server.address, b"setup").decode() == step["setup"], step["send"]
        replayed += 1
    assert replayed == 20
    assert ("cpus", "1") in target.calls
    assert ("cpus", None) in target.calls
    assert target.calls[-2:] == [("cpus", "1,3,NULL"), ("sleep", 2)]


def test_unknown_message_closed_without_reply(serve) -> None:
    target = FakeTarget()
    server = serve(target)
    assert request(server.address, b"hello") == b""
    assert request(server.address, b"settings sleep 0") == b""
    assert target.calls == []


# ----------------------------------------------------------------------
# credentials
# ----------------------------------------------------------------------


def test_non_root_sender_is_refused(serve, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pyirqbalance")
    target = FakeTarget(stats=b"TYPE 3 NUMBER -1 LOAD 0 SAVE_MODE 0 ")
    server = serve(target)

    def as_nobody() -> bytes:
        # connect as root (the socket file is root's), then drop to nobody: the
        # kernel attaches the credentials of the sender at send time
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(server.address)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            creds = struct.pack("=iII", os.getpid(), 65534, 65534)
            s.sendmsg([b"stats"], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)])
            return b"REPLY " + read_all(s)

    status, out = in_child(as_nobody)
    assert os.WIFEXITED(status) and out == b"REPLY "
    assert target.stats_requests == 0
    assert "Permission denied for user to connect to socket." in caplog.messages
    # the same message from root is answered
    assert request(server.address, b"stats") == target.stats


def test_implicit_credentials_of_root_are_accepted(serve) -> None:
    # SO_PASSCRED on the listener: the kernel attaches credentials even when the
    # client sends none (irqbalance behaves the same)
    server = serve(FakeTarget(interval=7, banned=()))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(server.address)
        s.sendall(b"setup")
        assert read_all(s) == b"SLEEP 7 BANNED 00000000"


# ----------------------------------------------------------------------
# misbehaving clients never stall the server
# ----------------------------------------------------------------------


def test_silent_client_does_not_block_others_and_is_closed(serve, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="pyirqbalance")
    target = FakeTarget(interval=5, banned=())
    # Long enough that the two requests below, each also a client with this timeout, are
    # never cut off on a busy machine (connect to sendmsg); the silent one still times out.
    server = serve(target, timeout=5.0)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.settimeout(30)
        silent.connect(server.address)
        assert request(server.address, b"settings sleep 3") == b""
        assert request(server.address, b"setup") == b"SLEEP 3 BANNED 00000000"
        # the server gives up on the silent client: EOF, no reply
        assert silent.recv(100) == b""
    assert any("timed out" in m for m in caplog.messages)


def test_command_of_exactly_recv_size_is_too_long(serve, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="pyirqbalance")
    target = FakeTarget(stats=b"TYPE 3 NUMBER -1 LOAD 0 SAVE_MODE 0 ")
    server = serve(target)
    # one byte less is still a command (prefix matching)
    assert request(server.address, b"stats".ljust(RECV_SIZE - 1, b" ")) == target.stats
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(server.address)
        creds = struct.pack("=iII", os.getpid(), 0, 0)
        message = b"stats".ljust(RECV_SIZE, b"x")
        s.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)])
        try:
            reply = read_all(s)
        except ConnectionResetError:  # closed with our bytes unread
            reply = b""
    assert reply == b""
    assert target.stats_requests == 1
    assert "Received command too long." in caplog.messages
    assert request(server.address, b"stats") == target.stats


def test_garbage_flood_then_others_are_served(serve) -> None:
    target = FakeTarget(interval=5, banned=())
    server = serve(target)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(server.address)
        try:
            s.sendall(os.urandom(256 * 1024))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed after its one read
    assert request(server.address, b"setup") == b"SLEEP 5 BANNED 00000000"
    assert target.calls == []


def test_client_gone_mid_reply(serve, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="pyirqbalance")
    # far more than the socket buffers hold, so the server is mid-reply
    big = b"TYPE 0 NUMBER 0 LOAD 0 SAVE_MODE 0 " * 250_000
    target = FakeTarget(stats=big, interval=5, banned=())
    server = serve(target)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(server.address)
        creds = struct.pack("=iII", os.getpid(), 0, 0)
        s.sendmsg([b"stats"], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)])
        assert s.recv(5) == b"TYPE "
    assert request(server.address, b"setup") == b"SLEEP 5 BANNED 00000000"
    assert any("went away mid-reply" in m for m in caplog.messages)
    assert request(server.address, b"stats") == big


def test_sigpipe_default_disposition_does_not_kill_the_server(tmp_path: Path) -> None:
    """With SIGPIPE at SIG_DFL (Python ignores it by default) a vanished client is harmless."""

    def scenario() -> bytes:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        target = FakeTarget(stats=b"x" * 4_000_000, interval=5, banned=())
        with ControlSocket(target, run_dir=str(tmp_path), pid=PID) as server:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(server.address)
                s.sendall(b"stats")
                s.recv(1)
            return request(server.address, b"setup")

    status, out = in_child(scenario)
    assert os.WIFEXITED(status), f"child killed by signal {os.WTERMSIG(status)}"
    assert out == b"SLEEP 5 BANNED 00000000"


def test_several_clients_at_once(serve) -> None:
    stats = CAPTURE["steps"][2]["stats"].encode()
    server = serve(FakeTarget(stats=stats, interval=5, banned=(9,)))
    socks = []
    creds = struct.pack("=iII", os.getpid(), 0, 0)
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(server.address)
        socks.append(s)
    for i, s in enumerate(socks):
        message = b"stats" if i % 2 else b"setup"
        s.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)])
    replies = []
    for s in reversed(socks):
        replies.append(read_all(s))
        s.close()
    replies.reverse()
    setup = CAPTURE["steps"][0]["setup"].encode()
    assert replies == [stats if i % 2 else setup for i in range(20)]


def test_many_threads_hammering(serve) -> None:
    target = FakeTarget(interval=5, banned=())
    server = serve(target)
    results: list[bytes] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            reply = request(server.address, b"setup")
            with lock:
                results.append(reply)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [b"SLEEP 5 BANNED 00000000"] * 80


# ----------------------------------------------------------------------
# abstract fallback (in a private network namespace: abstract names are per netns)
# ----------------------------------------------------------------------

CLONE_NEWNET = 0x40000000


def _private_netns() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")


def test_abstract_fallback_and_bail_out(tmp_path: Path) -> None:
    def scenario() -> bytes:
        _private_netns()
        missing = str(tmp_path / "no-such-dir")
        target = FakeTarget(interval=4, banned=(1,))
        with ControlSocket(target, run_dir=missing, pid=PID) as server:
            assert server.address == ABSTRACT_ADDRESS
            reply = request(ABSTRACT_ADDRESS, b"setup")
            # a second instance finds the abstract name taken: irqbalance exits 1
            try:
                ControlSocket(FakeTarget(), run_dir=missing, pid=PID + 1).start()
            except ControlSocketError as err:
                return reply + b" | " + str(err.strerror).encode()
        return b"second instance started"

    status, out = in_child(scenario)
    assert os.WIFEXITED(status)
    assert out == (
        b"SLEEP 4 IRQ 1 LOAD 0 DIFF 0 CLASS 0 BANNED 00000000"
        b" | Daemon couldn't be bound to the abstract socket, bailing out."
    )


# ----------------------------------------------------------------------
# the engine's tree, byte for byte against the real irqbalance
# ----------------------------------------------------------------------


class BalancerTarget(FakeTarget):
    """What the daemon does for ``stats``: the balancer's tree under its lock."""

    def __init__(self, balancer) -> None:
        super().__init__()
        self.balancer = balancer

    def control_stats(self) -> bytes:
        with self.balancer.lock:
            return format_stats(self.balancer.nodes)


def _records(stats: str) -> tuple[list[str], list[str]]:
    """(object records in order, sorted IRQ records): same tree, same IRQ records."""
    objects, irqs = [], []
    fields = stats.split(" ")
    for i in range(0, len(fields) - 1, 8):
        rec = " ".join(fields[i : i + 8])
        (objects if rec.startswith("TYPE") else irqs).append(rec)
    return objects, sorted(irqs)


def test_stats_of_the_engine_match_real_irqbalance(serve, tmp_path: Path) -> None:
    machine = mkfake.load_machine(str(FIXTURE / "a_desktop4.json"))
    tree = tmp_path / "tree"
    mkfake.build_tree(machine, str(tree))
    # irqbalance ran with --interval=5 --banirq=9 on this tree, /proc static
    settings = BalancerSettings(banned_irqs=(9,))
    balancer = Balancer(KernfsSysRoot(str(tree)), settings)
    balancer.start()
    server = serve(BalancerTarget(balancer))

    passes = [s for s in CAPTURE["steps"] if "after_pass" in s]
    assert [s["after_pass"] for s in passes] == [0, 1, 2, 3]
    assert request(server.address, b"stats").decode() == passes[0]["stats"]
    balancer.run_pass()
    assert request(server.address, b"stats").decode() == passes[1]["stats"]
    balancer.run_pass()
    assert request(server.address, b"stats").decode() == passes[2]["stats"]

    # the captured script left: ban irqs 130 (replacing --banirq=9), cpus 1,3,NULL
    balancer.update_settings(
        settings._replace(banned_irqs=(130,), socket_banned_cpulist="1,3,NULL")
    )
    balancer.force_rescan()
    report = balancer.run_pass()
    assert report.rescanned
    got = request(server.address, b"stats").decode()
    # After a rebuild, irqbalance orders same-class IRQs by heap address (``sort_irqs``
    # in classify.c), which no reimplementation reproduces: the objects, their loads and
    # the IRQ records must agree; which ethernet queue sits on which CPU may not.
    assert _records(got) == _records(passes[3]["stats"])
    assert balancer.banned_cpus == 0b1010


# ----------------------------------------------------------------------
# Debian's irqbalance-ui against pyirqbalance's listener, on a tmux screen
# ----------------------------------------------------------------------

IRQBALANCE_UI = "/usr/sbin/irqbalance-ui"


def _wait_screen(tmux: list[str], wanted: str, limit_s: float = 60.0) -> str:
    """capture-pane until ``wanted`` shows (the UI polls the socket every few seconds)."""
    import subprocess
    import time

    deadline = time.monotonic() + limit_s
    while True:
        screen = subprocess.run(
            [*tmux, "capture-pane", "-p"], capture_output=True, text=True
        ).stdout
        if wanted in screen or time.monotonic() > deadline:
            return screen
        time.sleep(0.2)


def ui_demo() -> None:
    """Inside a private mount namespace: tmpfs on /run, listener at the real path, the UI in tmux.

    Prints the tree screen, a form feed, then the IRQ setup screen (F5).
    """
    import subprocess

    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run"], check=True)
    os.makedirs("/run/irqbalance")
    stats = CAPTURE["steps"][2]["stats"].encode()
    with ControlSocket(FakeTarget(stats=stats, interval=5, banned=(9,))):
        # irqbalance-ui finds the daemon from argv[1]: /run/irqbalance/irqbalance<PID>.sock
        tmux = ["tmux", "-L", f"uisocket-test-{os.getpid()}"]
        ui = [IRQBALANCE_UI, str(os.getpid())]
        subprocess.run([*tmux, "new-session", "-d", "-x", "100", "-y", "34", *ui], check=True)
        try:
            tree = _wait_screen(tmux, "`--CPU, number 0")
            subprocess.run([*tmux, "send-keys", "F5"], check=True)
            setup = _wait_screen(tmux, "Video")
        finally:
            subprocess.run([*tmux, "kill-server"])
    print(tree + "\f" + setup, end="")


@pytest.mark.skipif(
    not (os.path.exists(IRQBALANCE_UI) and shutil.which("tmux") and shutil.which("unshare")),
    reason="needs Debian's irqbalance-ui, tmux and unshare",
)
def test_irqbalance_ui_displays_the_tree() -> None:
    import subprocess

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        ["unshare", "-m", "--propagation", "private", sys.executable, __file__, "--ui-demo"],
        capture_output=True, text=True, env=env, timeout=180, cwd=str(root),
    )
    assert out.returncode == 0, out.stderr
    tree, setup = out.stdout.split("\f")
    lines = [line.strip() for line in tree.splitlines() if line.strip()]
    # the UI rebuilt the tree of the captured pass-2 stats reply
    cpu3 = lines.index("`--CPU, number 3, CPU mask 0x8")
    assert lines[cpu3 + 1 : cpu3 + 3] == [
        "`IRQ 128, IRQs since last rebalance 0",
        "`IRQ 130, IRQs since last rebalance 0",
    ]
    assert "`--NUMA NODE, number 0, CPU mask 0xf" in lines
    assert "Banned CPU numbers: None" in lines
    rows = {
        line.split()[1]: line.split()
        for line in setup.splitlines()
        if line.strip().startswith("IRQ ")
    }
    assert rows["9"][2] == "YES"  # from the setup reply
    assert rows["128"][2:] == ["NO", "Ethernet", "3"]
    assert rows["132"][2:] == ["NO", "Video", "1"]


if __name__ == "__main__" and sys.argv[1:] == ["--ui-demo"]:
    ui_demo()
