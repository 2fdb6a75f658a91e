"""Shared pytest fixtures: fake /proc + /sys trees, generated machines, the counter simulator.

* ``fixtures_dir`` -- ``tests/fixtures`` (copied real captures, recorded oracle runs).
* ``make_tree`` -- write a small hand-made tree: ``tree({"proc/interrupts": "...",
  "sys/bus/pci/devices/X": Symlink("../../../devices/pci0000:00/X")})`` -> SysRoot.
* ``fake_machine`` -- a full tree from a machine description (tests/oracle/mkfake.py).
* ``counter_simulator`` -- advance a fake machine's /proc/interrupts and /proc/stat by
  one balancing pass, applying the smp_affinity writes the balancer made.
* an autouse session guard that fails the run if any test changed the real
  /proc/irq/*/smp_affinity.
* with ``CI`` set, a check that fails the session when a tier of :data:`CI_TIERS` that the
  run covered executed no test (every test skipped or deselected).
* a Hypothesis profile without deadlines or the too-slow health check (no timing asserts).
* an autouse fixture that gives every in-process ``cli.main``/``ctl.main`` the suite's
  explicit configuration instead of the host's /etc/pyirqbalance/pyirqbalance.yaml
  (tests/hermetic.py; subprocesses get it through ``pyirqbalance_argv``).
* an autouse guard that thaws what an in-process daemon froze (``gc.freeze`` after
  each build), so the next test's garbage is collected as usual.

Trees live under pytest's ``tmp_path``; nothing here writes the real /proc or /sys.
"""

from __future__ import annotations

import gc
import importlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from pyirqbalance.kernel.sysroot import KernelReadError, SysRoot
from tests import hermetic
from tests.oracle import mkfake

# Hypothesis' per-example deadline (200 ms) and its "generation too slow" health check are
# timing asserts: on a busy machine one slow example fails the run. Examples are bounded by
# their size instead, never by the clock.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")

FIXTURES = Path(__file__).parent / "fixtures"
#: Machine descriptions recorded with the irqbalance 1.9.2 runs (a_desktop4, b_2s64, ...).
MACHINES = FIXTURES / "irqbalance-1.9.2"


# --------------------------------------------------------------------------
# hand-made trees
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Symlink:
    """A symbolic link to ``target`` (kept verbatim, usually relative like sysfs links)."""

    target: str


@dataclass(frozen=True)
class Dir:
    """An empty directory (git cannot store one, e.g. a device's empty ``msi_irqs/``)."""


def write_tree(base: Path, files: dict[str, str | bytes | Symlink | Dir]) -> SysRoot:
    """Create ``files`` under ``base`` in the dict's order and return the SysRoot.

    The order is the creation order, which is what a tmpfs lists back and what
    ext4 (hash-ordered) does not: tests about readdir order compare with
    ``os.listdir`` instead of assuming either.
    """
    base.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Symlink):
            os.symlink(content.target, path)
        elif isinstance(content, Dir):
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_bytes(content.encode())
    return SysRoot(base)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def make_tree(tmp_path: Path):
    """``tree(files) -> SysRoot``; successive calls add to the same tree."""
    base = tmp_path / "tree"

    def tree(files: dict[str, str | bytes | Symlink | Dir]) -> SysRoot:
        return write_tree(base, files)

    return tree


# --------------------------------------------------------------------------
# generated machines
# --------------------------------------------------------------------------


def load_machine(machine: dict | str | os.PathLike[str]) -> mkfake.Machine:
    """A Machine from a description dict, a JSON path, or a recorded name (``b_2s64``)."""
    if isinstance(machine, dict):
        return mkfake.Machine(machine)
    path = Path(machine)
    if not path.suffix and not path.exists():
        path = MACHINES / f"{path}.json"
    return mkfake.load_machine(str(path))


@pytest.fixture
def fake_machine(tmp_path: Path):
    """``build(machine) -> (SysRoot, mkfake.Machine)``: a full tree made by mkfake.build_tree."""
    counter = 0

    def build(machine: dict | str | os.PathLike[str]) -> tuple[SysRoot, mkfake.Machine]:
        nonlocal counter
        counter += 1
        m = load_machine(machine)
        out = tmp_path / f"machine-{counter}"
        mkfake.build_tree(m, str(out))
        return SysRoot(out), m

    return build


