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

from tests.controlsocket import ask
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


def interrupt_columns() -> list[int]:
    """The CPU numbers of /proc/interrupts' columns (online CPUs only)."""
    with open("/proc/interrupts") as f:
        return [int(c.removeprefix("CPU")) for c in f.readline().split()]


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
    return {"argv": argv, "rc": proc.returncode, "stderr": proc.stderr[-20000:]}


class Daemon:
    """A pyirqbalance daemon in the foreground, its passes announced by sd_notify."""

    def __init__(self, name: str, args: list[str], yaml: str = "",
                 wrap: list[str] | None = None, env: dict[str, str] | None = None) -> None:
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
        self.pid_file = WORK / f"{name}.pid"
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        self.argv = [*(wrap or []), *PYIRQBALANCE, "--foreground", f"--config={config(name, yaml)}",
                     f"--pid={self.pid_file}", *args]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         env=clean_env(NOTIFY_SOCKET=str(notify), **(env or {})))
        self._pid: int | None = None if wrap else self.proc.pid

    @property
    def pid(self) -> int:
        """The daemon's pid (a wrapper's child: from its pid file)."""
        if self._pid is None:
            text = wait_until(lambda: self.pid_file.exists() and self.pid_file.read_text().strip(),
                              LONG, f"{self.name} writes its pid file")
            self._pid = int(text)
        return self._pid

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def _drain(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536).decode(errors="replace")
        except TimeoutError:
            return
        self._take(data)

    def _take(self, data: str) -> bool:
        """Note the pass a datagram's STATUS= reports; whether it reported one."""
        ended = False
        for line in data.splitlines():
            m = re.match(r"STATUS=pass (\d+)", line)
            if m:
                self.passes = int(m.group(1))
                self.statuses.append(line)
                ended = True
        return ended

    def settle(self) -> int:
        """Read every datagram already queued: the last pass that ended before this call."""
        self.sock.setblocking(False)
        try:
            while True:
                self._take(self.sock.recv(65536).decode(errors="replace"))
        except BlockingIOError:
            pass
        return self.passes

    def between_passes(self, timeout: float = LONG) -> bool:
        """Whether the daemon (run with ``WATCHDOG_USEC``) was waiting for its next pass at
        some moment after this call began, no pass having ended since :attr:`passes`.

        Every datagram queued now was sent before: they are read first (one that ends a
        pass: False). The next one was sent later: ``WATCHDOG=1`` alone comes from the wait
        between passes (True); a pass's end sends its STATUS= (False)."""
        before = self.passes
        if self.settle() != before:
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            self.sock.settimeout(1.0)
            try:
                data = self.sock.recv(65536).decode(errors="replace")
            except TimeoutError:
                continue
            if self._take(data):
                return False
            if "WATCHDOG=1" in data.splitlines():
                return True
        return False

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
            try:
                os.kill(self.pid, signal.SIGTERM)
            except (ProcessLookupError, AssertionError):
                pass
            try:
                self.proc.wait(LONG)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        self.sock.close()
        return self.proc.returncode

    def control_socket(self) -> str:
        return f"/run/irqbalance/irqbalance{self.pid}.sock"


@contextlib.contextmanager
def daemon(name: str, args: list[str], yaml: str = "",
           wrap: list[str] | None = None, env: dict[str, str] | None = None) -> Iterator[Daemon]:
    d = Daemon(name, args, yaml, wrap, env)
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
def disk_load(count: int = 256, pause: float = 0.0) -> Iterator[None]:
    """Direct reads of the NVMe drive in a loop (interrupts on its managed queues): ``count``
    64 KiB reads by one dd, then a ``pause`` (seconds) before the next dd."""
    rest = f"; sleep {pause:g}" if pause else ""
    proc = subprocess.Popen(
        ["/bin/sh", "-c", f"while :; do dd if=/dev/nvme0n1 of=/dev/null bs=64k count={count} "
         f"iflag=direct 2>/dev/null{rest}; done"], start_new_session=True)
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


def udp_traffic(seconds: float, rate: int = 60) -> list[subprocess.Popen[bytes]]:
    """Bounded UDP both ways between the NICs, ``rate`` datagrams a second each way (enough
    interrupts on all four queue IRQs; a guest still responsive). Nobody listens: each
    datagram still raises the receiving NIC's interrupt."""
    here = Path(__file__).with_name("udpload.py")
    py = sys.executable
    return [
        subprocess.Popen([py, str(here), "send", PEER_ADDR, str(seconds), str(rate)],
                         stdout=subprocess.DEVNULL),
        subprocess.Popen(["ip", "netns", "exec", NETNS, py, str(here), "send", HOST_ADDR,
                          str(seconds), str(rate)], stdout=subprocess.DEVNULL),
    ]


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


