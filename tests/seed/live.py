"""A real ``python -m pyirqbalance --api-listen`` daemon on a fake 2-CPU machine, fed by the
counter simulator, for the seed clients and the hostile-input tests.

The simulator runs in a thread of the test process: every 0.25 s it takes what was written
to smp_affinity (the kernel's rules, as tests/conftest.CounterSimulator applies them) and
lets every IRQ fire its ``rate`` once. The daemon is stopped with SIGTERM at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyirqbalance.kernel.sysroot import SysRoot
from tests.conftest import CounterSimulator
from tests.hermetic import pyirqbalance_argv
from tests.oracle import mkfake
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
MACHINE = ROOT / "tests" / "machines" / "a_desktop4.json"
CLIENTS = Path(__file__).resolve().parent / "clients"
#: How often the simulator fires every IRQ's ``rate``.
TICK_S = 0.25
#: uid/gid of the unprivileged user the clients also run as.
NOBODY = 65534


def two_cpu_machine() -> mkfake.Machine:
    desc = json.loads(MACHINE.read_text())
    desc["name"] = "seed_2cpu"
    desc["topology"]["cores_per_package"] = 2
    return mkfake.Machine(desc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll until ``predicate()`` is truthy (tests/waiting.py), naming it when it never is."""
    return wait_until(predicate, timeout, what=getattr(predicate, "__name__", "the condition"))


class LiveDaemon:
    """The daemon process, its tree, the simulator thread, and HTTP helpers."""

    def __init__(self, base: Path, config: str = "history:\n  resolution_s: 1\n",
                 *extra_args: str) -> None:
        self.tree = base / "tree"
        self.machine = two_cpu_machine()
        mkfake.build_tree(self.machine, str(self.tree), force=True)
        self.root = SysRoot(self.tree)
        self.sim = CounterSimulator(self.root, self.machine)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = base / "pyirqbalance.yaml"
        cfg.write_text(config)
        self.log_path = base / "daemon.log"
        self._log_file = open(self.log_path, "w")  # noqa: SIM115 - the daemon's stderr until close
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.errors: list[BaseException] = []
        #: Simulator ticks done so far (each fires every IRQ's rate once).
        self.ticks = 0
        self._thread = threading.Thread(target=self._simulate, daemon=True)
        self._thread.start()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("IRQBALANCE_", "NOTIFY_", "PYIRQBALANCE_"))
               and k != "INVOCATION_ID"}
        env["PYTHONPATH"] = str(ROOT)
        self.proc = subprocess.Popen(
            [*pyirqbalance_argv(), "--foreground", "--interval=1",
             f"--sysroot={self.tree}", f"--config={cfg}",
             f"--api-listen=127.0.0.1:{self.port}", *extra_args],
            env=env, stdout=subprocess.DEVNULL, stderr=self._log_file)

    def _simulate(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                with self._lock:
                    self.sim.advance(1.0)
                    self.ticks += 1
            except Exception as err:
                self.errors.append(err)

    # -- observing -----------------------------------------------------------

    def log(self) -> str:
        return self.log_path.read_text()

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(self.url + "/api/v1/health", timeout=30) as r:
                return json.loads(r.read())  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return None

    def wait_ready(self, passes: int = 2) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, self.log()
            h = self.health()
            return bool(h and h["cycle"] is not None and h["cycle"] >= passes)
        wait_for(ready, timeout=60)

    def cpu_seconds(self) -> float:
        """CPU time the daemon process has used so far (user + system, all its threads):
        unlike the wall clock, not stretched by other work on a busy machine."""
        with open(f"/proc/{self.proc.pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def cycle(self) -> int:
        h = self.health()
        assert h is not None, self.log()
        return int(h["cycle"])

    def wait_passes(self, n: int) -> None:
        target = self.cycle() + n
        wait_for(lambda: self.cycle() >= target, timeout=30 + 5 * n)

    def affinity_text(self, irq: int) -> str:
        """smp_affinity as the file holds it. The simulator replaces the file whole (rename),
        but a writer of the fake file (the daemon) opens it with O_TRUNC, then writes: a read
        between the two finds it empty, so read again then."""
        path = self.root.proc("irq", str(irq), "smp_affinity")
        return str(wait_for(lambda: self.root.read_text(path).strip(), timeout=10))

    def mask(self, irq: int) -> int:
        return int(self.affinity_text(irq).replace(",", ""), 16)

    def interrupts(self) -> str:
        return self.root.read_text(self.root.proc("interrupts"))

    def request(self, method: str, path: str, data: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def json(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        status, body = self.request(method, path, **kw)
        return status, json.loads(body)

    # -- clients ---------------------------------------------------------------

    def client(self, script: str, *args: str, stdin: str = "", nobody: bool = False,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A client script of tests/seed/clients (stdlib only), as root or as nobody.

        nobody may not be able to enter the checkout (a clone in ``/root`` or in a
        ``mktemp -d`` directory is mode 0700), nor the venv inside it: the script runs
        from a world-readable copy, under an interpreter every user can reach.
        """
        if not nobody:
            argv = [sys.executable, str(CLIENTS / script), *args]
            return run(argv, stdin=stdin, timeout=timeout)
        with tempfile.TemporaryDirectory(prefix="seed-client-", dir=public_tmp()) as tmp:
            os.chmod(tmp, 0o755)
            copy = Path(tmp) / script
            shutil.copyfile(CLIENTS / script, copy)
            os.chmod(copy, 0o644)
            argv = [public_python(), str(copy), *args]
            return run(argv, stdin=stdin, nobody=True, timeout=timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stop.set()
        self._thread.join(timeout=10)
        self._log_file.close()


def reachable_by_anyone(path: str) -> bool:
    """Every directory above ``path`` searchable and ``path`` executable by other users."""
    real = os.path.realpath(path)
    return (os.path.isfile(real) and bool(os.stat(real).st_mode & stat.S_IXOTH)
            and searchable_by_anyone(os.path.dirname(real)))


def searchable_by_anyone(directory: str) -> bool:
    """Every directory from ``directory`` up to / searchable by other users."""
    current = os.path.realpath(directory)
    while True:
        if not os.stat(current).st_mode & stat.S_IXOTH:
            return False
        if current == os.path.dirname(current):
            return True
        current = os.path.dirname(current)


def public_tmp() -> str:
    """$TMPDIR when other users can enter it, else /tmp."""
    tmp = tempfile.gettempdir()
    return tmp if searchable_by_anyone(tmp) else "/tmp"


def public_python() -> str:
    """A Python 3 interpreter nobody can run: this one's binary when other users can reach
    it (a venv in a 0700 checkout, or a pyenv build under /root, they cannot), else the
    system's."""
    for candidate in (sys.executable, os.path.realpath(sys.executable), "/usr/bin/python3",
                      shutil.which("python3") or ""):
        if candidate and reachable_by_anyone(candidate):
            return os.path.realpath(candidate)
    pytest.skip("no Python interpreter other users can run (the clients run as nobody)")


def run(argv: list[str], stdin: str = "", nobody: bool = False,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    if nobody:
        argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": "/"}
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout,
                          env=env, cwd="/")
