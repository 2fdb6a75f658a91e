#!/usr/bin/env python3
"""Capture the real irqbalance's control-socket replies on a fake machine.

Runs ``irqbalance --foreground --debug --interval=N`` on a mkfake tree inside
a private mount namespace (the shared oracle's ``run_irqbalance.setup_mounts``:
tmpfs on /run, fake /proc/interrupts, /proc/stat, /proc/irq, /sys), talks to
``/run/irqbalance/irqbalance<PID>.sock`` from inside that namespace the way
irqbalance-ui does (explicit SCM_CREDENTIALS), and writes what it answered to
``OUTDIR/capture.json`` (plus ``debug.log`` and a copy of the machine JSON).

/proc/stat and /proc/interrupts are served through FIFOs with a static
snapshot, so loads are deterministic and every balancing pass is counted: a
pass may start reading /proc/stat only when this script allows it, and the
replies recorded "after pass k" are taken while irqbalance idles between pass
k and pass k+1 (it serves the socket from its main loop, never mid-pass).

Steps recorded, in order:

1. ``setup`` and ``stats`` after start-up (pass 0) and after each of
   ``--passes`` balancing passes;
2. ``stats`` sent with the credentials of uid 65534 (refused: empty reply);
3. each ``settings ...`` command of :data:`SETTINGS_SCRIPT`, each followed by
   a ``setup`` request (shows how irqbalance parsed it);
4. one more balancing pass, which rescans because of those commands, then
   ``setup`` and ``stats`` again.

Usage (root; needs a directory holding the oracle's ``run_irqbalance.py``, the
harness the recorded fixtures' provenance names)::

    tools/capture_ui_replies.py MACHINE.json OUTDIR --oracle DIR [--interval 5]
        [--passes 2] [-- EXTRA_IRQBALANCE_ARGS]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

#: Commands sent after the plain captures; each is followed by ``setup``.
#: They probe irqbalance's parsing (strtoul, int wrap, prefix rules).
SETTINGS_SCRIPT = [
    "settings sleep 7",
    "settings sleep  9",
    "settings sleep 0",
    "settings sleep -4294967295",
    "settings sleep 4294967298",
    "settings sleep 2147483648",
    "settings sleep 99999999999999999999999",
    "settings sleep +3x",
    "settings ban irqs 5,6",
    "settings ban irqs  NONE",
    "settings ban irqs 9 9 3 -1",
    "settings ban irqs 4294967296 7",
    "settings ban irqs foo",
    "settings ban irqs 12\t13\n",
    "settings ban irqs NONEX",
    "settings cpus 1 3",
    "settings cpus NULL",
    "settings ban irqs 130 0 131",
    "settings cpus 1,3,NULL",
    "settings sleep 2",
]

UCRED = struct.Struct("=iII")


def request(path: str, command: str, timeout: float = 30.0, uid: int | None = None) -> bytes:
    """One irqbalance-ui style exchange: connect, send with credentials, read to EOF.

    With ``uid``, the credentials are those of that user: the process drops to
    it after connecting (the socket file is root's), before sending.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        if uid is not None:
            os.setgid(uid)
            os.setuid(uid)
        creds = UCRED.pack(os.getpid(), os.getuid(), os.getgid())
        s.sendmsg([command.encode()], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)])
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def request_unprivileged(path: str, command: str, uid: int = 65534) -> bytes:
    """``request`` from a child process that drops to ``uid`` before sending."""
    rfd, wfd = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(rfd)
        try:
            reply = request(path, command, uid=uid)
            os.write(wfd, b"OK" + reply)
        except OSError as e:
            os.write(wfd, b"ERR" + str(e).encode())
        os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as r:
        out = r.read()
    os.waitpid(child, 0)
    if not out.startswith(b"OK"):
        raise SystemExit("unprivileged request failed: " + out.decode(errors="replace"))
    return out[2:]


class GatedFifo:
    """Serves one static file through a FIFO; open number n waits until n <= allowed."""

    def __init__(self, path: str, data: bytes, oracle) -> None:
        self.path, self.data, self.oracle = path, data, oracle
        self.served = 0
        self.allowed: float = float("inf")
        self.cond = threading.Condition()
        threading.Thread(target=self._serve, daemon=True).start()

    def allow(self, n: float) -> None:
        with self.cond:
            self.allowed = n
            self.cond.notify_all()

    def wait_served(self, n: int, timeout: float = 120.0) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.served >= n, timeout):
                raise SystemExit(f"irqbalance did not read {self.path} {n} times")

    def _serve(self) -> None:
        st = os.stat(self.path)
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.served < self.allowed)
            fd = os.open(self.path, os.O_WRONLY)  # blocks until irqbalance opens it
            try:
                view = memoryview(self.data)
                while view:
                    view = view[os.write(fd, view):]
            except BrokenPipeError:
                pass
            finally:
                os.close(fd)
            while self.oracle.fifo_held_open(st.st_dev, st.st_ino):
                time.sleep(0.001)
            with self.cond:
                self.served += 1
                self.cond.notify_all()