class CounterSimulator:
    """Drives a fake machine's counters between balancing passes, as the oracle does.

    The state starts where ``mkfake.build_tree`` left the tree (the simulator is
    deterministic). :meth:`advance` first applies what the balancer wrote to
    ``/proc/irq/N/smp_affinity`` with the kernel's rules (managed and
    IRQF_NOBALANCING IRQs refuse, a mask without an online CPU is refused, the
    file is re-rendered in the kernel's format), then lets every IRQ fire its
    ``rate`` interrupts on its effective CPU and rewrites /proc/interrupts and
    /proc/stat.

    The kernel's files are rewritten whole, never in place: each is rendered
    beside the tree and renamed over the old one, so a reader (the daemon, a
    test) sees the old text or the new, never a mix. A writer that opened
    ``smp_affinity`` just before the rename writes into the file the rename
    replaced; the simulator keeps that file open and takes such a late write from
    it, as the kernel would have taken it: at once if it is there when the rename
    is done, else at its next pass.
    """

    def __init__(self, root: SysRoot, machine: mkfake.Machine) -> None:
        self.root = root
        self.machine = machine
        self.state = mkfake.SimState(machine)
        self._shown = {n: self._read_affinity(n) for n in machine.irqs}
        #: irq -> (the smp_affinity file a re-render replaced, opened; the text it had).
        self._replaced: dict[int, tuple[Any, str | None]] = {}

    def _read_affinity(self, irq: int) -> str | None:
        return self.root.try_read_text(self.root.proc("irq", str(irq), "smp_affinity"))

    def _late_write(self, irq: int) -> str | None:
        """What a writer put into the file the last re-render replaced, if anything."""
        replaced = self._replaced.pop(irq, None)
        if replaced is None:
            return None
        old, seen = replaced
        old.seek(0)
        text = old.read()
        if text == "":   # opened (O_TRUNC) but not written yet: look again next pass
            self._replaced[irq] = replaced
            return None
        old.close()
        return text if text != seen else None

    def _open_affinity(self, irq: int) -> tuple[Any, str | None]:
        """The current smp_affinity file, open (kept while a rename may replace it)."""
        try:
            f = open(self.root.proc("irq", str(irq), "smp_affinity"))  # noqa: SIM115
        except OSError:
            return None, None
        return f, f.read()

    def apply_writes(self) -> tuple[dict[int, list[int]], dict[int, str]]:
        """Take the balancer's smp_affinity writes: (accepted irq -> cpus, rejected irq -> why)."""
        accepted: dict[int, list[int]] = {}
        rejected: dict[int, str] = {}
        for irq in self.machine.irqs:
            # A write that lands while the directory is re-rendered goes into the file the
            # rename replaces: take it at once (the kernel takes a write inside write(), so
            # a reader never sees the mask before it come back), then look again.
            while self._take_write(irq, accepted, rejected):
                pass
        return accepted, rejected

    def _take_write(self, irq: int, accepted: dict[int, list[int]],
                    rejected: dict[int, str]) -> bool:
        """Take ``irq``'s newest write, if any, and re-render its directory (then True)."""
        m, st = self.machine, self.state
        late = self._late_write(irq)
        current, found = self._open_affinity(irq)
        raw = found
        if raw == self._shown[irq]:
            if late is None:
                if current is not None:
                    current.close()
                return False
            raw = late   # the newest write is in the file the last re-render replaced
        try:
            cpus = mkfake.parse_kmask(raw or "")
        except ValueError:
            cpus = []
        online = [c for c in cpus if c in m.online_set]
        q = m.irqs[irq]
        accepted.pop(irq, None)
        rejected.pop(irq, None)
        if q.get("managed") or q.get("no_balancing"):
            rejected[irq] = "EIO"
        elif not online:
            rejected[irq] = "EINVAL"
        else:
            st.set_affinity(irq, online)
            accepted[irq] = online
        shown = self._render_irq_dir(irq, found)
        if shown is None:   # written again since it was read: take that write next
            self._shown[irq] = None
            if current is not None:
                current.close()
            return True
        self._shown[irq] = shown
        if current is not None:
            stale = self._replaced.pop(irq, None)
            if stale is not None:
                stale[0].close()
            self._replaced[irq] = (current, found)
        return True

    def _render_irq_dir(self, irq: int, expect: str | None = None) -> str | None:
        """/proc/irq/N's files rendered beside the tree, renamed into place one by one,
        smp_affinity last; returns its new text. With ``expect`` (the smp_affinity text
        the render is for), a file that no longer holds it (a write came in) is left in
        place and None returned."""
        with tempfile.TemporaryDirectory(dir=self.root.base, prefix=".render-") as tmp:
            mkfake.write_irq_dir(self.machine, tmp, irq, self.state)
            rendered = os.path.join(tmp, "proc", "irq", str(irq))
            target = self.root.proc("irq", str(irq))
            with open(os.path.join(rendered, "smp_affinity")) as f:
                text = f.read()
            for entry in os.scandir(rendered):
                if entry.name == "smp_affinity":
                    continue
                if entry.is_file(follow_symlinks=False):
                    os.replace(entry.path, os.path.join(target, entry.name))
                else:
                    os.makedirs(os.path.join(target, entry.name), exist_ok=True)
            affinity = os.path.join(target, "smp_affinity")
            if expect is not None and self.root.try_read_text(affinity) != expect:
                return None
            os.replace(os.path.join(rendered, "smp_affinity"), affinity)
        return text

    def advance(self, interval_s: float = 1.0, delivery: str = "effective") -> None:
        """One pass: apply writes, fire every IRQ's ``rate``, re-render the two /proc files."""
        self.apply_writes()
        self.state.advance(interval_s, delivery)
        self.render()

    def render(self, edit: Callable[[str], str] | None = None) -> None:
        """Rewrite /proc/interrupts and /proc/stat from the current state.

        ``edit`` changes the /proc/interrupts text before it replaces the file, so
        a reader never sees the unedited text (fault injection).
        """
        interrupts = mkfake.render_interrupts(self.machine, self.state)
        for name, text in (
            ("interrupts", edit(interrupts) if edit is not None else interrupts),
            ("stat", mkfake.render_stat(self.machine, self.state)),
        ):
            path = self.root.proc(name)
            tmp = path + ".new"
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, path)