def step_managed() -> Obs:
    """A daemon under strace (its smp_affinity writes and the kernel's answers) for three
    passes, SIGHUP (a rescan), three more passes; the NVMe drive busy throughout."""
    before = masks()
    probe = put_back(before)
    trace = WORK / "managed.strace"
    WORK.mkdir(parents=True, exist_ok=True)
    strace = ["strace", "-f", "--seccomp-bpf", "-qq", "-ttt", "-y", "-e", "trace=write",
              "-e", "signal=none", "-o", str(trace)]
    with disk_load(), daemon("managed", ["--interval=1"], wrap=strace) as d:
        d.wait_pass(3)
        hup_at = time.time()
        d.signal(signal.SIGHUP)
        d.passes_after(3)
        during = masks()
        passes = d.passes
    rc = d.proc.returncode
    writes = [line for line in trace.read_text().splitlines() if "/smp_affinity>" in line]
    put_back(before)
    return {"before": before, "probe_errno": probe, "during": during, "rc": rc,
            "passes": passes, "hup_at": hup_at, "writes": writes, "log": d.log()[-20000:],
            "interrupts": interrupts()}


def _ban_candidate(rows: dict[str, Obs]) -> str:
    """An IRQ both daemons would otherwise balance: a legacy IO-APIC one, not the timer."""
    for irq in sorted(rows, key=int):
        if irq != "0" and "IO-APIC" in rows[irq]["desc"]:
            return irq
    return sorted(rows, key=int)[-1]


def step_uisocket() -> Obs:
    """irqbalance 1.9.2's and pyirqbalance's control sockets asked `setup` and `stats` as
    irqbalance-ui asks them, each daemon alone, after its first balancing pass."""
    before = masks()
    rows = interrupts()
    ban = _ban_candidate(rows)
    args = ["--interval=1", f"--banirq={ban}"]
    WORK.mkdir(parents=True, exist_ok=True)
    with open(WORK / "irqbalance-ui.log", "wb") as log:
        proc = subprocess.Popen([IRQBALANCE, "--foreground", *args], stdout=log,
                                stderr=subprocess.STDOUT, env=clean_env())
    try:
        path = f"/run/irqbalance/irqbalance{proc.pid}.sock"
        wait_until(lambda: os.path.exists(path), LONG, "irqbalance's control socket")
        theirs_stats = wait_until(lambda: _stats_after_pass(path), LONG,
                                  "irqbalance's stats after a pass")
        theirs_setup = ask(path, b"setup")
    finally:
        proc.terminate()
        proc.wait(LONG)
    put_back(before)
    with daemon("uisocket", args) as d:
        d.wait_pass(2)
        ours_stats, ours_masks = wait_until(lambda: _stats_and_masks(d.control_socket()), LONG,
                                            "the same tree in two stats replies around a read")
        ours_setup = ask(d.control_socket(), b"setup")
    put_back(before)
    nodes = sorted(int(n[4:]) for n in os.listdir("/sys/devices/system/node")
                   if re.fullmatch(r"node\d+", n))
    return {"ban": ban, "irqbalance": {"stats": theirs_stats.decode(),
                                       "setup": theirs_setup.decode()},
            "pyirqbalance": {"stats": ours_stats.decode(), "setup": ours_setup.decode(),
                             "masks": ours_masks,
                             "rc": d.proc.returncode, "log": d.log()[-8000:]},
            "probe_errno": put_back(before),
            "online": online(), "nodes": nodes, "interrupts": rows}


def _stats_and_masks(path: str) -> tuple[bytes, dict[str, str]] | None:
    """A stats reply and the masks read right after, when a second reply shows the same
    tree (no pass moved an IRQ meanwhile; loads may differ)."""
    first = ask(path, b"stats")
    now = masks()
    second = ask(path, b"stats")
    same = re.sub(rb"(LOAD|DIFF) \d+", b"", first) == re.sub(rb"(LOAD|DIFF) \d+", b"", second)
    return (first, now) if same else None


def _stats_after_pass(path: str) -> bytes | None:
    reply = ask(path, b"stats")
    return reply if b"IRQ " in reply else None


