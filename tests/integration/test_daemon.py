"""The real ``python -m pyirqbalance`` daemon on fake machines (--sysroot): signals,
sd_notify, hotplug, vanishing IRQs, failing writes, hooks, pid file, single instance."""

from __future__ import annotations

import errno
import gc
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pyirqbalance.api.control import ControlAdapter
from pyirqbalance.engine.balancer import Balancer
from pyirqbalance.kernel.procpid import list_pids, read_process_names
from pyirqbalance.kernel.sysroot import SysRoot
from pyirqbalance.service.cli import resolve
from pyirqbalance.service.config import Config, load_config
from pyirqbalance.service.daemon import Daemon, _Signals
from pyirqbalance.service.notify import Notifier
from pyirqbalance.service.rivals import find_irqbalance, is_irqbalance
from tests.hermetic import pyirqbalance_argv
from tests.oracle import mkfake
from tests.waiting import is_dead, read_when_complete, wait_dead, wait_until

ROOT = Path(__file__).resolve().parents[2]
MACHINE = ROOT / "tests" / "fixtures" / "irqbalance-1.9.2" / "a_desktop4.json"
#: a_desktop4's IRQs (from the machine description): igc NIC queue, AHCI, xHCI, i915.
NIC, AHCI, XHCI, I915 = 128, 127, 125, 132


def machine(**topology) -> mkfake.Machine:
    desc = json.loads(MACHINE.read_text())
    desc["topology"].update(topology)
    return mkfake.Machine(desc)


def build(path: Path, **topology) -> Path:
    mkfake.build_tree(machine(**topology), str(path), force=True)
    return path


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("IRQBALANCE_", "NOTIFY_", "WATCHDOG_", "JOURNAL_"))
           and k != "INVOCATION_ID"}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(pyirqbalance_argv(*args), capture_output=True,
                          text=True, env=env or clean_env(), timeout=120)


def affinity(tree: Path, irq: int) -> int:
    return int((tree / "proc" / "irq" / str(irq) / "smp_affinity").read_text().replace(",", ""), 16)


def affinities(tree: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in (tree / "proc" / "irq").glob("*/smp_affinity")
            if p.is_file()}


