"""The guest's side of the real-kernel tier: do things to the kernel, write down what it shows.

Run as root inside a QEMU guest (tests/realkernel/vm.py) from the checkout, with the
checkout's own interpreter::

    python -m tests.realkernel.inguest OUT STEP...

First the affinities the kernel gave every IRQ at boot are written to ``OUT/boot.json``,
before anything else writes one. Then each STEP (a function of :data:`STEPS`) runs in
turn and leaves ``OUT/STEP.json``: the kernel's files it read at each point (masks from
/proc/irq/*/smp_affinity, rows of /proc/interrupts, /proc/stat, CPUs online) and what the
programs it ran printed and returned. A step that raises leaves ``{"error": traceback}``
and the next step still runs. The assertions are the host's (tests/realkernel/test_*.py):
nothing here decides whether the daemon was right.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.waiting import wait_until

WORK = Path("/var/tmp/rk")
IRQBALANCE = "/usr/sbin/irqbalance"
PYIRQBALANCE = [sys.executable, "-m", "pyirqbalance"]
#: The guest is slow (TCG on a busy host): generous deadlines, never measurements.
LONG = 120.0
API = "127.0.0.1:9199"

Obs = dict[str, Any]


# --------------------------------------------------------------------------
# the kernel's files
# --------------------------------------------------------------------------


def masks() -> dict[str, str]:
    """Every /proc/irq/N/smp_affinity as the kernel prints it (without the newline)."""
    out = {}
    for name in os.listdir("/proc/irq"):
        if name.isdigit():
            try:
                out[name] = Path(f"/proc/irq/{name}/smp_affinity").read_text().strip()
            except OSError:
                pass  # gone meanwhile
    return out


def interrupts() -> dict[str, Obs]:
    """The numbered rows of /proc/interrupts: per-CPU counts (one per CPU column) and the
    text after them (chip, hwirq, name)."""
    lines = Path("/proc/interrupts").read_text().splitlines()
    ncpu = len(lines[0].split())
    rows = {}
    for line in lines[1:]:
        head, _, rest = line.partition(":")
        if not head.strip().isdigit():
            continue
        fields = rest.split()
        rows[head.strip()] = {"counts": [int(x) for x in fields[:ncpu]],
                              "desc": " ".join(fields[ncpu:])}
    return rows


def online() -> str:
    return Path("/sys/devices/system/cpu/online").read_text().strip()


def proc_stat() -> dict[str, list[int]]:
    """/proc/stat's per-CPU lines: cpuN -> jiffies (user nice system idle iowait irq softirq)."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if re.fullmatch(r"cpu\d+", name):
            out[name] = [int(v) for v in values]
    return out


def write_mask(irq: str, mask: str) -> int:
    """Write ``mask`` to IRQ ``irq``'s smp_affinity: 0 or the kernel's errno."""
    try:
        fd = os.open(f"/proc/irq/{irq}/smp_affinity", os.O_WRONLY)
    except OSError as err:
        return err.errno or errno.EIO
    try:
        os.write(fd, f"{mask}\n".encode())
    except OSError as err:
        return err.errno or errno.EIO
    finally:
        os.close(fd)
    return 0


def put_back(saved: dict[str, str]) -> dict[str, int]:
    """Write ``saved`` masks back (IRQs still there); the errno of each write."""
    return {irq: write_mask(irq, mask) for irq, mask in saved.items()
            if os.path.exists(f"/proc/irq/{irq}")}


def names_of(rows: dict[str, Obs], pattern: str) -> list[str]:
    """IRQs whose /proc/interrupts text matches ``pattern`` (a regular expression)."""
    return sorted((irq for irq, row in rows.items() if re.search(pattern, row["desc"])), key=int)


def nic(driver: str) -> str:
    """The interface name of the NIC driven by ``driver``."""
    for name in os.listdir("/sys/class/net"):
        link = f"/sys/class/net/{name}/device/driver"
        if os.path.islink(link) and os.path.basename(os.readlink(link)) == driver:
            return name
    raise AssertionError(f"no interface driven by {driver}")


def sh(*argv: str, check: bool = True, timeout: float = LONG) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout)


# --------------------------------------------------------------------------
# running the programs
# --------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment: none of irqbalance's variables, nothing of the host's."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "TMPDIR": "/var/tmp",
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.update(extra)
    return env


def config(name: str, text: str = "") -> str:
    """A YAML configuration file for one run (hermetic: never the guest's /etc)."""
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"{name}.yaml"
    path.write_text(text or "{}\n")
    return str(path)


def oneshot(argv: list[str], timeout: float = LONG) -> Obs:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env=clean_env())
    return {"argv": argv, "rc": proc.returncode, "stderr": proc.stderr[-4000:]}