def step_hotplug() -> Obs:
    """Under NVMe load, a CPU the daemon uses goes offline for four passes, then comes
    back; the masks after every pass."""
    before = masks()
    probe = put_back(before)
    out: Obs = {"before": before, "probe_errno": probe}
    with disk_load(), daemon("hotplug", ["--interval=1"]) as d:
        d.wait_pass(3)
        placed = masks()
        cpus = [int(c) for c in _cpus_of(online())]
        single = [int(m.replace(",", ""), 16) for irq, m in placed.items()
                  if probe.get(irq) == 0 and int(m.replace(",", ""), 16).bit_count() == 1]
        used = sorted({m.bit_length() - 1 for m in single} - {0})
        cpu = used[-1] if used else cpus[-1]
        out.update(placed=placed, cpu=cpu, online_before=online())
        Path(f"/sys/devices/system/cpu/cpu{cpu}/online").write_text("0")
        out["online_during"] = online()
        offline = []
        for _ in range(4):
            d.passes_after(1)
            offline.append(masks())
        Path(f"/sys/devices/system/cpu/cpu{cpu}/online").write_text("1")
        out["online_after"] = online()
        back = []
        def uses_it() -> bool:
            d.passes_after(1)
            m = masks()
            back.append(m)
            return any(probe.get(irq) == 0 and int(mask, 16) >> cpu & 1
                       and int(mask, 16).bit_count() < len(cpus)
                       for irq, mask in m.items())
        with contextlib.suppress(AssertionError):
            wait_until(uses_it, 90, f"an IRQ is placed on CPU {cpu} again")
        out.update(offline=offline, back=back, alive=d.alive(), passes=d.passes)
    out.update(rc=d.proc.returncode, log=d.log()[-20000:], interrupts=interrupts())
    put_back(before)
    return out


def _cpus_of(cpulist: str) -> list[str]:
    out = []
    for part in cpulist.split(","):
        lo, _, hi = part.partition("-")
        out += [str(c) for c in range(int(lo), int(hi or lo) + 1)]
    return out


#: The API on the guest's loopback; the load report is live, no history or metrics needed.
API_YAML = (f"api: {{enabled: true, listen: '{API}'}}\n"
            "history: {enabled: false}\nmetrics: {enabled: false}\n")


#: The reload step's daemon: the API with /metrics (where a foreign write is counted).
RELOAD_YAML = (f"api: {{enabled: true, listen: '{API}'}}\n"
               "history: {enabled: false}\nmetrics: {enabled: true}\n")


def api_text(path: str) -> str:
    with urllib.request.urlopen(f"http://{API}{path}", timeout=30) as reply:
        text: str = reply.read().decode()
        return text


def _passes_total(text: str) -> float:
    m = re.search(r"^pyirqbalance_passes_total (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def _foreign_write(d: Daemon, probe: dict[str, int], before: dict[str, str],
                   avoid: list[str]) -> Obs:
    """Something else writes a balanced IRQ's smp_affinity right after a pass (another
    online CPU than the one the daemon chose); /metrics, /api/v1/health and the log after
    two more passes. ``avoid``: IRQs of the driver the step unloads later."""
    wait_until(lambda: _passes_total(api_text("/metrics")) >= 2, LONG,
               "pyirqbalance_passes_total >= 2 on /metrics")
    cpus = [int(c) for c in _cpus_of(online())]
    d.passes_after(1)  # a pass just ended: the next one is an interval away
    now = masks()
    written = sorted((irq for irq, m in now.items()
                      if probe.get(irq) == 0 and irq not in avoid and m != before.get(irq)
                      and int(m.replace(",", ""), 16).bit_count() == 1), key=int)
    assert written, f"the daemon wrote no movable IRQ: {now} (before: {before})"
    irq = written[0]
    expected = Path(f"/proc/irq/{irq}/smp_affinity").read_text().strip()
    chosen = int(expected.replace(",", ""), 16)
    cpu = next(c for c in cpus if not chosen >> c & 1)
    out: Obs = {"irq": irq, "cpu": cpu, "expected": expected, "passes_at_write": d.passes}
    out["errno"] = write_mask(irq, f"{1 << cpu:x}")
    out["found"] = Path(f"/proc/irq/{irq}/smp_affinity").read_text().strip()
    d.passes_after(2)
    seen = d.passes
    out["metrics"] = wait_until(lambda: (lambda t: t if _passes_total(t) >= seen else None)(
        api_text("/metrics")), LONG, f"/metrics counts pass {seen}")
    out.update(health=api_get("/api/v1/health"), log=d.log()[-20000:],
               masks_after=masks(), passes_after=d.passes)
    return out


