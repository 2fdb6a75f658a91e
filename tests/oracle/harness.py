"""Differential harness: run irqbalance 1.9.2 and pyirqbalance on the same fake machine.

A machine description (mkfake schema, tests/machines/*.json) is built into a
fake ``proc/`` + ``sys/`` tree, and every run stages a fresh copy of it on a
tmpfs, creating each directory's entries so that ``readdir`` returns them as
the kernel would: kernfs name-hash order under ``sys/``, numeric under
``proc/`` (irqbalance's tie-breaks follow readdir order, so both balancers
must list the very same directories).

* irqbalance has hard-coded paths, so it runs inside a private mount
  namespace (``unshare -m --propagation private``): a tmpfs over ``/run``
  holds the staged copy, bind-mounted over ``/proc/interrupts``,
  ``/proc/stat``, ``/proc/cmdline``, ``/proc/irq`` and ``/sys``.
* Any other balancer is a command line (``pyirqbalance_command(...)``) in
  which ``{sysroot}`` is replaced by the staged copy. As root it runs in the
  same kind of namespace (the real /proc/irq is out of its reach even if it
  ignored ``--sysroot``); without root, outside any namespace on a copy
  staged in a tmpfs directory (/dev/shm).

Modes: ``run_oneshot`` (one pass; the result is every ``smp_affinity`` the
balancer wrote, found by content or mtime change) and ``run_cycles`` (the
daemon for K passes; ``/proc/interrupts`` and ``/proc/stat`` are FIFOs that
hand out one fresh snapshot per open, and between passes mkfake's SimState
fires every IRQ's ``rate`` on its effective CPU and the kernel's answer to
each write is applied). ``compare`` / ``compare_cycles`` give per-IRQ
agreement. Nothing here writes the real /proc or /sys: mounts happen only
after checking that the process is in a mount namespace of its own.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import hashlib
import itertools
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from ..hermetic import pyirqbalance_argv
from . import mkfake

__all__ = [
    "IRQBALANCE",
    "SYSROOT",
    "Agreement",
    "CyclesResult",
    "Pass",
    "Result",
    "build_tree",
    "can_unshare",
    "compare",
    "compare_cycles",
    "have_oracle",
    "have_pyirqbalance",
    "irqbalance_version",
    "load_machine",
    "machine_digest",
    "machine_options",
    "mask_cpus",
    "pyirqbalance_command",
    "run_cycles",
    "run_oneshot",
]

#: The real balancer, as the ``balancer`` argument.
IRQBALANCE = "irqbalance"
#: Placeholder in a command balancer's argv for the staged tree's root.
SYSROOT = "{sysroot}"

IRQBALANCE_BIN = shutil.which("irqbalance") or "/usr/sbin/irqbalance"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
#: Where the staged tree lives inside the private namespace (a tmpfs over /run).
NS_STAGE = "/run/pyirqbalance-harness"
#: The environment every balancer gets (plus the caller's ``env``): nothing
#: from the test process leaks in (no INVOCATION_ID, no IRQBALANCE_*).
BASE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "LC_ALL": "C"}

Balancer = str | Sequence[str]
MachineLike = str | os.PathLike[str] | Mapping


# --------------------------------------------------------------------------
# what is available
# --------------------------------------------------------------------------


@cache
def can_unshare() -> tuple[bool, str]:
    """Can a private mount namespace be made here (root, util-linux)?"""
    if sys.platform != "linux":
        return False, "not Linux"
    if os.geteuid() != 0:
        return False, "not root: the private mount namespace needs root"
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False, "util-linux unshare/mount not found"
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return False, "unshare -m failed: " + probe.stderr.strip()
    return True, ""


@cache
def have_oracle() -> tuple[bool, str]:
    """Can the real irqbalance be run here? ``(True, "")`` or ``(False, why not)``."""
    if not os.access(IRQBALANCE_BIN, os.X_OK):
        return False, "irqbalance is not installed (apt-get install irqbalance)"
    return can_unshare()


@cache
def have_pyirqbalance() -> tuple[bool, str]:
    """Does ``python3 -m pyirqbalance --help`` work and name ``--sysroot`` and ``--oneshot``?

    ``(False, why)`` is a broken product, not a missing environment: callers fail on it.
    """
    try:
        out = subprocess.run(
            pyirqbalance_argv("--help"),
            capture_output=True,
            text=True,
            env=_env(None),
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return False, f"python3 -m pyirqbalance --help: {err}"
    text = out.stdout + out.stderr
    if out.returncode != 0 or "--sysroot" not in text or "--oneshot" not in text:
        return False, (f"python3 -m pyirqbalance --help exited {out.returncode} or lacks "
                       f"--oneshot/--sysroot: {text.strip()[-500:]}")
    return True, ""


@cache
def irqbalance_version() -> str:
    """The installed irqbalance package version, e.g. ``"1.9.2-1"`` (1.9.2 has no working -V)."""
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "irqbalance"], capture_output=True, text=True
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except OSError:
        pass
    out = subprocess.run([IRQBALANCE_BIN, "--version"], capture_output=True, text=True)
    return (out.stdout + out.stderr).strip().removeprefix("irqbalance version ")


#: The harness's configuration of pyirqbalance: no foreign-write check, since the
#: harness puts refused writes back after the pass instead of failing them (see the file).
HARNESS_CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "config" / "harness.yaml"


def pyirqbalance_command(*args: str) -> list[str]:
    """argv of pyirqbalance on the staged tree with the suite's explicit configuration:
    ``python3 -m pyirqbalance --config=HARNESS --sysroot {sysroot} ARGS`` (never the
    host's /etc/pyirqbalance/pyirqbalance.yaml; a ``--config`` in ARGS wins)."""
    return [*pyirqbalance_argv(f"--config={HARNESS_CONFIG}"), f"--sysroot={SYSROOT}", *args]


# --------------------------------------------------------------------------
# machines
# --------------------------------------------------------------------------


def load_machine(machine: MachineLike) -> mkfake.Machine:
    """A Machine from a description dict, a JSON file or a tree made by mkfake."""
    if isinstance(machine, Mapping):
        return mkfake.Machine(dict(machine))
    return mkfake.load_machine(os.fspath(machine))


def machine_options(machine: MachineLike) -> tuple[tuple[str, ...], dict[str, str]]:
    """The balancer arguments and environment a machine asks for (its ``harness`` key:
    ``{"extra_args": ["--deepestcache=3"], "env": {"IRQBALANCE_BANNED_CPULIST": "0-1"}}``)."""
    opts = load_machine(machine).desc.get("harness", {})
    return tuple(opts.get("extra_args", ())), dict(opts.get("env", {}))


def machine_digest(machine: MachineLike) -> str:
    """sha256 of the canonical description JSON: recorded results name the machine they ran on."""
    desc = load_machine(machine).desc
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()


def build_tree(machine: MachineLike, workdir: str | os.PathLike[str]) -> Path:
    """The machine's tree under ``workdir`` (a tree made by mkfake is used as is)."""
    if not isinstance(machine, Mapping) and os.path.isdir(machine):
        return Path(machine)
    m = load_machine(machine)
    out = Path(workdir) / f"tree-{m.name}"
    mkfake.build_tree(m, os.fspath(out), force=True)
    return out


# --------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------


_HEX = "0123456789abcdefABCDEF"


def mask_cpus(raw: str | None) -> int | None:
    """CPU set (bit i = CPU i) of a hex mask as written or shown; None if unparsable.

    ``"00000008"``, ``"00000000,00000008"`` and ``"8\\n"`` are the same set:
    irqbalance drops leading zero groups, the kernel prints nr_cpu_ids bits.
    """
    text = (raw or "").strip()
    if not text:
        return None
    value = 0
    for group in text.split(","):
        if not 0 < len(group) <= 8 or group.strip(_HEX):
            return None
        value = (value << 32) | int(group, 16)
    return value


def _cpulist(mask: int | None) -> str:
    if mask is None:
        return "?"
    return mkfake.fmt_cpulist([i for i in range(mask.bit_length()) if mask >> i & 1]) or "(none)"


def _irq_keys(d: Mapping) -> dict[int, str]:
    return {int(k): v for k, v in d.items()}


@dataclass(frozen=True, slots=True)
class Result:
    """One oneshot run: what the balancer wrote to ``/proc/irq/N/smp_affinity``."""

    machine: str
    balancer: str
    argv: tuple[str, ...]
    #: Exit status; negative: killed by that signal.
    returncode: int
    #: irq -> the text written (smp_affinity_list writes converted to a mask).
    written: dict[int, str]
    #: Written IRQs the kernel would refuse (managed or IRQF_NOBALANCING: EIO).
    kernel_would_reject: tuple[int, ...]
    wall_s: float
    log: str = ""
    #: CPU time (user + sys) and peak RSS of the balancer process (benchmarks).
    cpu_s: float = 0.0
    maxrss_kb: int = 0
    #: The kernel's share of cpu_s (system time).
    sys_s: float = 0.0

    @property
    def masks(self) -> dict[int, int | None]:
        return {irq: mask_cpus(raw) for irq, raw in self.written.items()}

    def to_json(self) -> dict:
        return {
            "mode": "oneshot",
            "machine": self.machine,
            "balancer": self.balancer,
            "argv": list(self.argv),
            "returncode": self.returncode,
            "written": {str(k): v for k, v in sorted(self.written.items())},
            "kernel_would_reject": list(self.kernel_would_reject),
            "wall_s": round(self.wall_s, 3),
            "cpu_s": self.cpu_s,
            "maxrss_kb": self.maxrss_kb,
            "sys_s": self.sys_s,
        }

    @classmethod
    def from_json(cls, d: Mapping) -> Result:
        return cls(
            machine=d["machine"],
            balancer=d["balancer"],
            argv=tuple(d["argv"]),
            returncode=d["returncode"],
            written=_irq_keys(d["written"]),
            kernel_would_reject=tuple(d["kernel_would_reject"]),
            wall_s=d.get("wall_s", 0.0),
            log=d.get("log", ""),
            cpu_s=d.get("cpu_s", 0.0),
            maxrss_kb=d.get("maxrss_kb", 0),
            sys_s=d.get("sys_s", 0.0),
        )


@dataclass(frozen=True, slots=True)
class Pass:
    """What one balancing pass wrote (index 0: before the first pass) and the kernel's answer."""

    index: int
    written: dict[int, str]
    #: irq -> why the kernel refused the write (EIO: managed; EINVAL: no online CPU).
    rejected: dict[int, str]
    #: irq -> the CPU it fires on once the kernel took the pass's writes.
    effective: dict[int, int] = field(default_factory=dict)
    #: CPU -> interrupt time (irq + softirq ns) the IRQs then fired there over
    #: the next window, whatever /proc/stat shows (the simulator's truth).
    fired: dict[int, int] = field(default_factory=dict)

    @property
    def masks(self) -> dict[int, int | None]:
        return {irq: mask_cpus(raw) for irq, raw in self.written.items()}

    def to_json(self) -> dict:
        out = {
            "pass": self.index,
            "written": {str(k): v for k, v in sorted(self.written.items())},
            "rejected": {str(k): v for k, v in sorted(self.rejected.items())},
        }
        if self.effective:
            out["effective_cpu_after"] = {str(k): v for k, v in sorted(self.effective.items())}
        if self.fired:
            out["fired_ns"] = {str(k): v for k, v in sorted(self.fired.items())}
        return out

    @classmethod
    def from_json(cls, d: Mapping) -> Pass:
        eff = {int(k): v for k, v in d.get("effective_cpu_after", {}).items()}
        fired = {int(k): v for k, v in d.get("fired_ns", {}).items()}
        return cls(d["pass"], _irq_keys(d["written"]), _irq_keys(d["rejected"]), eff, fired)


@dataclass(frozen=True, slots=True)
class CyclesResult:
    """A daemon run over several simulated passes."""

    machine: str
    balancer: str
    argv: tuple[str, ...]
    returncode: int
    passes: tuple[Pass, ...]
    #: irq -> smp_affinity_list after the run (as the kernel holds it).
    final_affinity: dict[int, str]
    interrupts_reads: int
    stat_reads: int
    errors: tuple[str, ...]
    wall_s: float
    log: str = ""
    cpu_s: float = 0.0
    maxrss_kb: int = 0
    #: The kernel's share of cpu_s (system time).
    sys_s: float = 0.0
    #: The balancer's CPU time so far (ns, all threads, schedstat) at each
    #: /proc/stat open: one a pass, so successive differences are passes.
    stat_cpu_ns: tuple[int | None, ...] = ()

    def steady_pass_cpu_ms(self) -> list[float]:
        """CPU ms of each steady pass: from one pass's /proc/stat read to the next.

        The first two differences are left out: the rest of start-up and the
        first pass, which places every IRQ.
        """
        s = self.stat_cpu_ns
        return [(b - a) / 1e6 for a, b in itertools.pairwise(s[2:])
                if a is not None and b is not None]

    def to_json(self) -> dict:
        return {
            "mode": "cycles",
            "machine": self.machine,
            "balancer": self.balancer,
            "argv": list(self.argv),
            "returncode": self.returncode,
            "passes": [p.to_json() for p in self.passes],
            "final_affinity": {str(k): v for k, v in sorted(self.final_affinity.items())},
            "interrupts_reads": self.interrupts_reads,
            "stat_reads": self.stat_reads,
            "errors": list(self.errors),
            "wall_s": round(self.wall_s, 3),
            "cpu_s": self.cpu_s,
            "maxrss_kb": self.maxrss_kb,
            "sys_s": self.sys_s,
            "stat_cpu_ns": list(self.stat_cpu_ns),
        }

    @classmethod
    def from_json(cls, d: Mapping) -> CyclesResult:
        return cls(
            machine=d["machine"],
            balancer=d["balancer"],
            argv=tuple(d["argv"]),
            returncode=d["returncode"],
            passes=tuple(Pass.from_json(p) for p in d["passes"]),
            final_affinity=_irq_keys(d["final_affinity"]),
            interrupts_reads=d["interrupts_reads"],
            stat_reads=d["stat_reads"],
            errors=tuple(d["errors"]),
            wall_s=d.get("wall_s", 0.0),
            log=d.get("log", ""),
            cpu_s=d.get("cpu_s", 0.0),
            maxrss_kb=d.get("maxrss_kb", 0),
            sys_s=d.get("sys_s", 0.0),
            stat_cpu_ns=tuple(d.get("stat_cpu_ns", ())),
        )


@dataclass(frozen=True, slots=True)
class Agreement:
    """Per-IRQ comparison of two sets of writes, as CPU sets."""

    identical: tuple[int, ...]
    #: irq -> (A's mask, B's mask), raw text.
    differing: dict[int, tuple[str, str]]
    only_a: dict[int, str]
    only_b: dict[int, str]

    @property
    def total(self) -> int:
        """IRQs written by either side."""
        return len(self.identical) + len(self.differing) + len(self.only_a) + len(self.only_b)

    @property
    def ratio(self) -> float:
        """identical / written by either (1.0 when neither wrote anything)."""
        return len(self.identical) / self.total if self.total else 1.0

    @property
    def disagreeing(self) -> frozenset[int]:
        return frozenset(self.differing) | frozenset(self.only_a) | frozenset(self.only_b)

    def describe(self, limit: int = 40) -> str:
        """Human-readable list of the disagreements (for assertion messages)."""
        lines = [f"agreement {100 * self.ratio:.1f}% ({len(self.identical)}/{self.total})"]
        rows = [
            *(f"irq {i}: A {_cpulist(mask_cpus(a))} B {_cpulist(mask_cpus(b))}"
              for i, (a, b) in sorted(self.differing.items())),
            *(f"irq {i}: A only {_cpulist(mask_cpus(a))}" for i, a in sorted(self.only_a.items())),
            *(f"irq {i}: B only {_cpulist(mask_cpus(b))}" for i, b in sorted(self.only_b.items())),
        ]
        lines += rows[:limit]
        if len(rows) > limit:
            lines.append(f"... {len(rows) - limit} more")
        return "\n".join(lines)


def compare(a: Result | Pass | Mapping[int, str],
            b: Result | Pass | Mapping[int, str]) -> Agreement:
    """Agreement of two runs' writes (or two ``{irq: mask}`` maps), compared as CPU sets."""
    wa = _irq_keys(a if isinstance(a, Mapping) else a.written)
    wb = _irq_keys(b if isinstance(b, Mapping) else b.written)
    identical: list[int] = []
    differing: dict[int, tuple[str, str]] = {}
    only_a: dict[int, str] = {}
    only_b: dict[int, str] = {}
    for irq in sorted(set(wa) | set(wb)):
        if irq not in wb:
            only_a[irq] = wa[irq]
        elif irq not in wa:
            only_b[irq] = wb[irq]
        elif mask_cpus(wa[irq]) is not None and mask_cpus(wa[irq]) == mask_cpus(wb[irq]):
            identical.append(irq)
        else:
            differing[irq] = (wa[irq], wb[irq])
    return Agreement(tuple(identical), differing, only_a, only_b)


def compare_cycles(a: CyclesResult, b: CyclesResult) -> list[Agreement]:
    """Per-pass agreement; a pass present on one side only counts as all its writes one-sided."""
    out = []
    for i in range(max(len(a.passes), len(b.passes))):
        pa = a.passes[i].written if i < len(a.passes) else {}
        pb = b.passes[i].written if i < len(b.passes) else {}
        out.append(compare(pa, pb))
    return out


# --------------------------------------------------------------------------
# running (outer side)
# --------------------------------------------------------------------------


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(BASE_ENV)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.fspath(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def _argv(balancer: Balancer, oneshot: bool, interval: int, extra: Sequence[str]) -> list[str]:
    if isinstance(balancer, str):
        if balancer != IRQBALANCE:
            raise ValueError(f"balancer must be {IRQBALANCE!r} or an argv list, not {balancer!r}")
        head = [IRQBALANCE_BIN] + (["--oneshot"] if oneshot else []) + ["--debug"]
        return head + [f"--interval={interval}", *extra]
    return [*balancer, *extra]


def _label(balancer: Balancer) -> str:
    if balancer == IRQBALANCE:
        return f"irqbalance {irqbalance_version()}"
    return " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(balancer))


def _shown_argv(argv: Sequence[str]) -> tuple[str, ...]:
    """argv as recorded: no paths of this machine."""
    out = []
    for i, a in enumerate(argv):
        if i == 0 or a == sys.executable:
            a = os.path.basename(a)
        out.append(a)
    return tuple(out)


def _run_job(job: dict, workdir: Path) -> dict:
    """Run one job in a fresh directory under ``workdir``; returns its result dict."""
    workdir.mkdir(parents=True, exist_ok=True)
    rundir = Path(tempfile.mkdtemp(prefix=f"{job['mode']}-", dir=workdir))
    job["rundir"] = os.fspath(rundir)
    (rundir / "job.json").write_text(json.dumps(job, indent=1))
    cmd = [sys.executable, "-m", "tests.oracle.harness", "_job", os.fspath(rundir / "job.json")]
    if job["namespace"]:
        cmd = ["unshare", "-m", "--propagation", "private", *cmd]
    proc = subprocess.run(
        cmd, cwd=PROJECT_ROOT, env=_env(None), capture_output=True, text=True,
        timeout=job["timeout"] + 120,
    )
    res_path = rundir / "result.json"
    if proc.returncode != 0 or not res_path.exists():
        raise RuntimeError(
            f"harness job failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    res = json.loads(res_path.read_text())
    res["log"] = (rundir / "balancer.log").read_text(errors="replace")
    return res


def _job(
    mode: str,
    balancer: Balancer,
    machine: MachineLike,
    workdir: str | os.PathLike[str],
    extra_args: Sequence[str],
    env: Mapping[str, str] | None,
    interval: int,
    timeout: float,
) -> tuple[dict, Path]:
    workdir = Path(workdir)
    tree = build_tree(machine, workdir)
    m = load_machine(tree)
    if balancer == IRQBALANCE:
        ok, why = have_oracle()
        if not ok:
            raise RuntimeError(f"cannot run irqbalance: {why}")
    namespace = can_unshare()[0]
    argv = _argv(balancer, mode == "oneshot", interval, extra_args)
    return {
        "mode": mode,
        "tree": os.fspath(tree.resolve()),
        "machine": m.name,
        "balancer": _label(balancer),
        "argv": argv,
        "shown_argv": list(_shown_argv(argv)),
        "env": _env(env),
        "interval": interval,
        "timeout": timeout,
        "namespace": namespace,
    }, workdir


def run_oneshot(
    balancer: Balancer,
    machine: MachineLike,
    workdir: str | os.PathLike[str],
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    *,
    interval: int = 1,
    timeout: float = 300,
) -> Result:
    """One balancing pass of ``balancer`` on ``machine``; what it wrote.

    ``balancer`` is :data:`IRQBALANCE` (run as ``irqbalance --oneshot --debug
    --interval=I EXTRA``) or an argv list used verbatim (``{sysroot}`` replaced,
    ``extra_args`` appended), e.g. ``pyirqbalance_command("--oneshot", "--interval=1")``.
    ``env`` is added to a minimal environment.
    """
    job, wd = _job("oneshot", balancer, machine, workdir, extra_args, env, interval, timeout)
    return Result.from_json(_run_job(job, wd))


def run_cycles(
    balancer: Balancer,
    machine: MachineLike,
    workdir: str | os.PathLike[str],
    passes: int = 6,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    *,
    interval: int = 1,
    timeout: float | None = None,
) -> CyclesResult:
    """The balancer as a daemon for ``passes`` balancing passes under simulated load.

    irqbalance runs as ``irqbalance --debug --interval=I EXTRA``; a command
    balancer must re-open ``/proc/interrupts`` and ``/proc/stat`` every pass
    (one ``/proc/stat`` open at start-up, one per pass, like irqbalance) and
    exit on SIGTERM, which comes at the start of the last pass's
    ``/proc/stat`` read.
    """
    limit = timeout if timeout is not None else 60 + passes * (interval + 10)
    job, wd = _job("cycles", balancer, machine, workdir, extra_args, env, interval, limit)
    job["passes"] = passes
    return CyclesResult.from_json(_run_job(job, wd))


# --------------------------------------------------------------------------
# the job (inner side: in the private namespace, or plain without root)
# --------------------------------------------------------------------------


def _natural(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def _creation_order(base: str) -> str:
    """How readdir here orders entries: ``reverse``/``forward`` creation order, or ``other``."""
    probe = tempfile.mkdtemp(prefix=".order-", dir=base)
    try:
        for name in ("x1", "x2", "x3"):
            os.mkdir(os.path.join(probe, name))
        order = os.listdir(probe)
    finally:
        shutil.rmtree(probe)
    return {("x3", "x2", "x1"): "reverse", ("x1", "x2", "x3"): "forward"}.get(tuple(order), "other")


def stage_tree(src: str, dst: str) -> None:
    """Copy tree ``src`` to ``dst`` (on a tmpfs) so that readdir lists sys/ in kernfs order."""
    policy = _creation_order(os.path.dirname(dst))
    if policy == "other":
        raise RuntimeError(
            f"readdir order of {os.path.dirname(dst)} cannot be controlled (not tmpfs?)")

    def copy(s: str, d: str, sysfs: bool) -> None:
        names = os.listdir(s)
        want = mkfake.kernfs_order(names) if sysfs else sorted(names, key=_natural)
        for name in reversed(want) if policy == "reverse" else want:
            sp, dp = os.path.join(s, name), os.path.join(d, name)
            if os.path.islink(sp):
                os.symlink(os.readlink(sp), dp)
            elif os.path.isdir(sp):
                os.mkdir(dp)
                copy(sp, dp, sysfs)
                os.chmod(dp, os.stat(sp).st_mode & 0o7777)
            else:
                shutil.copyfile(sp, dp)
                os.chmod(dp, os.stat(sp).st_mode & 0o7777)

    os.mkdir(dst)
    for top in ("proc", "sys"):
        os.mkdir(os.path.join(dst, top))
        copy(os.path.join(src, top), os.path.join(dst, top), top == "sys")
    # Every kernel since 2.6 has a boot id (drivers/char/random.c); mkfake's trees
    # do not, and without it a reader falls back to /proc/stat's btime, one open
    # more of the FIFO that stands for a pass.
    boot_id = os.path.join(dst, "proc", "sys", "kernel", "random", "boot_id")
    if not os.path.exists(boot_id):
        os.makedirs(os.path.dirname(boot_id), exist_ok=True)
        with open(boot_id, "w") as f:
            f.write("5a3f0e1c-7b52-4c2e-9d0e-6c1f2b8a4d17\n")
    for rel in ("sys/devices/system/cpu", "sys/devices/system/node", "sys/bus/pci/devices"):
        names = os.listdir(os.path.join(dst, rel))
        if names != mkfake.kernfs_order(names):
            raise RuntimeError(f"staged {rel} does not list in kernfs order")


def _private_namespace() -> bool:
    return os.readlink("/proc/self/ns/mnt") != os.readlink(f"/proc/{os.getppid()}/ns/mnt")


def _mount_over_real_paths(stage: str, interrupts: str, stat: str) -> None:
    """Bind the staged files over the real ones (only ever inside a private namespace)."""
    if not _private_namespace():
        raise SystemExit("refusing to mount: not in a private mount namespace")
    binds = [
        (interrupts, "/proc/interrupts"),
        (stat, "/proc/stat"),
        (os.path.join(stage, "proc", "cmdline"), "/proc/cmdline"),
        (os.path.join(stage, "proc", "irq"), "/proc/irq"),
        (os.path.join(stage, "sys"), "/sys"),
    ]
    for src, dst in binds:
        subprocess.run(["mount", "--bind", src, dst], check=True)
    for src, dst in binds:
        s, d = os.stat(src), os.stat(dst)
        if (s.st_dev, s.st_ino) != (d.st_dev, d.st_ino):
            raise SystemExit(f"bind of {src} over {dst} did not take effect")


def _stamp(path: str) -> tuple[str | None, int | None]:
    try:
        with open(path) as f:
            text = f.read()
        return text, os.stat(path).st_mtime_ns
    except OSError:
        return None, None


def _snapshot(stage: str, m: mkfake.Machine) -> dict[int, tuple]:
    irqdir = os.path.join(stage, "proc", "irq")
    return {
        n: _stamp(os.path.join(irqdir, str(n), "smp_affinity"))
        + _stamp(os.path.join(irqdir, str(n), "smp_affinity_list"))
        for n in m.irqs
    }


def _writes(before: dict[int, tuple], after: dict[int, tuple], m: mkfake.Machine) -> dict[int, str]:
    """IRQs whose smp_affinity or smp_affinity_list was written -> the mask written."""
    out: dict[int, str] = {}
    for n, (text, mtime, ltext, lmtime) in after.items():
        b = before.get(n, (None, None, None, None))
        if (text, mtime) != b[:2]:
            out[n] = (text or "").strip()
        elif (ltext, lmtime) != b[2:]:
            try:
                out[n] = mkfake.kmask(mkfake.parse_cpulist(ltext or ""), m.nbits)
            except ValueError:
                out[n] = ""
    return out


def _rejects(m: mkfake.Machine, irq: int) -> str | None:
    q = m.irqs[irq]
    if q.get("managed"):
        return "EIO (kernel-managed affinity)"
    if q.get("no_balancing"):
        return "EIO (IRQF_NOBALANCING)"
    if q.get("reverts"):
        return "reverted (the kernel or a driver put the old mask back)"
    return None


def _start(argv: list[str], env: dict[str, str], log: str) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
            cwd="/",
        )


def _finish(proc: subprocess.Popen, timeout: float) -> tuple[int, float, int, float]:
    """Exit status, CPU seconds (user + sys), peak RSS in KiB, system seconds."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.005)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, usage.ru_stime


def _job_oneshot(job: dict, m: mkfake.Machine, stage: str) -> dict:
    argv = [a.replace(SYSROOT, stage) for a in job["argv"]]
    before = _snapshot(stage, m)
    t0 = time.monotonic()
    proc = _start(argv, job["env"], os.path.join(job["rundir"], "balancer.log"))
    rc, cpu_s, maxrss_kb, sys_s = _finish(proc, job["timeout"])
    wall = time.monotonic() - t0
    written = _writes(before, _snapshot(stage, m), m)
    return Result(
        machine=m.name,
        balancer=job["balancer"],
        argv=tuple(job["shown_argv"]),
        returncode=rc,
        written=written,
        kernel_would_reject=tuple(n for n in sorted(written) if _rejects(m, n)),
        wall_s=wall,
        cpu_s=cpu_s,
        maxrss_kb=maxrss_kb,
        sys_s=sys_s,
    ).to_json()


_IN_CLOSE_WRITE = 0x08
_IN_CLOSE_NOWRITE = 0x10


class _ReaderCloses:
    """Counts the closes of a FIFO's read side (inotify), so a snapshot is never
    appended to a read session still in progress."""

    def __init__(self, path: str) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        # our own closes (IN_CLOSE_WRITE) separate the readers' closes in the
        # queue, so identical consecutive events are never merged
        if libc.inotify_add_watch(self.fd, path.encode(), _IN_CLOSE_WRITE | _IN_CLOSE_NOWRITE) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")
        self.count = 0

    def wait_for(self, n: int, stop: threading.Event, limit_s: float = 60.0) -> None:
        deadline = time.monotonic() + limit_s
        while self.count < n and not stop.is_set() and time.monotonic() < deadline:
            if not select.select([self.fd], [], [], 0.1)[0]:
                continue
            data = os.read(self.fd, 65536)
            off = 0
            while off + 16 <= len(data):
                _wd, mask, _cookie, length = struct.unpack_from("iIII", data, off)
                off += 16 + length
                if mask & _IN_CLOSE_NOWRITE:
                    self.count += 1

    def close(self) -> None:
        os.close(self.fd)


class _ProcServer:
    """Serves /proc/interrupts and /proc/stat from FIFOs and advances the simulation.

    A pass is one ``/proc/stat`` open (start-up: the first). The first
    ``/proc/interrupts`` open after a ``/proc/stat`` open starts a new pass:
    the writes of the pass before are taken (with the kernel's answer) and
    every IRQ fires its ``rate`` on its effective CPU.
    """

    def __init__(self, job: dict, m: mkfake.Machine, stage: str) -> None:
        self.job, self.m, self.stage = job, m, stage
        self.state = mkfake.SimState(m)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.fifo = {
            "interrupts": os.path.join(stage, "proc", "interrupts"),
            "stat": os.path.join(stage, "proc", "stat"),
        }
        for path in self.fifo.values():
            os.unlink(path)
            os.mkfifo(path, 0o444)
        self.closes = {k: _ReaderCloses(p) for k, p in self.fifo.items()}
        self.text = {
            "interrupts": mkfake.render_interrupts(m, self.state),
            "stat": mkfake.render_stat(m, self.state),
        }
        self.reads = {"interrupts": 0, "stat": 0}
        self.stat_cpu_ns: list[int | None] = []
        self.new_pass = False
        self.prev = _snapshot(stage, m)
        self.passes: list[Pass] = []
        self.errors: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.term_sent = False
        #: irq -> the CPU its effective_affinity still shows (``lag_effective``).
        self.lagging: dict[int, int] = {}

    def capture(self) -> None:
        """Record the last pass's writes and give them the kernel's answer."""
        m, st = self.m, self.state
        writes = _writes(self.prev, _snapshot(self.stage, m), m)
        rejected: dict[int, str] = {}
        lag = self.m.desc.get("harness", {}).get("lag_effective", False)
        for irq in self.lagging:  # they fired since: the kernel shows where
            if irq not in writes:
                mkfake.write_irq_dir(m, self.stage, irq, st)
        self.lagging = {}
        for irq, raw in writes.items():
            was = st.eff[irq]
            mask = mask_cpus(raw)
            cpus = [c for c in m.online if mask is not None and mask >> c & 1]
            why = _rejects(m, irq) or (None if cpus else "EINVAL (no online CPU in mask)")
            if why:
                rejected[irq] = why
            else:
                st.set_affinity(irq, cpus)
            # the kernel shows its own state, in its own format
            mkfake.write_irq_dir(m, self.stage, irq, st)
            if lag and st.eff[irq] != was:
                # a real x86 kernel moves the vector when the IRQ next fires:
                # until then effective_affinity names the old CPU
                self.lagging[irq] = was
                for name, text in (("effective_affinity", mkfake.kmask([was], m.nbits)),
                                   ("effective_affinity_list", str(was))):
                    with open(os.path.join(self.stage, "proc", "irq", str(irq), name), "w") as f:
                        f.write(text + "\n")
        self.prev = _snapshot(self.stage, m)
        self.passes.append(Pass(self.reads["stat"] - 1, writes, rejected, dict(st.eff)))

    def _on_open(self, kind: str) -> str:
        with self.lock:
            self.reads[kind] += 1
            if kind == "stat":
                self.stat_cpu_ns.append(_cpu_ns(self.proc.pid))
                self.new_pass = True
                if self.reads["stat"] == self.job["passes"] + 1 and not self.term_sent:
                    self.term_sent = True
                    self.proc.send_signal(signal.SIGTERM)
            elif self.new_pass:
                self.new_pass = False
                self.capture()
                self._advance()
                self.text["interrupts"] = mkfake.render_interrupts(self.m, self.state)
                self.text["stat"] = mkfake.render_stat(self.m, self.state)
            return self.text[kind]

    def _advance(self) -> None:
        """Fire one interval's interrupts, with the machine's ``harness`` options:
        ``rate_shift: {"pass": P, "rates": {irq: rate}}`` sets new rates for the
        load pass P reads (and after), ``rates_by_pass: {"P": {irq: rate}}`` the
        same for several passes, ``delivery: "spread"`` spreads each IRQ's
        interrupts evenly over the online CPUs of its mask (else all on its
        effective CPU), ``irq_time_accounting: false`` keeps the irq/softirq
        columns of /proc/stat flat, ``hotplug`` takes CPUs offline and back
        (:meth:`_hotplug`). What fired on each CPU goes to the last
        :class:`Pass` (``fired``)."""
        opts = self.m.desc.get("harness", {})
        for event in opts.get("hotplug", ()):
            if self.reads["stat"] == event["pass"]:
                self._hotplug(event.get("offline", ()), event.get("online", ()))
        shift = opts.get("rate_shift")
        if shift and self.reads["stat"] == shift["pass"]:
            for irq, rate in shift["rates"].items():
                self.m.irqs[int(irq)]["rate"] = rate
        for irq, rate in opts.get("rates_by_pass", {}).get(str(self.reads["stat"]), {}).items():
            self.m.irqs[int(irq)]["rate"] = rate
        st = self.state
        flat = (dict(st.irq_ns), dict(st.softirq_ns))
        st.advance(self.job["interval"], opts.get("delivery", "effective"))
        fired = {cpu: st.irq_ns[cpu] + st.softirq_ns[cpu] - flat[0][cpu] - flat[1][cpu]
                 for cpu in st.irq_ns}
        if self.passes:
            self.passes[-1] = dataclasses.replace(self.passes[-1], fired=fired)
        if opts.get("irq_time_accounting", True) is False:
            st.irq_ns.update(flat[0])
            st.softirq_ns.update(flat[1])

    def _hotplug(self, offline, online) -> None:
        """CPUs going offline or coming back (``hotplug: [{"pass": P, "offline": [cpu],
        "online": [cpu]}]``), as the kernel does it: an offline CPU's column leaves
        /proc/interrupts and its line /proc/stat (its counts are kept and come back with it);
        its IRQs move to an online CPU of their mask (every online CPU when the mask has none
        left: the affinity is broken and reset, kernel/irq/cpuhotplug.c); sysfs shows the new
        online set (cpu/online, offline, cpuN/online, the nodes' CPU lists). A CPU coming back
        gets no IRQ until a write sends one there."""
        m, st = self.m, self.state
        gone = {int(c) for c in offline} & set(m.online)
        back = {int(c) for c in online} - set(m.online)
        m.online = sorted((set(m.online) - gone) | back)
        m.online_set = set(m.online)
        m.offline = sorted((set(m.offline) | gone) - back)
        m.node_cpus = {n: [c["cpu"] for c in m.cpus if c["node"] == n and c["cpu"] in m.online_set]
                       for n in m.node_cpus}
        for cpu in back:
            st.stat.setdefault(cpu, {"user": 0, "nice": 0, "system": 0, "idle": 0, "iowait": 0,
                                     "steal": 0})
            st.irq_ns.setdefault(cpu, 0)
            st.softirq_ns.setdefault(cpu, 0)
        assigned: dict[int, int] = {}
        for c in st.eff.values():
            assigned[c] = assigned.get(c, 0) + 1
        for irq, cpu in sorted(st.eff.items()):
            if cpu not in gone:
                continue
            if not any(c in m.online_set for c in st.affinity[irq]):
                st.affinity[irq] = list(m.online)  # broken affinity
            assigned[cpu] -= 1
            st.eff[irq] = m.default_effective_cpu(st.affinity[irq], assigned)
            assigned[st.eff[irq]] = assigned.get(st.eff[irq], 0) + 1
            self.lagging.pop(irq, None)
            mkfake.write_irq_dir(m, self.stage, irq, st)
        cpud = os.path.join(self.stage, "sys", "devices", "system", "cpu")
        for name, cpus in (("online", m.online), ("offline", m.offline)):
            with open(os.path.join(cpud, name), "w") as f:
                f.write(mkfake.fmt_cpulist(cpus) + "\n")
        for cpu in gone | back:
            with open(os.path.join(cpud, f"cpu{cpu}", "online"), "w") as f:
                f.write(f"{int(cpu in m.online_set)}\n")
        noded = os.path.join(self.stage, "sys", "devices", "system", "node")
        for n, cpus in m.node_cpus.items():
            for name, text in (("cpumap", mkfake.kmask(cpus, m.nbits)),
                               ("cpulist", mkfake.fmt_cpulist(cpus))):
                with open(os.path.join(noded, f"node{n}", name), "w") as f:
                    f.write(text + "\n")
        self.prev = _snapshot(self.stage, m)  # the kernel's own changes are no writes
        self.passes[-1:] = [dataclasses.replace(p, effective=dict(st.eff))
                            for p in self.passes[-1:]]

    def _serve(self, kind: str) -> None:
        path, served = self.fifo[kind], 0
        while not self.stop.is_set():
            try:
                fd = os.open(path, os.O_WRONLY)  # blocks until the balancer opens it
            except OSError as err:
                self.errors.append(f"open {path}: {err}")
                return
            try:
                if self.stop.is_set():
                    return
                data = memoryview(self._on_open(kind).encode())
                while data:
                    data = data[os.write(fd, data):]
            except BrokenPipeError:
                pass  # the reader stopped early (irqbalance stops at the NMI: row)
            finally:
                os.close(fd)
            served += 1
            self.closes[kind].wait_for(served, self.stop)

    def run(self, argv: list[str]) -> int:
        threads = [threading.Thread(target=self._serve, args=(k,), daemon=True) for k in self.fifo]
        self.proc = _start(argv, self.job["env"], os.path.join(self.job["rundir"], "balancer.log"))
        for t in threads:
            t.start()
        rc, self.cpu_s, self.maxrss_kb, self.sys_s = _finish(self.proc, self.job["timeout"])
        with self.lock:
            self.stop.set()
            self.capture()
        for path in self.fifo.values():  # wake writers blocked in open()
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                time.sleep(0.02)
                os.close(fd)
            except OSError:
                pass
        for t in threads:
            t.join(2)
        for c in self.closes.values():
            c.close()
        return rc


def _cpu_ns(pid: int) -> int | None:
    """CPU time of every thread of ``pid`` so far, ns (/proc/PID/task/*/schedstat), or None."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total


def _job_cycles(job: dict, m: mkfake.Machine, stage: str) -> dict:
    argv = [a.replace(SYSROOT, stage) for a in job["argv"]]
    server = _ProcServer(job, m, stage)
    if job["namespace"]:
        _mount_over_real_paths(stage, server.fifo["interrupts"], server.fifo["stat"])
    t0 = time.monotonic()
    rc = server.run(argv)
    return CyclesResult(
        machine=m.name,
        balancer=job["balancer"],
        argv=tuple(job["shown_argv"]),
        returncode=rc,
        passes=tuple(server.passes),
        final_affinity={n: mkfake.fmt_cpulist(server.state.affinity[n]) for n in m.irqs},
        interrupts_reads=server.reads["interrupts"],
        stat_reads=server.reads["stat"],
        errors=tuple(server.errors),
        wall_s=time.monotonic() - t0,
        cpu_s=server.cpu_s,
        maxrss_kb=server.maxrss_kb,
        sys_s=server.sys_s,
        stat_cpu_ns=tuple(server.stat_cpu_ns),
    ).to_json()


def _stage_parent(job: dict) -> str:
    """A tmpfs directory for the staged tree."""
    if job["namespace"]:
        if not _private_namespace():
            raise SystemExit("refusing to mount: not in a private mount namespace")
        subprocess.run(["mount", "--make-rprivate", "/"], check=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run"], check=True)
        os.makedirs("/run/irqbalance")  # irqbalance's control socket
        os.makedirs(NS_STAGE)
        return NS_STAGE
    return tempfile.mkdtemp(prefix="pyirqbalance-harness-", dir="/dev/shm")


def job_main(job_path: str) -> None:
    """Entry point of one run (``python3 -m tests.oracle.harness _job JOB.json``)."""
    job = json.loads(Path(job_path).read_text())
    m = load_machine(job["tree"])
    parent = _stage_parent(job)
    stage = os.path.join(parent, "root")
    try:
        stage_tree(job["tree"], stage)
        if job["mode"] == "oneshot":
            if job["namespace"]:
                _mount_over_real_paths(
                    stage, os.path.join(stage, "proc", "interrupts"),
                    os.path.join(stage, "proc", "stat"),
                )
            res = _job_oneshot(job, m, stage)
        else:
            res = _job_cycles(job, m, stage)
    finally:
        if not job["namespace"]:
            shutil.rmtree(parent, ignore_errors=True)
    Path(job["rundir"], "result.json").write_text(json.dumps(res, indent=1))


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``harness {oneshot,cycles} MACHINE [--pyirqbalance] [-k N] [-- EXTRA]``: print what
    was written."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["_job"] and len(args) == 2:
        job_main(args[1])
        return 0
    extra: list[str] = []
    if "--" in args:
        args, extra = args[: args.index("--")], args[args.index("--") + 1:]
    ap = argparse.ArgumentParser(prog="python3 -m tests.oracle.harness")
    ap.add_argument("mode", choices=["oneshot", "cycles", "compare"])
    ap.add_argument("machine")
    ap.add_argument("--pyirqbalance", action="store_true", help="run pyirqbalance, not irqbalance")
    ap.add_argument("-k", "--passes", type=int, default=6)
    ap.add_argument("--env", action="append", default=[], metavar="K=V")
    a = ap.parse_args(args)
    env = dict(kv.split("=", 1) for kv in a.env)
    with tempfile.TemporaryDirectory(prefix="harness-") as work:
        if a.mode == "compare":
            ours = pyirqbalance_command("--oneshot", "--interval=1")
            ref = run_oneshot(IRQBALANCE, a.machine, work, extra, env)
            cand = run_oneshot(ours, a.machine, work, extra, env)
            print(compare(ref, cand).describe(limit=10_000))
            return 0
        if a.pyirqbalance:
            head = ("--oneshot",) if a.mode == "oneshot" else ("--foreground",)
            balancer: Balancer = pyirqbalance_command(*head, "--interval=1")
        else:
            balancer = IRQBALANCE
        if a.mode == "oneshot":
            res = run_oneshot(balancer, a.machine, work, extra, env)
        else:
            res = run_cycles(balancer, a.machine, work, a.passes, extra, env)
        print(json.dumps(res.to_json(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