class Daemon:
    """A pyirqbalance daemon in the foreground, its passes announced by sd_notify."""

    def __init__(self, name: str, args: list[str], yaml: str = "",
                 wrap: list[str] | None = None) -> None:
        WORK.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = WORK / f"{name}.log"
        notify = WORK / f"{name}.notify"
        with contextlib.suppress(FileNotFoundError):
            notify.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(notify))
        self.passes = 0
        self.statuses: list[str] = []
        self.argv = [*(wrap or []), *PYIRQBALANCE, "--foreground", f"--config={config(name, yaml)}",
                     *args]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         env=clean_env(NOTIFY_SOCKET=str(notify)))

    def _drain(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536).decode(errors="replace")
        except TimeoutError:
            return
        for line in data.splitlines():
            m = re.match(r"STATUS=pass (\d+)", line)
            if m:
                self.passes = int(m.group(1))
                self.statuses.append(line)

    def wait_pass(self, n: int, timeout: float = LONG) -> int:
        """Wait until the daemon has finished pass ``n`` (counted from its start)."""
        def done() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}: "
                                     f"{self.log()[-2000:]}")
            self._drain(0.5)
            return self.passes >= n
        wait_until(done, timeout, f"{self.name} finishes pass {n}")
        return self.passes

    def passes_after(self, k: int, timeout: float = LONG) -> int:
        """Wait for ``k`` more passes."""
        self._drain(0.01)
        return self.wait_pass(self.passes + k, timeout)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        """SIGTERM, and the exit status (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(LONG)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        self.sock.close()
        return self.proc.returncode

    def control_socket(self) -> str:
        return f"/run/irqbalance/irqbalance{self.proc.pid}.sock"


@contextlib.contextmanager
def daemon(name: str, args: list[str], yaml: str = "",
           wrap: list[str] | None = None) -> Iterator[Daemon]:
    d = Daemon(name, args, yaml, wrap)
    try:
        yield d
    finally:
        d.stop()


def api_get(path: str) -> Any:
    with urllib.request.urlopen(f"http://{API}{path}", timeout=30) as reply:
        return json.load(reply)


# --------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------


@contextlib.contextmanager
def disk_load() -> Iterator[None]:
    """Direct reads of the NVMe drive in a loop (interrupts on its managed queues)."""
    proc = subprocess.Popen(
        ["/bin/sh", "-c", "while :; do dd if=/dev/nvme0n1 of=/dev/null bs=64k count=256 "
         "iflag=direct 2>/dev/null; done"], start_new_session=True)
    try:
        yield
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


NETNS = "rkpeer"
HOST_ADDR, PEER_ADDR = "10.77.0.1", "10.77.0.2"


def split_nics() -> tuple[str, str]:
    """The e1000e NIC into the namespace ``rkpeer``, both NICs addressed on 10.77.0.0/24
    (QEMU's hub joins only these two: nothing leaves the guest's QEMU)."""
    here, there = nic("virtio_net"), nic("e1000e")
    sh("ip", "netns", "add", NETNS)
    sh("ip", "link", "set", there, "netns", NETNS)
    sh("ip", "addr", "add", f"{HOST_ADDR}/24", "dev", here)
    sh("ip", "link", "set", here, "up")
    sh("ip", "-n", NETNS, "addr", "add", f"{PEER_ADDR}/24", "dev", there)
    sh("ip", "-n", NETNS, "link", "set", there, "up")
    sh("ip", "-n", NETNS, "link", "set", "lo", "up")
    return here, there


def udp_traffic(seconds: float) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    """Bounded UDP both ways between the NICs: a sink in each namespace, a sender to each."""
    here = Path(__file__).with_name("udpload.py")
    py = sys.executable
    procs = [
        subprocess.Popen(["ip", "netns", "exec", NETNS, py, str(here), "sink", PEER_ADDR,
                          str(seconds)]),
        subprocess.Popen([py, str(here), "sink", HOST_ADDR, str(seconds)]),
        subprocess.Popen([py, str(here), "send", PEER_ADDR, str(seconds)]),
        subprocess.Popen(["ip", "netns", "exec", NETNS, py, str(here), "send", HOST_ADDR,
                          str(seconds)]),
    ]
    return procs[0], procs[1]


# --------------------------------------------------------------------------
# the steps
# --------------------------------------------------------------------------


def step_oneshot() -> Obs:
    """irqbalance 1.9.2 and pyirqbalance, one --oneshot each from the same masks."""
    before = masks()
    first = oneshot([IRQBALANCE, "--oneshot", "--foreground", "--interval=1"])
    after_irqbalance = masks()
    reset = put_back(before)
    second = oneshot([*PYIRQBALANCE, "--oneshot", "--foreground", "--interval=1",
                      f"--config={config('oneshot')}"])
    after_pyirqbalance = masks()
    put_back(before)
    return {"before": before, "irqbalance": first, "pyirqbalance": second,
            "after_irqbalance": after_irqbalance, "after_pyirqbalance": after_pyirqbalance,
            "reset_errno": reset, "interrupts": interrupts(), "online": online()}


STEPS: dict[str, Callable[[], Obs]] = {
    "oneshot": step_oneshot,
}


def prepare() -> None:
    """Load the drivers of the NVMe drive and the NICs (from the host's /lib/modules, no
    modprobe.d of anybody's), bring the NICs up (e1000e asks for its IRQs when it opens),
    wait for the NVMe I/O queues."""
    sh("modprobe", "-C", "/dev/null", "-a", "virtio_net", "nvme", "e1000e")
    sh("ip", "link", "set", "lo", "up")
    wait_until(lambda: os.path.exists("/sys/block/nvme0n1"), LONG, "the NVMe namespace appears")
    for driver in ("virtio_net", "e1000e"):
        name = wait_until(lambda d=driver: _try_nic(d), LONG, f"the {driver} NIC appears")
        sh("ip", "link", "set", name, "up")
    wait_until(lambda: names_of(interrupts(), r"\beth\d|\benp"), LONG, "e1000e's IRQs appear")


def _try_nic(driver: str) -> str | None:
    try:
        return nic(driver)
    except AssertionError:
        return None


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    prepare()
    boot = masks()
    (out / "boot.json").write_text(json.dumps({"masks": boot, "interrupts": interrupts(),
                                               "online": online()}))
    failed = 0
    for name in argv[1:]:
        started = time.monotonic()
        try:
            obs = STEPS[name]()
        except Exception:  # the host test shows it
            obs = {"error": traceback.format_exc()}
            failed += 1
        obs["seconds"] = round(time.monotonic() - started, 1)
        (out / f"{name}.json").write_text(json.dumps(obs))
        print(f"rk-guest: step {name}: {'failed' if 'error' in obs else 'done'} "
              f"in {obs['seconds']} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