def step_reload() -> Obs:
    """The e1000e driver unloaded and loaded again under a daemon with the API on; first,
    a foreign write to one of the daemon's other IRQs."""
    before = masks()
    probe = put_back(before)
    name = nic("e1000e")
    out: Obs = {"before": before, "probe_errno": probe, "default_affinity":
                Path("/proc/irq/default_smp_affinity").read_text().strip()}
    with daemon("reload", ["--interval=1"], RELOAD_YAML) as d:
        d.wait_pass(3)
        out["foreign"] = _foreign_write(d, probe, before, names_of(interrupts(),
                                                                   rf"\b{name}\b"))
        rows = interrupts()
        ours = names_of(rows, rf"\b{name}\b")
        out.update(nic=name, irqs_loaded=ours, masks_loaded=masks(), rows_loaded=rows)
        sh("modprobe", "-C", "/dev/null", "-r", "e1000e")
        wait_until(lambda: not set(ours) & set(interrupts()), LONG, "e1000e's IRQs go")
        d.passes_after(2)
        out.update(rows_unloaded=interrupts(), report_unloaded=api_get("/api/v1/report"))
        sh("modprobe", "-C", "/dev/null", "e1000e")
        name = wait_until(lambda: _try_nic("e1000e"), LONG, "the e1000e NIC is back")
        sh("ip", "link", "set", name, "up")
        wait_until(lambda: names_of(interrupts(), rf"\b{name}\b"), LONG, "e1000e's IRQs return")
        d.passes_after(3)
        rows = interrupts()
        out.update(nic_reloaded=name, irqs_reloaded=names_of(rows, rf"\b{name}\b"),
                   masks_reloaded=masks(), rows_reloaded=rows,
                   report_reloaded=api_get("/api/v1/report"), alive=d.alive())
    out.update(rc=d.proc.returncode, log=d.log()[-20000:], online=online())
    put_back(before)
    return out


STATE_DIR = "/var/lib/pyirqbalance-rk"
STATE_FILE = f"{STATE_DIR}/original-affinity.json"


def step_restore() -> Obs:
    """A daemon runs one pass and stops; --restore with the state file's boot id altered
    (another boot); the file put back as the daemon wrote it; --restore."""
    before = masks()
    yaml = f"daemon: {{state_dir: {STATE_DIR}}}\n"
    restore = [*PYIRQBALANCE, "--restore", f"--config={config('restore-cli', yaml)}"]
    out: Obs = {"before": before}
    with daemon("restore", ["--interval=1"], yaml) as d:
        d.wait_pass(1)
    text = Path(STATE_FILE).read_text()
    real_boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    out.update(rc_daemon=d.proc.returncode, changed=masks(), state=text, boot_id=real_boot)
    data = json.loads(text)
    if isinstance(data, dict) and "boot_id" in data:
        other = ("f" if real_boot.startswith("0") else "0") * 8 + real_boot[8:]
        data["boot_id"] = other
    Path(STATE_FILE).write_text(json.dumps(data))
    out["other_boot"] = oneshot(restore)
    out.update(after_other_boot=masks(), other_boot_kept=os.path.exists(STATE_FILE))
    Path(STATE_FILE).write_text(text)
    out["restore"] = oneshot(restore)
    out.update(restored=masks(), state_kept=os.path.exists(STATE_FILE))
    put_back(before)
    return out

def _nonzero_columns(rows: dict[str, Obs], columns: list[int]) -> dict[str, list[int]]:
    return {irq: [cpu for cpu, n in zip(columns, row["counts"]) if n]
            for irq, row in rows.items()}


#: The balanced step's NVMe reads: 64 reads of 64 KiB, then a pause of 0.1 s (at most
#: about 640 interrupts a second on the queues of the CPUs dd runs on).
BALANCED_DISK = {"count": 64, "pause": 0.1}
#: WATCHDOG=1 every 0.25 s from the daemon's wait between passes (half of WATCHDOG_USEC).
WATCHDOG_ENV = {"WATCHDOG_USEC": "500000"}