@pytest.fixture
def counter_simulator():
    """``counter_simulator(root, machine) -> CounterSimulator``."""
    return CounterSimulator


# --------------------------------------------------------------------------
# the real /proc/irq stays untouched
# --------------------------------------------------------------------------


def snapshot_smp_affinity(root: SysRoot) -> dict[str, bytes | None]:
    """``{irq: smp_affinity bytes}`` for every /proc/irq/N of ``root`` (None if unreadable)."""
    snap: dict[str, bytes | None] = {}
    for name in root.listdir(root.proc("irq")) or ():
        if not name.isdigit():
            continue
        try:
            snap[name] = root.read_bytes(root.proc("irq", name, "smp_affinity"))
        except KernelReadError:
            snap[name] = None
    return snap


def changed_affinities(
    before: dict[str, bytes | None], after: dict[str, bytes | None]
) -> list[str]:
    """IRQs whose smp_affinity differs; IRQs that appeared or vanished meanwhile are ignored
    (devices come and go on a live machine; a test cannot create or remove IRQs)."""
    return sorted(
        (irq for irq in before.keys() & after.keys() if before[irq] != after[irq]), key=int
    )


@pytest.fixture(autouse=True)
def hermetic_default_config(monkeypatch):
    """Where the product would read /etc/pyirqbalance/pyirqbalance.yaml, it reads the
    suite's empty configuration (every default) instead."""
    for module, name in hermetic.DEFAULT_CONFIG_READERS:
        monkeypatch.setattr(importlib.import_module(module), name, str(hermetic.DEFAULTS_CONFIG))


@pytest.fixture(autouse=True)
def collector_thawed():
    yield
    gc.unfreeze()