class Daemonized:
    """A foreground daemon with a NOTIFY_SOCKET of our own and stderr in a file.

    A thread reads the socket from the start: its queue holds only
    net.unix.max_dgram_qlen (10) unread datagrams and the daemon drops what does not fit
    rather than block, so a test that stops reading for a while (a busy machine) would
    otherwise lose messages."""

    def __init__(self, tmp_path: Path, tree: Path, *args: str, **env: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        path = str(tmp_path / "notify.sock")
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        #: Every datagram received so far, in order; ``expect`` consumes them from ``_next``.
        self.messages: list[str] = []
        self._next = 0
        self._arrived = threading.Condition()
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stderr_path = tmp_path / "stderr.log"
        with open(self.stderr_path, "w") as stderr:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [*pyirqbalance_argv(), "--foreground", "--sysroot", str(tree),
                 *args],
                env=clean_env(NOTIFY_SOCKET=path, **env), stdout=subprocess.DEVNULL,
                stderr=stderr, text=True)

    def _read(self) -> None:
        while not self._closing.is_set():
            try:
                msg = self.sock.recv(65536).decode()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._arrived:
                self.messages.append(msg)
                self._arrived.notify_all()

    def expect(self, word: str, timeout: float = 30) -> str:
        """The next datagram containing ``word`` (earlier ones are kept in messages)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                while self._next < len(self.messages):
                    msg = self.messages[self._next]
                    self._next += 1
                    if word in msg:
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._arrived.wait(left)
        raise AssertionError(f"no {word!r} from the daemon; got {self.messages}; "
                             f"stderr: {self.stderr()}")

    def passes(self, count: int) -> None:
        """Wait for ``count`` more STATUS lines after passes."""
        for _ in range(count):
            self.expect("STATUS=pass")

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def drain(self) -> None:
        """Skip every datagram received so far (they stay in messages)."""
        with self._arrived:
            self._next = len(self.messages)

    def stop(self) -> int:
        """SIGTERM, then the STOPPING=1 it answers with and its exit status."""
        self.drain()
        self.proc.send_signal(signal.SIGTERM)
        self.expect("STOPPING=1", timeout=30)
        return self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._closing.set()
        self._reader.join(timeout=5)
        self.sock.close()


@pytest.fixture
def daemon(tmp_path):
    started: list[Daemonized] = []

    def start(tree: Path, *args: str, **env: str) -> Daemonized:
        d = Daemonized(tmp_path, tree, *args, **env)
        started.append(d)
        return d

    yield start
    for d in started:
        d.close()


# --------------------------------------------------------------------------
# systemd notify protocol and signals
# --------------------------------------------------------------------------


def test_notify_ready_after_the_first_pass_status_watchdog_stopping(tmp_path, daemon):
    tree = build(tmp_path / "t")
    d = daemon(tree, "--interval=1", WATCHDOG_USEC="2000000")   # WATCHDOG=1 every second
    first = d.expect("STATUS=")
    assert first.startswith("EXTEND_TIMEOUT_USEC=") and "STATUS=started; first pass in 1 s" in first
    ready = d.expect("READY=1")
    assert ready.splitlines()[1].startswith("STATUS=pass 1: ")
    assert "CPUs 0-3" in ready
    assert "READY=1" not in d.expect("STATUS=pass 2")
    d.expect("WATCHDOG=1")
    assert d.stop() == 0


def test_sigterm_while_sleeping_exits_0_without_a_pass(tmp_path, daemon):
    tree = build(tmp_path / "t")
    before = affinities(tree)
    d = daemon(tree, "--interval=3600")
    d.expect("STATUS=started")
    assert d.stop() == 0
    assert not any("READY=1" in m for m in d.messages)
    assert affinities(tree) == before


def test_sighup_reloads_the_configuration_and_rescans(tmp_path, daemon):
    tree = build(tmp_path / "t")
    config = tmp_path / "c.yaml"
    config.write_text("balancing:\n  interval: 1\n")
    d = daemon(tree, "--debug", "--config", str(config))
    d.expect("READY=1")
    assert "IRQ 128 was BANNED." not in d.stderr()
    config.write_text("balancing:\n  interval: 1\n  banned_irqs: [128]\n")
    d.proc.send_signal(signal.SIGHUP)
    d.expect("RELOADING=1")
    d.expect("READY=1")
    d.passes(3)
    assert d.stop() == 0
    log = d.stderr()
    assert "configuration reloaded" in log
    assert "IRQ 128 was BANNED." in log[log.index("Rescanning cpu topology"):]


def test_bad_configuration_on_sighup_keeps_the_running_one(tmp_path, daemon):
    tree = build(tmp_path / "t")
    config = tmp_path / "c.yaml"
    config.write_text("balancing:\n  interval: 1\n")
    d = daemon(tree, "--config", str(config))
    d.expect("READY=1")
    config.write_text("balancing:\n  interval: 0\n")
    d.proc.send_signal(signal.SIGHUP)
    d.expect("RELOADING=1")
    d.expect("READY=1")
    d.passes(2)
    assert d.proc.poll() is None
    assert d.stop() == 0
    assert "reload failed, keeping the running configuration:" in d.stderr()
    assert "balancing.interval: 0 is out of range" in d.stderr()


def test_sigusr1_logs_the_tree_once(tmp_path, daemon):
    tree = build(tmp_path / "t")
    d = daemon(tree, "--interval=1")
    d.expect("READY=1")
    assert "Package 0:" not in d.stderr()
    d.proc.send_signal(signal.SIGUSR1)
    wait_until(lambda: "Package 0:" in d.stderr(), what="the tree is logged after SIGUSR1")
    assert d.stop() == 0
    log = d.stderr()
    assert log.count("pyirqbalance state after") == 1
    assert "Package 0:  numa_node " in log and "CPU number 3 " in log


# --------------------------------------------------------------------------
# the machine changes under the daemon
# --------------------------------------------------------------------------


def swap_tree(tree: Path, new: Path) -> None:
    for part in ("proc", "sys"):
        os.rename(tree / part, tree / f"{part}.old")
        os.rename(new / part, tree / part)


def test_cpu_goes_offline_between_passes(tmp_path, daemon):
    tree = build(tmp_path / "t")
    d = daemon(tree, "--interval=1", "--debug")
    d.expect("READY=1")
    offline = build(tmp_path / "t2", offline="3")
    fresh = affinities(offline)  # before the swap: the daemon may write as soon as it is in place
    swap_tree(tree, offline)
    d.passes(4)
    assert d.proc.poll() is None
    assert d.stop() == 0
    log = d.stderr()
    assert "Rescanning cpu topology" in log and "Traceback" not in log
    # every pass logs its cost at --debug
    costs = re.findall(r"pass (\d+): [\d.]+ ms, [\d.]+ ms CPU, peak RSS (\d+) KiB", log)
    assert len(costs) >= 4 and all(int(kib) > 0 for _, kib in costs)
    changed = {irq for irq, raw in affinities(tree).items() if raw != fresh[irq]}
    assert changed, "the daemon balanced the new tree"
    for irq in changed:
        assert not affinity(tree, int(irq)) & 0b1000, f"IRQ {irq} written onto offline CPU 3"


def test_vanishing_irq(tmp_path, daemon):
    tree = build(tmp_path / "t")
    d = daemon(tree, "--interval=1", "--debug")
    d.expect("READY=1")
    interrupts = tree / "proc" / "interrupts"
    lines = interrupts.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.lstrip().startswith(f"{XHCI}:")]
    assert len(kept) == len(lines) - 1
    (tree / "proc" / "interrupts.new").write_text("".join(kept))
    os.replace(tree / "proc" / "interrupts.new", interrupts)
    shutil.rmtree(tree / "proc" / "irq" / str(XHCI))
    d.passes(3)
    assert d.stop() == 0
    assert f"IRQ {XHCI} is removed from interrupts_db." in d.stderr()
    assert "Traceback" not in d.stderr()


def test_unwritable_affinity_files_do_not_stop_the_pass(tmp_path):
    """EISDIR (a directory) and ENOENT (file deleted) on the way; the other IRQs are placed."""
    tree = build(tmp_path / "t")
    nic = tree / "proc" / "irq" / str(NIC) / "smp_affinity"
    nic.unlink()
    nic.mkdir()
    (tree / "proc" / "irq" / str(I915) / "smp_affinity").unlink()
    out = run("--oneshot", "--interval=1", "--sysroot", str(tree))
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert affinity(tree, AHCI).bit_count() == 1   # storage: one CPU (classify.c)


class FaultyRoot(SysRoot):
    """Kernel verdicts a file system cannot produce: EIO, EINVAL, ENOSPC per IRQ."""

    def __init__(self, base, verdicts: dict[int, int]) -> None:
        super().__init__(base)
        self.verdicts = verdicts
        self.attempts: dict[int, list[str]] = {}
        self.explode = False

    def write(self, path: str, data: str) -> int:
        irq = int(Path(path).parent.name)
        self.attempts.setdefault(irq, []).append(data)
        if self.explode:
            raise RuntimeError("injected bug")
        return self.verdicts.get(irq) or super().write(path, data)


def in_process_daemon(root: SysRoot, tmp_path: Path) -> Daemon:
    opts = resolve(["--sysroot", root.base, "--interval=1"], {}, Config())
    log = logging.getLogger("test-daemon")
    balancer = Balancer(root, opts.settings, log=log)
    balancer.start()
    daemon = Daemon(opts, balancer, log=log, signals=_Signals(), notifier=Notifier({}))
    daemon.interval = 0  # a rescan pass's wait takes no time
    return daemon


def test_the_collector_skips_the_tree_but_frees_the_last_one(tmp_path):
    """After each (re)build pass the live objects are frozen (full collections no
    longer walk the tree and database); a rebuild thaws them first, so the tree
    it replaced is freed instead of staying frozen for good."""
    d = in_process_daemon(SysRoot(str(build(tmp_path / "t"))), tmp_path)
    frozen = []
    for _ in range(5):
        d.balancer.force_rescan()
        d.run_pass()
        frozen.append(gc.get_freeze_count())
    assert frozen[0] > 0
    assert frozen[-1] <= frozen[0]  # kept frozen, each old tree would add its objects


def test_kernel_refusals_follow_irqbalance_policy(tmp_path):
    verdicts = {NIC: errno.EIO, AHCI: errno.EINVAL, I915: errno.ENOSPC}
    root = FaultyRoot(build(tmp_path / "t"), verdicts)
    d = in_process_daemon(root, tmp_path)
    reports = [d.run_pass() for _ in range(3)]
    assert all(r is not None for r in reports)
    got = {w.irq: w.errno for w in reports[0].writes}
    assert {irq: got[irq] for irq in verdicts} == verdicts
    assert len(root.attempts[NIC]) == 1                      # unmanaged until a rescan
    assert len(root.attempts[AHCI]) == 3                     # transient: retried every pass
    assert len(root.attempts[I915]) == 3                     # no vector: re-queued, placed again
    nic = next(x for x in d.balancer.decisions() if x.irq == NIC)
    assert "unmanaged" in nic.reason


def test_a_failing_pass_is_logged_and_the_next_one_rescans(tmp_path, caplog):
    root = FaultyRoot(build(tmp_path / "t"), {})
    d = in_process_daemon(root, tmp_path)
    root.explode = True
    with caplog.at_level(logging.ERROR, "test-daemon"):
        assert d.run_pass() is None
    assert "balancing pass failed (RuntimeError: injected bug)" in caplog.text
    root.explode = False
    report = d.run_pass()
    assert report is not None and report.rescanned


def test_reload_applies_the_file_but_keeps_socket_settings(tmp_path):
    """A ``systemctl reload`` must not undo irqbalance-ui's "settings cpus"."""
    tree = build(tmp_path / "t")
    config = tmp_path / "c.yaml"
    config.write_text("balancing:\n  interval: 7\n  banned_modules: [xhci]\n")
    d = in_process_daemon(SysRoot(tree), tmp_path)
    d._reload = lambda: resolve(["--sysroot", str(tree)], {}, load_config(config))
    ControlAdapter(d).control_ban_cpus("1")
    d.run_pass()
    d.reload()
    s = d.balancer.settings
    assert (s.socket_banned_cpulist, s.banmod, d.interval) == ("1", ("xhci",), 7)
    assert d.balancer.need_rescan


