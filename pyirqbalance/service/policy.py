"""Per-IRQ hooks: the policy script (``-l``) and the legacy ``--banscript``.

Both are called for every IRQ when the IRQ database is built (start-up and
each rescan) with the device's sysfs directory (the sysfs root for IRQs
without a PCI device) and the IRQ number, as irqbalance calls them (classify.c
``get_irq_user_policy``; the banscript of 1.0-1.4). Unlike irqbalance they run without a
shell (an argv list, so
no quoting surprises), in their own process group, with a timeout after
which the whole group is killed; output beyond 64 KiB is drained and
dropped. A hook that hangs, crashes or prints garbage therefore changes
only the IRQ it was asked about; each distinct problem is logged once.

Policy script semantics (irqbalance 1.9):

* a regular file: exit 0 → its ``key=value`` lines apply; any other exit →
  "policy script returned non-zero code!  skipping user policy";
* a directory: every entry in readdir order that is a regular file with the
  owner-execute bit runs in turn; exit 0 accepts its policy and stops,
  exit 1 means "not mine" and the next one runs, anything else is logged
  as an error and the next one runs. Quirk kept: the policy is reset only
  before the *next* script, so keys printed by the last script that ran
  stay in effect even if it exited 1 or more;
* death by a signal reads as exit 0 (``WEXITSTATUS``), so its output is
  accepted -- irqbalance's behaviour, logged as a warning here.

Deliberate differences: a hook killed at the timeout contributes nothing
(irqbalance would wait for ever); a script that keeps timing out
(:data:`MAX_CONSECUTIVE_TIMEOUTS` in a row) is not run again until the next
SIGHUP, so a hung script cannot stall a rebuild by one timeout per IRQ; a
banscript that cannot be started bans nothing (irqbalance's shell would
exit 127 and ban every PCI IRQ).
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import stat
import subprocess
import time
from typing import NamedTuple

from ..engine.model import BalanceLevel, HintPolicy, IrqPolicy
from ..supervise import short

__all__ = [
    "MAX_CONSECUTIVE_TIMEOUTS",
    "OUTPUT_LIMIT",
    "HookResult",
    "PolicyRunner",
    "make_policy_hook",
    "parse_policy_output",
    "run_hook",
]

#: Bytes kept of a hook's stdout and of its stderr; the rest is read and dropped.
OUTPUT_LIMIT = 64 * 1024
#: A script that timed out this many times in a row is skipped until reload.
MAX_CONSECUTIVE_TIMEOUTS = 3
#: Characters of a hook's output shown in a log line (escaped).
SHOWN_OUTPUT = 200
#: Seconds output is still read after the hook exited (its children may hold the pipes).
_DRAIN_AFTER_EXIT = 0.1
#: Longest sleep between checks of whether the hook exited.
_POLL = 0.02

_LEVELS = {level.name.lower(): level for level in BalanceLevel}
_INT_MAX = 2**31 - 1


def parse_policy_output(text: str) -> tuple[IrqPolicy, list[str]]:
    """Parse a policy script's ``key=value`` lines; bad lines become warnings.

    Keys are case-insensitive (``ban``, ``balance_level``, ``numa_node``,
    ``hintpolicy``), values are taken exactly (no trimming, as irqbalance);
    enumerated values are case-insensitive. A line without ``=``, an unknown
    key or a bad value is ignored with a warning; the other lines still apply.
    """
    ban: bool | None = None
    level: BalanceLevel | None = None
    node: int | None = None
    hint: HintPolicy | None = None
    warnings: list[str] = []
    for line in text.split("\n"):
        if not line:
            continue
        key, eq, value = line.partition("=")
        if not eq:
            warnings.append(f"Bad format for policy, ignoring: {line}")
            continue
        name = key.lower()
        if name == "ban":
            if value.lower() in ("true", "false"):
                ban = value.lower() == "true"
            else:
                warnings.append(f"Unknown value for ban policy: {value}")
        elif name == "balance_level":
            if value.lower() in _LEVELS:
                level = _LEVELS[value.lower()]
            else:
                warnings.append(f"Bad value for balance_level policy: {value}")
        elif name == "numa_node":
            digits = value[1:] if value.startswith("-") else value
            if digits.isascii() and digits.isdigit() and -1 <= int(value) <= _INT_MAX:
                node = int(value)
            else:
                warnings.append(f"Bad value for numa_node policy: {value}")
        elif name == "hintpolicy":
            try:
                hint = HintPolicy(value.lower())
            except ValueError:
                warnings.append(f"Unknown value for hintpolicy: {value}")
        else:
            warnings.append(f"Unknown key returned, ignoring: {key}")
    return IrqPolicy(ban=ban, balance_level=level, numa_node=node, hintpolicy=hint), warnings


class HookResult(NamedTuple):
    """How one hook run ended."""

    #: Exit status as irqbalance's ``WEXITSTATUS`` reads it (a signal death reads 0);
    #: None when the hook could not be started or was killed at the timeout.
    status: int | None
    #: The signal that ended it, if one did.
    signal: int | None
    stdout: str
    stderr: str
    #: Why there is no status ("timed out after 2 s", "cannot run: ...").
    error: str | None = None


def run_hook(argv: list[str], timeout: float, *, limit: int = OUTPUT_LIMIT) -> HookResult:
    """Run ``argv`` (no shell) for at most ``timeout`` seconds; never raises.

    The hook runs in its own process group. Once it has exited, whatever it
    left behind in that group (``(sleep 1000 &)``) is killed too, so
    a background child can neither hold its pipes open nor outlive it.
    """
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, close_fds=True,
        )
    except OSError as err:
        return HookResult(None, None, "", "", f"cannot run: {err.strerror or err}")
    out = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    try:
        timed_out = _collect(proc, out, time.monotonic() + timeout, limit)
    finally:
        # The whole group, while the exited leader still holds its number
        # (not reaped yet): its children may hold the pipes or linger.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        for pipe in out:
            if pipe is not None:
                pipe.close()
        _end_orphans()
    stdout = out[proc.stdout].decode("utf-8", "replace")
    stderr = out[proc.stderr].decode("utf-8", "replace")
    if timed_out:
        return HookResult(None, None, stdout, stderr, f"timed out after {timeout:g} s")
    code = proc.returncode
    if code < 0:
        return HookResult(0, -code, stdout, stderr)
    return HookResult(code, None, stdout, stderr)


#: PR_SET_CHILD_SUBREAPER (include/uapi/linux/prctl.h).
_PR_SET_CHILD_SUBREAPER = 36
_subreaper: bool | None = None


def become_subreaper() -> bool:
    """Make this process adopt its orphaned descendants (once); False where it cannot.

    A hook's child that calls ``setsid`` leaves the hook's process group, so
    killing the group misses it; once its parent is gone it is re-parented to
    the nearest subreaper -- this process -- and :func:`_end_orphans` ends it.
    """
    global _subreaper
    if _subreaper is None:
        import ctypes  # deferred: daemons with hooks only

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            _subreaper = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        except (OSError, AttributeError):
            _subreaper = False
    return _subreaper


def _children() -> set[int]:
    """This process's children (every thread's ``/proc/self/task/*/children``)."""
    from ..kernel.sysroot import SysRoot  # the host's /proc: our own processes

    host = SysRoot("/")
    kids: set[int] = set()
    for tid in host.listdir(host.proc("self", "task")) or ():
        text = host.try_read_text(host.proc("self", "task", tid, "children"))
        kids.update(int(p) for p in (text or "").split() if p.isdigit())
    return kids


def _end_orphans(rounds: int = 20) -> None:
    """Kill and reap every child left: descendants of hooks this process adopted.

    The daemon starts no other processes. Each round ends the orphans found;
    their own children are adopted in turn and ended in the next round.
    """
    if not _subreaper:
        return
    for _ in range(rounds):
        kids = _children()
        if not kids:
            return
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 2.0
        for pid in kids:
            while True:
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done or time.monotonic() > deadline:
                    break
                time.sleep(0.005)


def _exited(pid: int) -> bool:
    """Whether ``pid`` (our child) has exited, without reaping it."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None and info.si_pid == pid


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` exits (Linux 5.3+), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _collect(proc: subprocess.Popen, out: dict, deadline: float, limit: int) -> bool:
    """Read both pipes until the hook has exited and they are drained; True on timeout.

    After the exit, output still arriving (from children holding the pipes) is
    read for at most :data:`_DRAIN_AFTER_EXIT` seconds.
    """
    pidfd = _pidfd(proc.pid)
    delay = 0.0005
    with selectors.DefaultSelector() as sel:
        for pipe in out:
            sel.register(pipe, selectors.EVENT_READ)
        if pidfd is not None:
            sel.register(pidfd, selectors.EVENT_READ)
        try:
            exited_at: float | None = None
            while True:
                now = time.monotonic()
                if exited_at is None and _exited(proc.pid):
                    exited_at = now
                pipes_open = any(key.fileobj in out for key in sel.get_map().values())
                drained = not pipes_open or now - (exited_at or now) > _DRAIN_AFTER_EXIT
                if exited_at is not None and drained:
                    return False
                if now >= deadline:
                    return exited_at is None
                wait = deadline - now
                if exited_at is not None:
                    wait = min(wait, exited_at + _DRAIN_AFTER_EXIT - now)
                elif pidfd is None or not sel.get_map():
                    wait, delay = min(wait, delay), min(delay * 2, _POLL)
                for key, _ in sel.select(max(wait, 0)):
                    if key.fileobj is pidfd:
                        sel.unregister(pidfd)  # exited: _exited() says so next round
                        continue
                    _read_into(key, sel, out, limit)
        finally:
            if pidfd is not None:
                os.close(pidfd)


def _read_into(key: selectors.SelectorKey, sel: selectors.BaseSelector, out: dict,
               limit: int) -> None:
    data = os.read(key.fd, 65536)
    if not data:
        sel.unregister(key.fileobj)
        return
    buf = out[key.fileobj]
    if len(buf) < limit:
        buf += data[: limit - len(buf)]


class PolicyRunner:
    """The balancer's ``PolicyHook``: ``runner(devpath, irq) -> IrqPolicy | None``."""

    def __init__(
        self,
        policyscript: str | None,
        banscript: str | None,
        timeout: float,
        log: logging.Logger,
        *,
        sysfs_root: str = "/sys",
    ) -> None:
        # Absolute now: a relative path must not change meaning if the cwd does.
        self.policyscript = os.path.abspath(policyscript) if policyscript else None
        self.banscript = os.path.abspath(banscript) if banscript else None
        self.timeout = timeout
        self.log = log
        self.sysfs_root = sysfs_root
        self._logged: set[tuple] = set()
        self._timeouts: dict[str, int] = {}
        if self.banscript:
            log.warning("Please note that --banscript is deprecated, "
                        "please use --policyscript instead")

    def begin_build(self) -> None:
        """A database build (start-up, rescan) begins: each problem is logged once per build."""
        self._logged.clear()

    def __call__(self, devpath: str, irq: int) -> IrqPolicy | None:
        policy = self._policy(devpath, irq) if self.policyscript else None
        if self.banscript and devpath != self.sysfs_root and self._banned(devpath, irq):
            policy = (policy or IrqPolicy())._replace(ban=True)
        return policy

    # -- logging -------------------------------------------------------

    def _once(self, level: int, key: tuple, message: str, *args: object) -> None:
        if key not in self._logged:
            self._logged.add(key)
            self.log.log(level, message, *args)

    # -- running one script --------------------------------------------

    def _run(self, script: str, devpath: str, irq: int) -> HookResult | None:
        """Run ``script devpath irq``; None if it did not finish (logged once)."""
        if self._timeouts.get(script, 0) >= MAX_CONSECUTIVE_TIMEOUTS:
            return None
        result = run_hook([script, devpath, str(irq)], self.timeout)
        if result.stderr.strip():
            self._once(logging.WARNING, (script, "stderr"),
                       "%s (IRQ %d) said on stderr: %s", script, irq,
                       short(result.stderr.strip(), SHOWN_OUTPUT))
        if result.status is None:
            if result.error and result.error.startswith("timed out"):
                count = self._timeouts[script] = self._timeouts.get(script, 0) + 1
                if count >= MAX_CONSECUTIVE_TIMEOUTS:
                    self.log.error("%s timed out %d times in a row: not run again until reload",
                                   script, count)
            self._once(logging.ERROR, (script, "error", result.error),
                       "%s %s %d: %s; IRQ %d keeps its defaults",
                       script, devpath, irq, result.error, irq)
            return None
        self._timeouts[script] = 0
        if result.signal is not None:
            self._once(logging.WARNING, (script, "signal", result.signal),
                       "%s (IRQ %d) was killed by signal %d; irqbalance reads that as exit 0",
                       script, irq, result.signal)
        return result

    def _parse(self, script: str, irq: int, text: str) -> IrqPolicy:
        policy, warnings = parse_policy_output(text)
        for warning in warnings:
            self._once(logging.WARNING, (script, "output"),
                       "%s (IRQ %d): %s", script, irq, short(warning, SHOWN_OUTPUT))
        return policy

    # -- policy script ---------------------------------------------------

    def _policy(self, devpath: str, irq: int) -> IrqPolicy | None:
        script = self.policyscript
        if script is None:
            return None
        try:
            st = os.stat(script)
        except OSError as err:  # irqbalance skips the policy when stat() fails
            self._once(logging.WARNING, (script, "stat"), "policy script %s: %s",
                       script, err.strerror)
            return None
        if stat.S_ISDIR(st.st_mode):
            return self._policy_dir(script, devpath, irq)
        result = self._run(script, devpath, irq)
        if result is None:
            return None
        if result.status != 0:
            self._once(logging.WARNING, (script, "status", result.status),
                       "policy script returned non-zero code!  skipping user policy "
                       "(%s, IRQ %d, exit %d)", script, irq, result.status)
            return None
        return self._overrides(irq, self._parse(script, irq, result.stdout))

    def _policy_dir(self, directory: str, devpath: str, irq: int) -> IrqPolicy | None:
        try:
            names = os.listdir(directory)  # readdir order, as irqbalance runs them
        except OSError as err:
            self._once(logging.WARNING, (directory, "listdir"), "policy directory %s: %s",
                       directory, err.strerror)
            return None
        policy: IrqPolicy | None = None
        for name in names:
            path = os.path.join(directory, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or not st.st_mode & stat.S_IXUSR:
                self._once(logging.DEBUG, (path, "skip"),
                           "Skipping script %s due to lack of executable permission", path)
                continue
            policy = None  # reset before each script (and only then: see the module doc)
            result = self._run(path, devpath, irq)
            if result is None:
                continue
            policy = self._parse(path, irq, result.stdout)
            if result.status == 0:
                break
            if result.status != 1:
                self._once(logging.ERROR, (path, "status", result.status),
                           "Error executing policy script %s : %d", path, result.status)
        return self._overrides(irq, policy) if policy is not None else None

    def _overrides(self, irq: int, policy: IrqPolicy) -> IrqPolicy:
        for key in ("ban", "balance_level", "numa_node", "hintpolicy"):
            value = getattr(policy, key)
            if value is not None:
                shown = value.name.lower() if isinstance(value, BalanceLevel) else (
                    value.value if isinstance(value, HintPolicy) else str(value).lower())
                self.log.debug("IRQ %d: Override %s to %s", irq, key, shown)
        return policy

    # -- banscript -------------------------------------------------------

    def _banned(self, devpath: str, irq: int) -> bool:
        if self.banscript is None:
            return False
        result = self._run(self.banscript, devpath, irq)
        if result is None or result.status == 0:
            return False
        self.log.info("irq %d is banned by %s", irq, self.banscript)
        return True


def make_policy_hook(
    policyscript: str | None,
    banscript: str | None,
    timeout: float,
    log: logging.Logger,
    *,
    sysfs_root: str = "/sys",
) -> PolicyRunner | None:
    """The balancer's policy hook, or None when neither script is configured.

    ``sysfs_root`` is what the balancer passes for IRQs without a PCI device
    (``SysRoot.sys()``); the banscript is never run for those, as in irqbalance.
    """
    if not policyscript and not banscript:
        return None
    return PolicyRunner(policyscript, banscript, timeout, log, sysfs_root=sysfs_root)