def inner(a) -> None:
    """Inside the private mount namespace: stage, run irqbalance, talk to it."""
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    sys.path.insert(0, a.oracle)
    oracle = importlib.import_module("run_irqbalance")
    mkfake = oracle.mkfake
    m = mkfake.load_machine(a.tree)
    stage, _ = oracle.setup_mounts(a.tree, m, fifos=True)
    state = mkfake.SimState(m)
    fifo = os.path.join(stage, ".fifo")
    GatedFifo(os.path.join(fifo, "interrupts"), mkfake.render_interrupts(m, state).encode(), oracle)
    stat = GatedFifo(os.path.join(fifo, "stat"), mkfake.render_stat(m, state).encode(), oracle)
    stat.allow(1)  # start-up reads /proc/stat once

    argv = [oracle.IRQBALANCE, "--foreground", "--debug", f"--interval={a.interval}", *a.extra]
    log_path = os.path.join(a.outdir, "debug.log")
    pid = oracle.spawn(argv, oracle.clean_env([]), log_path)
    sock = f"/run/irqbalance/irqbalance{pid}.sock"
    steps = []
    try:
        stat.wait_served(1)
        deadline = time.monotonic() + 60
        while not os.path.exists(sock):
            if time.monotonic() > deadline:
                raise SystemExit("irqbalance did not create " + sock)
            time.sleep(0.01)
        reads = 1
        for k in range(a.passes + 1):
            if k:
                reads += 1
                stat.allow(reads)
                stat.wait_served(reads)
            steps.append({"after_pass": k, "stat_reads": reads,
                          "setup": request(sock, "setup").decode("ascii"),
                          "stats": request(sock, "stats").decode("ascii")})
        steps.append({"send": "stats", "uid": 65534,
                      "reply": request_unprivileged(sock, "stats").decode("ascii")})
        for command in SETTINGS_SCRIPT:
            reply = request(sock, command)
            steps.append({"send": command, "reply": reply.decode("ascii"),
                          "setup": request(sock, "setup").decode("ascii")})
        # The pending "settings" make the next pass a rescan: /proc/stat is read
        # by the rebuild and again after irqbalance's in-pass sleep.
        reads += 2
        stat.allow(reads)
        stat.wait_served(reads)
        steps.append({"after_pass": a.passes + 1, "rescan": True, "stat_reads": reads,
                      "setup": request(sock, "setup").decode("ascii"),
                      "stats": request(sock, "stats").decode("ascii")})
    finally:
        os.kill(pid, signal.SIGTERM)  # idle between passes: exits and flushes its log
        status, _, _ = oracle.wait_rusage(pid, 30)
    result = {
        "irqbalance": oracle.irqbalance_version(),
        "argv": [os.path.basename(argv[0]), *argv[1:]],
        "machine": m.name,
        "interval": a.interval,
        "socket": "/run/irqbalance/irqbalance<PID>.sock",
        **oracle.exit_info(status),
        "steps": steps,
    }
    with open(os.path.join(a.outdir, "capture.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("machine", help="machine JSON (e.g. tests/machines/*.json)")
    ap.add_argument("outdir")
    ap.add_argument("--interval", type=int, default=5)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument(
        "--oracle", required=True, help="directory of run_irqbalance.py"
    )
    ap.add_argument("--tree", help=argparse.SUPPRESS)
    ap.add_argument("--_inner", action="store_true", help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    a = ap.parse_args(argv)
    a.extra = extra
    a.outdir = os.path.abspath(a.outdir)
    if os.geteuid() != 0:
        sys.exit("must run as root (unshare -m, bind mounts)")
    if a._inner:
        inner(a)
        return
    os.makedirs(a.outdir, exist_ok=True)
    shutil.copy(a.machine, os.path.join(a.outdir, os.path.basename(a.machine)))
    sys.path.insert(0, a.oracle)
    mkfake = importlib.import_module("mkfake")
    with tempfile.TemporaryDirectory(prefix="uicapture-") as tmp:
        tree = os.path.join(tmp, "tree")
        mkfake.build_tree(mkfake.load_machine(os.path.abspath(a.machine)), tree, force=True)
        cmd = ["unshare", "-m", "--propagation", "private",
               sys.executable, os.path.abspath(__file__), "--_inner", "--tree", tree,
               "--interval", str(a.interval), "--passes", str(a.passes),
               "--oracle", os.path.abspath(a.oracle), a.machine, a.outdir, "--", *extra]
        sys.exit(subprocess.run(cmd).returncode)


if __name__ == "__main__":
    main()