# --------------------------------------------------------------------------
# hooks, bad input, pid file, single instance, restore
# --------------------------------------------------------------------------


def test_hanging_crashing_and_garbage_hooks_touch_only_their_irq(tmp_path):
    tree = build(tmp_path / "t")
    script = tmp_path / "policy"
    script.write_text(
        "#!/bin/sh\n"
        f'case "$2" in {NIC}) sleep 60;; {XHCI}) kill -SEGV $$;; {I915}) echo "%%%garbage";;'
        f' {AHCI}) echo ban=true;; esac\nexit 0\n')
    script.chmod(0o755)
    config = tmp_path / "c.yaml"
    # long enough for a shell to start on a busy machine: only "sleep 60" may time out
    config.write_text("hooks:\n  timeout_s: 3\n")
    out = run("--dry-run", "--format=json", "--policyscript", str(script), "--config", str(config),
              "--sysroot", str(tree))
    assert out.returncode == 0, out.stderr
    irqs = {i["irq"]: i for i in json.loads(out.stdout)["irqs"]}
    assert irqs[AHCI]["class"] == "banned"
    assert irqs[NIC]["class"] == "ethernet" and irqs[NIC]["level"] == "core"
    assert irqs[I915]["class"] == "video" and irqs[XHCI]["class"] != "banned"
    assert out.stderr.count("timed out after 3 s") == 1
    assert "Bad format for policy, ignoring: %%%garbage" in out.stderr
    assert "killed by signal 11" in out.stderr


