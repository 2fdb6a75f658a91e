"""A live ``python -m pyirqbalance`` on a fake machine, for attacking it from outside.

:class:`LiveDaemon` builds the a_desktop4 machine with mkfake, starts a thread
that plays the kernel (counters advance every 0.25 s, the daemon's
smp_affinity writes are taken as the kernel takes them), writes a YAML
configuration (history, API on an ephemeral loopback port, metrics) and
starts the daemon in the foreground with its log in a file. Helpers read
the pass counter from ``/metrics``, call the API and the control socket,
and check the log for tracebacks. Everything is stopped at teardown.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyirqbalance.kernel.sysroot import SysRoot
from tests.conftest import MACHINES, CounterSimulator, load_machine
from tests.controlsocket import ask as ask_control
from tests.hermetic import pyirqbalance_argv
from tests.oracle import mkfake

ROOT = Path(__file__).resolve().parents[2]
MACHINE = MACHINES / "a_desktop4.json"
#: Generous: a busy 2-core machine shared with other test runs.
DEADLINE = 20.0


def wait_for(predicate: Callable[[], Any], timeout: float = DEADLINE, step: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something true; that value, or None at the deadline."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > end:
            return value
        time.sleep(step)


def unique_seconds(seconds: int) -> str:
    """A ``sleep`` argument no other process on the machine has: ``seconds`` and a fraction
    made of this test process's pid (other runs of this suite may run beside this one, with
    the same scripts)."""
    return f"{seconds}.{os.getpid():07d}"


def sleeping(seconds: str) -> list[str]:
    """The pids of the ``sleep SECONDS`` processes on the machine (``seconds`` from
    :func:`unique_seconds`: this test's own)."""
    out = subprocess.run(["pgrep", "-f", f"(^|/)sleep {re.escape(seconds)}$"],
                         capture_output=True, text=True)
    return out.stdout.split()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env() -> dict[str, str]:
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    for var in ("IRQBALANCE_ONESHOT", "IRQBALANCE_DEBUG", "IRQBALANCE_ARGS", "INVOCATION_ID",
                "NOTIFY_SOCKET", "WATCHDOG_USEC"):
        e.pop(var, None)
    return e


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m pyirqbalance ARGS`` to completion."""
    return subprocess.run(pyirqbalance_argv(*args), capture_output=True,
                          text=True, env=env(), timeout=timeout)


def one_line_error(out: subprocess.CompletedProcess | str) -> str:
    """The single stderr line of a refused start (fails the test otherwise)."""
    text = out if isinstance(out, str) else out.stderr
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text[:2000]
    return lines[0]


def affinities(root: SysRoot) -> dict[int, int]:
    """Every IRQ's smp_affinity in the tree, as a mask.

    The daemon writes the fake file as it writes the kernel's (open with
    O_TRUNC, then write): an empty read in between is read again.
    """
    out = {}
    for name in os.listdir(root.proc("irq")):
        if name.isdigit():
            path = root.proc("irq", name, "smp_affinity")
            text = wait_for(lambda p=path: (root.try_read_text(p) or "?").strip(), 5, 0.01)
            if text and text != "?":
                out[int(name)] = int(text.replace(",", ""), 16)
    return out


class Kernel:
    """Plays the kernel for the fake machine: counters move, writes are taken."""

    def __init__(self, root: SysRoot, machine: mkfake.Machine) -> None:
        self.sim = CounterSimulator(root, machine)
        self.root = root
        #: Edits of /proc/interrupts text after each render (fault injection).
        self.edit: Callable[[str], str] | None = None
        self.frozen = False
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-kernel", daemon=True)

    def start(self) -> None:
        self.step()
        self._thread.start()

    def step(self) -> None:
        with self.lock:
            self.sim.apply_writes()
            if self.frozen:
                return
            self.sim.state.advance(0.25)
            self.sim.render(self.edit)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.step()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=10)


class LiveDaemon:
    """The real daemon process on a fake machine, with history, API and metrics."""

    def __init__(self, base: Path, *, config: str = "", args: tuple[str, ...] = (),
                 api: bool = True) -> None:
        self.base = base
        self.tree = base / "tree"
        self.machine = load_machine(MACHINE)
        mkfake.build_tree(self.machine, str(self.tree), force=True)
        self.root = SysRoot(str(self.tree))
        self.kernel = Kernel(self.root, self.machine)
        self.port = free_port() if api else None
        self.history = base / "history.sqlite"
        self.config = base / "pyirqbalance.yaml"
        self.state_dir = self.tree / "var" / "lib" / "pyirqbalance"
        self.run_dir = self.tree / "run" / "irqbalance"
        sections = ""
        if api:
            sections = (
                f"history:\n  enabled: true\n  path: {self.history}\n  resolution_s: 1\n"
                f"api:\n  enabled: true\n  listen: 127.0.0.1:{self.port}\n"
                "metrics:\n  enabled: true\n"
            )
        self.config.write_text(sections + config)
        self.args = args
        self.log_path = base / "daemon.log"
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    # -- life cycle ------------------------------------------------------

    def start(self, *, wait: bool = True) -> LiveDaemon:
        self.kernel.start()
        self._log = open(self.log_path, "w")  # noqa: SIM115 - the daemon's stderr until stop()
        self.proc = subprocess.Popen(
            [*pyirqbalance_argv(), "--foreground", "--interval=1",
             f"--config={self.config}", f"--sysroot={self.tree}", *self.args],
            stdout=self._log, stderr=subprocess.STDOUT, env=env())
        if wait:
            assert wait_for(lambda: self.passes() >= 1 or self.proc.poll() is not None), self.log()
            assert self.proc.poll() is None, self.log()
        return self

    def stop(self) -> int | None:
        self.kernel.stop()
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    code = self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            code = self.proc.returncode
            self._log.close()
        return code

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    # -- looking at it ---------------------------------------------------

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def assert_clean_log(self) -> None:
        text = self.log()
        assert "Traceback" not in text, text[-4000:]

    def get(self, path: str, timeout: float = DEADLINE) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
                body = resp.read()
                status = resp.status
        except urllib.error.HTTPError as err:
            body, status = err.read(), err.code
        ctype = ""
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace") + ctype

    def health(self) -> dict[str, Any]:
        status, body = self.get("/api/v1/health")
        assert status == 200, body
        return body

    def metric(self, name: str, labels: str = "") -> float | None:
        """One sample of /metrics (``labels`` as printed, e.g. ``condition="cpu_mismatch"``)."""
        try:
            status, text = self.get("/metrics", timeout=10)
        except OSError:
            return None
        if status != 200:
            return None
        want = f"{name}{{{labels}}}" if labels else name
        for line in str(text).splitlines():
            key, _, value = line.rpartition(" ")
            if key == want:
                return float(value)
        return None

    def passes(self) -> int:
        value = self.metric("pyirqbalance_passes_total")
        return int(value) if value is not None else 0

    def assert_balancing(self, more: int = 2) -> None:
        """The pass count grows by ``more`` within the deadline."""
        start = self.passes()
        assert wait_for(lambda: self.passes() >= start + more), (start, self.log()[-3000:])

    def socket_path(self) -> Path:
        assert self.proc is not None
        return self.run_dir / f"irqbalance{self.proc.pid}.sock"

    def ask(self, command: bytes, timeout: float = DEADLINE) -> bytes:
        """One control-socket command as root, with credentials; the whole reply."""
        return ask_control(str(self.socket_path()), command, timeout)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Callable[..., LiveDaemon]]:
    """``live(config=..., args=..., api=True) -> LiveDaemon`` (not started); stopped at teardown."""
    made: list[LiveDaemon] = []

    def make(**kw: Any) -> LiveDaemon:
        d = LiveDaemon(tmp_path / f"d{len(made)}", **kw)
        made.append(d)
        return d

    try:
        yield make
    finally:
        for d in made:
            d.stop()


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the control socket answers uid 0 only")
