"""The sysvinit script (sysvinit/pyirqbalance, /etc/init.d/pyirqbalance in the package).

It runs in a private mount namespace (``unshare --mount``), never against this machine:
/etc/default and /run are replaced there by the test's own directories, so the script
reads the test's environment files and keeps its pid file in the test's /run, and the
daemon it starts balances a fake machine (``--sysroot`` in ``PYIRQBALANCE_ARGS``), run
through a script named in ``DAEMON=`` of /etc/default/pyirqbalance; /dev/log is a socket
the test reads (the namespace gets a /dev of its own). The steps run in one
shell inside the namespace; the daemon is killed there at the end whatever happened.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hermetic import DEFAULTS_CONFIG
from tests.oracle import mkfake

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "sysvinit" / "pyirqbalance"
MACHINE = ROOT / "tests" / "machines" / "a_desktop4.json"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux unshare not installed"),
    pytest.mark.skipif(shutil.which("start-stop-daemon") is None,
                       reason="start-stop-daemon (dpkg) not installed"),
    pytest.mark.skipif(not Path("/lib/lsb/init-functions").is_file(),
                       reason="/lib/lsb/init-functions (sysvinit-utils) not installed"),
]

#: Runs inside the namespace: $1 the test's directory. Prints KEY=value lines.
STEPS = r"""
set -u
t=$1
mount --make-rprivate /
mount --bind "$t/etc-default" /etc/default
mount -t tmpfs tmpfs /run
# A /dev of the namespace's own with a syslog socket the test reads: the detached daemon
# logs to /dev/log (and this machine's /dev is left alone).
mkdir "$t/realdev" && mount --rbind /dev "$t/realdev"
mount -t tmpfs tmpfs /dev
for f in null zero full random urandom tty; do
    touch "/dev/$f" && mount --bind "$t/realdev/$f" "/dev/$f"
done
"$PYTHON" -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind("/dev/log")
out = open(sys.argv[1], "ab", buffering=0)
while True: out.write(s.recv(65536) + b"\n")' "$t/daemon.log" &
logger=$!
i=0; while [ ! -S /dev/log ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
pidfile=/run/pyirqbalance.pid
cleanup() { [ -r $pidfile ] && kill -9 "$(cat $pidfile)" 2>/dev/null; kill "$logger"; }
trap cleanup EXIT
sh "$t/init" start >/dev/null 2>&1; echo "start=$?"
sh "$t/init" start >/dev/null 2>&1; echo "start_again=$?"
i=0; while [ ! -s $pidfile ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
pid=$(cat $pidfile 2>/dev/null); echo "pid=$pid"
sh "$t/init" status >/dev/null 2>&1; echo "status_running=$?"
echo "comm=$(cat /proc/$pid/comm)"
echo "environ=$(tr '\0' '\n' < /proc/$pid/environ | grep -E '^(IRQBALANCE|PYIRQBALANCE)_' \
    | sort | tr '\n' ' ')"
echo "cmdline=$(tr '\0' ' ' < /proc/$pid/cmdline)"
i=0; while ! grep -q "pass 1:" "$t/daemon.log" && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
sh "$t/init" reload >/dev/null 2>&1; echo "reload=$?"
i=0; while ! grep -q "configuration reloaded" "$t/daemon.log" && [ $i -lt 300 ]; do
    sleep 0.1; i=$((i+1)); done
sh "$t/init" stop >/dev/null 2>&1; echo "stop=$?"
echo "alive_after_stop=$(kill -0 "$pid" 2>/dev/null && echo yes || echo no)"
echo "pidfile_after_stop=$(test -e $pidfile && echo yes || echo no)"
sh "$t/init" status >/dev/null 2>&1; echo "status_stopped=$?"
sh "$t/init" stop >/dev/null 2>&1; echo "stop_again=$?"
sh "$t/init" bogus >/dev/null 2>&1; echo "usage=$?"
"""


def test_start_status_reload_stop_in_a_private_namespace(tmp_path):
    tree = tmp_path / "tree"
    mkfake.build_tree(mkfake.Machine(json.loads(MACHINE.read_text())), str(tree), force=True)
    log = tmp_path / "daemon.log"      # what the daemon sent to the namespace's /dev/log
    wrapper = tmp_path / "pyirqbalance"
    # A Python script named pyirqbalance, as the package's /usr/bin/pyirqbalance is: the
    # kernel names the process after it, which is what the script's stop and status match.
    wrapper.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                       "from pyirqbalance.app import main\n"
                       f"sys.exit(main([{'--config=' + str(DEFAULTS_CONFIG)!r}, *sys.argv[1:]]))\n")
    wrapper.chmod(0o755)
    defaults = tmp_path / "etc-default"
    defaults.mkdir()
    (defaults / "irqbalance").write_text(
        "IRQBALANCE_BANNED_CPULIST=3\nIRQBALANCE_ARGS=--interval=1\n")
    (defaults / "pyirqbalance").write_text(
        f"DAEMON={wrapper}\nPYIRQBALANCE_ARGS=\"--sysroot={tree}\"\n")
    init = tmp_path / "init"
    shutil.copy(SCRIPT, init)
    steps = tmp_path / "steps.sh"
    steps.write_text(STEPS)
    out = subprocess.run(["unshare", "--mount", "sh", str(steps), str(tmp_path)],
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHON=sys.executable))
    got = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    daemon_log = log.read_text() if log.exists() else ""
    assert got.get("start") == "0", (out.stdout, out.stderr, daemon_log)
    assert got["start_again"] == "0"               # already running: still success (LSB)
    assert got["pid"].isdigit()
    assert got["status_running"] == "0"
    assert got["comm"] == "pyirqbalance"
    # the environment files reached the daemon, irqbalance's and pyirqbalance's
    assert "IRQBALANCE_BANNED_CPULIST=3" in got["environ"]
    assert "IRQBALANCE_ARGS=--interval=1" in got["environ"]
    assert f"--sysroot={tree}" in got["cmdline"] and "--pid=/run/pyirqbalance.pid" in got["cmdline"]
    assert got["reload"] == "0" and "configuration reloaded" in daemon_log, daemon_log
    assert got["stop"] == "0"
    assert got["alive_after_stop"] == "no" and got["pidfile_after_stop"] == "no"
    assert got["status_stopped"] == "3"            # LSB: not running
    assert got["stop_again"] == "0"                # stopping a stopped service succeeds
    assert got["usage"] == "3"
    assert "Traceback" not in daemon_log
    # it balanced the fake machine, with CPU 3 banned by /etc/default/irqbalance
    masks = [int((p / "smp_affinity").read_text().replace(",", ""), 16)
             for p in (tree / "proc" / "irq").iterdir() if (p / "smp_affinity").exists()]
    assert masks and all(m & 0b0111 for m in masks)