@pytest.mark.parametrize("args, env, code, words", [
    (["--bogus"], {}, 1, "unrecognized option"),
    (["--interval=x"], {}, 1, "--interval"),
    ([], {"IRQBALANCE_ARGS": "--oneshot --deepestcache=0"}, 1, "IRQBALANCE_ARGS"),
    ([], {"IRQBALANCE_BANNED_CPULIST": "1-x"}, 2, "IRQBALANCE_BANNED_CPULIST"),
    ([], {"IRQBALANCE_BANNED_CPUS": "zz"}, 2, "IRQBALANCE_BANNED_CPUS"),
    (["--config=CONFIG"], {}, 2, "did you mean 'interval'"),
    (["--config=BROKEN"], {}, 2, "YAML error at line 3, column 7: mapping values are not allowed"),
    (["--config=/nonexistent.yaml"], {}, 2, "No such file"),
])
def test_bad_input_is_one_line_and_an_exit_code(tmp_path, args, env, code, words):
    (tmp_path / "c.yaml").write_text("balancing:\n  intervl: 3\n")
    (tmp_path / "b.yaml").write_text("balancing:\n  interval: 3\n  x: y: z\n")
    args = [a.replace("CONFIG", str(tmp_path / "c.yaml"))
            .replace("BROKEN", str(tmp_path / "b.yaml")) for a in args]
    tree = build(tmp_path / "t")
    out = run(*args, "--oneshot", "--dry-run", "--sysroot", str(tree), env=clean_env(**env))
    assert out.returncode == code
    assert words in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_daemon_mode_pid_file_and_single_instance(tmp_path):
    tree = build(tmp_path / "t")
    pidfile = tmp_path / "pyirqbalance.pid"
    out = run("--interval=1", "--pid", str(pidfile), "--sysroot", str(tree))
    assert out.returncode == 0, out.stderr                    # the parent returns at once
    pid = int(read_when_complete(pidfile))
    try:
        # detached: a grandchild that init (or a subreaper) adopted, not our child
        stat = Path(f"/proc/{pid}/stat").read_text()
        assert not is_dead(pid) and int(stat[stat.rindex(")") + 2 :].split()[1]) != os.getpid()
        assert (tree / "run" / "irqbalance" / "pyirqbalance.lock").read_text() == f"{pid}\n"
        second = run("--foreground", "--interval=1", "--sysroot", str(tree))
        assert second.returncode == 3
        lock = tree / "run" / "irqbalance" / "pyirqbalance.lock"
        assert second.stderr == (f"pyirqbalance: another pyirqbalance is already running "
                                 f"(pid {pid}, lock {lock})\n")
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not pidfile.exists(), what="the daemon removes its pid file")
        wait_dead(pid)
    finally:
        if not is_dead(pid) and pidfile.exists():
            os.kill(pid, signal.SIGKILL)