@pytest.fixture(scope="session", autouse=True)
def real_proc_irq_untouched():
    """Fail the session if any test changed the real /proc/irq/*/smp_affinity."""
    live = SysRoot("/")
    before = snapshot_smp_affinity(live)
    yield
    after = snapshot_smp_affinity(live)
    changed = changed_affinities(before, after)
    if changed:
        details = ", ".join(f"{irq}: {before[irq]!r} -> {after[irq]!r}" for irq in changed)
        pytest.fail(f"the test suite changed real smp_affinity files: {details}")


# --------------------------------------------------------------------------
# the slow tiers (marker "slow": pytest -m "not slow" runs the others)
# --------------------------------------------------------------------------

#: Where the tests start daemons, QEMU guests or package builds.
SLOW_TIERS = ("tests/integration/", "tests/hostile/", "tests/seed/", "tests/differential/",
              "tests/packaging/", "tests/realkernel/", "tests/monitoring/")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow = pytest.mark.slow
    for item in items:
        if item.nodeid.startswith(SLOW_TIERS):
            item.add_marker(slow)


# --------------------------------------------------------------------------
# CI: every tier ran something
# --------------------------------------------------------------------------

#: Tiers whose tests skip for the environment (root, unshare, irqbalance, tmux, Debian tools):
#: name -> path under the repository. Where CI provides all of that, a tier in which not one
#: test ran means a broken machine or a broken suite, and the session fails.
CI_TIERS = {
    "differential": "tests/differential",
    "hostile": "tests/hostile",
    "seed": "tests/seed",
    "packaging": "tests/packaging",
    "uisocket-live": "tests/integration/test_uisocket_live.py",
    "realkernel": "tests/realkernel",
    "sysvinit": "tests/integration/test_sysvinit.py",
}

ROOT = Path(__file__).resolve().parent.parent
_tier_ran: dict[str, int] = {}
#: Tiers with collected tests, split by whether -m/-k kept them (``pytest -m "not slow"``
#: deselects whole tiers on purpose: that is a choice, not a skip).
_tier_selected: set[str] = set()
_tier_deselected: set[str] = set()


def _tier_of(nodeid: str) -> str | None:
    path = nodeid.split("::", 1)[0]
    for name, where in CI_TIERS.items():
        if path == where or path.startswith(where + "/"):
            return name
    return None


def pytest_deselected(items: list[pytest.Item]) -> None:
    _tier_deselected.update(t for t in map(_tier_of, (i.nodeid for i in items)) if t)


def pytest_collection_finish(session: pytest.Session) -> None:
    _tier_selected.update(t for t in map(_tier_of, (i.nodeid for i in session.items)) if t)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count the tests that ran (passed or failed their call phase) per tier."""
    if report.when == "call":
        tier = _tier_of(report.nodeid)
        if tier is not None:
            _tier_ran[tier] = _tier_ran.get(tier, 0) + 1


def covered_tiers(args: list[str], cwd: Path, rootdir: Path) -> list[str]:
    """The tiers the paths the session was asked to run reach into (``pytest -q``: all)."""
    paths = [(cwd / a.split("::", 1)[0]).resolve() for a in args] or [rootdir / "tests"]
    tiers = {name: (rootdir / where).resolve() for name, where in CI_TIERS.items()}
    return [name for name, where in tiers.items()
            if any(where.is_relative_to(p) or p.is_relative_to(where) for p in paths)]


def idle_tiers(ran: dict[str, int], covered: list[str],
               deselected_only: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """The covered tiers in which no test ran, but for those whose every collected test was
    deselected (``-m``/``-k``)."""
    return [name for name in covered if not ran.get(name) and name not in deselected_only]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI", "").lower() in ("", "0", "false", "no"):
        return
    config = session.config
    idle = idle_tiers(_tier_ran, covered_tiers(list(config.args), config.invocation_params.dir,
                                               ROOT), _tier_deselected - _tier_selected)
    if not idle:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for name in idle:
        line = (f"CI: no test of the {name} tier ({CI_TIERS[name]}) ran: "
                "all skipped or none collected (see the skip reasons above)")
        if reporter is not None:
            reporter.write_line(line, red=True)
        else:
            print(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