def step_balanced() -> Obs:
    """UDP between the two NICs (one in a namespace) and direct reads of the NVMe drive.
    --placement=balanced as a dry run (window: since boot) between two reads of
    /proc/interrupts and /proc/stat; then as a daemon with CPU 1 banned and the last CPU
    offline, its report after a pass next to our own reads of /proc/interrupts inside
    that pass's window (after the pass before ended, before that pass began)."""
    before = masks()
    probe = put_back(before)
    split_nics()
    out: Obs = {"before": before, "probe_errno": probe, "clk_tck": os.sysconf("SC_CLK_TCK")}
    started = time.monotonic()
    times = out["times"] = {}
    traffic = udp_traffic(600)
    qlen = Path("/proc/sys/net/unix/max_dgram_qlen")
    saved_qlen = qlen.read_text()
    qlen.write_text("1000")  # the daemon's watchdog pings never crowd out a STATUS=
    try:
        with disk_load(**BALANCED_DISK):
            start = interrupts()
            wait_until(lambda: all(sum(interrupts()[irq]["counts"]) for irq in _nic_irqs())
                       and _nvme_risen(start, interrupts()), LONG,
                       "both NICs' IRQs and an NVMe queue fire")
            out["nic_irqs"] = _nic_irqs()
            out["nvme_irqs"] = names_of(interrupts(), r"\bnvme\d+q\d+$")
            times["firing"] = time.monotonic() - started
            out.update(columns=interrupt_columns(), rows1=interrupts(), stat1=proc_stat())
            dry = subprocess.run([*PYIRQBALANCE, "--dry-run", "--format=json",
                                  "--placement=balanced", f"--config={config('balanced-dry')}"],
                                 capture_output=True, text=True, env=clean_env(), timeout=LONG)
            out.update(rows2=interrupts(), stat2=proc_stat(), dry_rc=dry.returncode,
                       dry_stderr=dry.stderr[-4000:], dry=dry.stdout)
            times["dry run"] = time.monotonic() - started
            last = _cpus_of(online())[-1]
            Path(f"/sys/devices/system/cpu/cpu{last}/online").write_text("0")
            out.update(offline=int(last), banned=1, online_daemon=online(),
                       columns_daemon=interrupt_columns(), masks_offline=masks())
            yaml = API_YAML + "balancing: {placement: balanced, banned_cpulist: '1'}\n"
            windows: list[Obs] = []
            tries = 0
            with daemon("balanced", ["--interval=2"], yaml, env=WATCHDOG_ENV) as d:
                d.wait_pass(2)
                while len(windows) < 3 and tries < 12 and d.alive():
                    tries += 1
                    w = _balanced_window(d)
                    if w is not None:
                        windows.append(w)
                out.update(windows=windows, tries=tries, masks_daemon=masks(), alive=d.alive())
                times["daemon"] = time.monotonic() - started
            out.update(rc=d.proc.returncode, log=d.log()[-20000:])
            times["stopped"] = time.monotonic() - started
            Path(f"/sys/devices/system/cpu/cpu{last}/online").write_text("1")
    finally:
        qlen.write_text(saved_qlen)
        for p in traffic:
            p.terminate()
            p.wait(LONG)
        sh("ip", "netns", "del", NETNS, check=False)
    put_back(before)
    return out


def _nvme_risen(a: dict[str, Obs], b: dict[str, Obs]) -> bool:
    return any(sum(b[irq]["counts"]) > sum(a[irq]["counts"])
               for irq in names_of(b, r"\bnvme\d+q[1-9]\d*$") if irq in a)


def _balanced_window(d: Daemon) -> Obs | None:
    """Our reads ``a`` and ``b`` of /proc/interrupts inside one pass's window and that
    pass's report; None when the pass came before a read could be placed in its window.

    ``a`` is read after pass p ended (so after its read of /proc/interrupts); ``b`` is the
    last of our reads after which the daemon was seen still waiting for pass p+1 (so
    before that pass read /proc/interrupts); the report is fetched after pass p+1 ended
    and before pass p+2 began. Whatever our reads saw rise, the daemon's saw rise too."""
    p = d.settle()
    a = interrupts()
    b = None
    deadline = time.monotonic() + LONG
    while time.monotonic() < deadline:
        rows = interrupts()
        if not d.between_passes():
            break
        b = rows
    if b is None or d.passes != p + 1:
        return None
    report = api_get("/api/v1/report")
    if not d.between_passes():
        return None
    return {"a": a, "b": b, "report": report, "pass": p + 1}


def _nic_irqs() -> list[str]:
    """The IRQs of the NICs' queues: virtio-net's input/output, e1000e's rx/tx."""
    return names_of(interrupts(), r"-(input|output)\.\d+$|-(rx|tx)-\d+$")

STEPS: dict[str, Callable[[], Obs]] = {
    "oneshot": step_oneshot,
    "managed": step_managed,
    "uisocket": step_uisocket,
    "hotplug": step_hotplug,
    "reload": step_reload,
    "restore": step_restore,
    "balanced": step_balanced,
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
    wait_until(lambda: names_of(interrupts(), rf"\b{name}\b"), LONG, "e1000e's IRQs appear")


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