def test_existing_pid_file_of_a_live_process_is_not_replaced(tmp_path):
    tree = build(tmp_path / "t")
    pidfile = tmp_path / "x.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    out = run("--oneshot", "--interval=1", "--pid", str(pidfile), "--sysroot", str(tree))
    assert out.returncode == 0
    assert pidfile.read_text() == f"{os.getpid()}\n"
    assert "names running process" in out.stderr


def test_oneshot_records_originals_and_restore_puts_them_back(tmp_path):
    tree = build(tmp_path / "t")
    before = {irq: affinity(tree, int(irq)) for irq in affinities(tree)}
    out = run("--oneshot", "--interval=1", "--sysroot", str(tree))
    assert out.returncode == 0, out.stderr
    after = {irq: affinity(tree, int(irq)) for irq in affinities(tree)}
    changed = {irq for irq in before if before[irq] != after[irq]}
    assert changed
    state = tree / "var" / "lib" / "pyirqbalance" / "original-affinity.json"
    saved = json.loads(state.read_text())["irqs"]
    assert {irq: int(entry["mask"].replace(",", ""), 16) for irq, entry in saved.items()} == {
        irq: before[irq] for irq in changed}
    dry = run("--restore", "--dry-run", "--sysroot", str(tree))
    assert dry.returncode == 0 and dry.stdout.count("would restore") == len(changed)
    assert {irq: affinity(tree, int(irq)) for irq in affinities(tree)} == after
    out = run("--restore", "--sysroot", str(tree))
    assert out.returncode == 0, out.stderr
    assert {irq: affinity(tree, int(irq)) for irq in affinities(tree)} == before
    assert not state.exists()


def test_dry_run_does_not_wait_for_the_interval(tmp_path):
    """--interval=100000 would take a day if the dry run waited; the subprocess timeout guards."""
    tree = build(tmp_path / "t")
    out = run("--dry-run", "--interval=100000", "--sysroot", str(tree))
    assert out.returncode == 0 and "IRQ" in out.stdout


def test_a_process_named_irqbalance_on_this_host_is_seen(tmp_path):
    """Through SysRoot("/"): the kernel's names of a real process (other suites on this
    machine may run irqbalance too, so this one is looked up by its pid)."""
    fake = tmp_path / "irqbalance"
    shutil.copy("/bin/sleep", fake)
    proc = subprocess.Popen([str(fake), "60"])
    try:
        # comm is the parent's until the child has exec'd
        names = wait_until(lambda: (n := read_process_names(SysRoot("/"), proc.pid)).comm
                           == "irqbalance" and n, what="the child runs the copy")
        assert names.argv0 == str(fake) and names.exe == str(fake)
        assert is_irqbalance(names)
        # the finder's scan sees this child among the host's irqbalance processes (it returns
        # the first one it meets, which may be another suite's)
        live = SysRoot("/")
        found = find_irqbalance(live, self_pid=os.getpid())
        assert found is not None and is_irqbalance(read_process_names(live, found))
        assert proc.pid in _irqbalance_pids(live)
        # through a /proc holding only this child (its real kernel files): the finder names
        # it, and never the process that asks
        only = tmp_path / "only-child"
        (only / "proc").mkdir(parents=True)
        (only / "proc" / str(proc.pid)).symlink_to(f"/proc/{proc.pid}")
        assert find_irqbalance(SysRoot(str(only)), self_pid=os.getpid()) == proc.pid
        assert find_irqbalance(SysRoot(str(only)), self_pid=proc.pid) is None
    finally:
        proc.kill()
        proc.wait()
    assert proc.pid not in _irqbalance_pids(SysRoot("/"))


def _irqbalance_pids(root: SysRoot) -> set[int]:
    """Every pid ``find_irqbalance`` would accept (its own test, pid by pid)."""
    return {pid for pid in list_pids(root) if is_irqbalance(read_process_names(root, pid))}


class _LiveLooking(SysRoot):
    """A fake tree the daemon takes for the running machine (only the check looks)."""

    @property
    def is_live(self) -> bool:
        return True


def _with_irqbalance(tree: Path, pid: int = 4321) -> Path:
    proc = tree / "proc" / str(pid)
    proc.mkdir()
    (proc / "comm").write_text("irqbalance\n")
    (proc / "cmdline").write_bytes(b"/usr/sbin/irqbalance\0--foreground\0")
    return tree


def test_a_running_irqbalance_stops_the_start_unless_forced(tmp_path, monkeypatch, capsys):
    from pyirqbalance.service import daemon as daemon_module
    from pyirqbalance.service.cli import main

    tree = _with_irqbalance(build(tmp_path / "t"))
    before = affinities(tree)
    monkeypatch.setattr(daemon_module, "SysRoot", _LiveLooking)
    assert main(["--oneshot", "--interval=1", "--sysroot", str(tree)], environ={}) == 3
    assert capsys.readouterr().err == (
        "pyirqbalance: irqbalance is running (pid 4321); two balancers would fight over "
        "/proc/irq: stop it (systemctl disable --now irqbalance) or use --force\n")
    assert affinities(tree) == before
    assert main(["--oneshot", "--force", "--interval=1", "--sysroot", str(tree)], environ={}) == 0
    assert affinities(tree) != before


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_exposure_is_at_most_4():
    out = subprocess.run(["systemd-analyze", "security", "--offline=true",
                          str(ROOT / "systemd" / "pyirqbalance.service")],
                         capture_output=True, text=True, timeout=60)
    line = next(line for line in out.stdout.splitlines() if "Overall exposure level" in line)
    score = float(line.split(":")[1].split()[0])
    assert score <= 4.0, line
    unit = (ROOT / "systemd" / "pyirqbalance.service").read_text()
    for needed in ("Type=notify", "WatchdogSec=", "Conflicts=irqbalance.service",
                   "EnvironmentFile=-/etc/default/irqbalance",
                   "EnvironmentFile=-/etc/sysconfig/irqbalance",
                   "ExecReload=/bin/kill -HUP $MAINPID",
                   "RuntimeDirectory=irqbalance pyirqbalance", "RuntimeDirectoryPreserve=yes",
                   "StateDirectory=pyirqbalance"):
        assert needed in unit
    settings = [ln.split("=")[0] for ln in unit.splitlines() if ln and not ln.startswith("#")]
    assert "ProtectKernelTunables" not in settings and "PrivateUsers" not in settings
