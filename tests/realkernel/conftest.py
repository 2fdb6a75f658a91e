"""The real-kernel tier: boots of the installed Debian kernel under QEMU, shared by the tests.

Each guest shape boots once per session, the first time a test asks for it, and runs all
the steps of :data:`BOOTS` for it in one go (boots are the cost: 20-70 s each on a busy
2-core machine); the tests then assert on what each step wrote down. Without QEMU, the
kernel or a static busybox the tier skips with the reason, except under CI (``CI`` set and
not ``false``/``0``), where a missing tool fails it: .ci/run installs them.

``RK_RESULTS=DIR`` (a ``--basetemp`` of an earlier run) asserts on that run's records
instead of booting: for working on the assertions.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.realkernel import vm

ROOT = Path(__file__).resolve().parents[2]
#: A failure limit for one boot (the guest powers off itself when its steps end).
BOOT_TIMEOUT_S = 900

#: Which steps (tests/realkernel/inguest.py) run in which guest.
BOOTS: dict[str, tuple[vm.Shape, tuple[str, ...]]] = {
    "4cpu-1node": (vm.Shape(4, 1), ("oneshot", "managed", "uisocket")),
    "8cpu-2node": (vm.Shape(8, 2), ("oneshot", "hotplug", "reload", "balanced")),
    "16cpu-4node": (vm.Shape(16, 4), ("restore", "oneshot")),
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


class Guest(NamedTuple):
    """What one boot left: the guest script's status, console, and each step's record."""

    name: str
    shape: vm.Shape
    run: vm.GuestRun

    def boot(self) -> dict[str, Any]:
        """The masks, /proc/interrupts rows and online CPUs right after the drivers loaded."""
        return self._load("boot")

    def step(self, name: str) -> dict[str, Any]:
        """The record of step ``name``; fails with the guest's traceback if it raised."""
        obs = self._load(name)
        if "error" in obs:
            pytest.fail(f"{self.name}: step {name} failed in the guest:\n{obs['error']}",
                        pytrace=False)
        return obs

    def _load(self, name: str) -> dict[str, Any]:
        path = self.run.share / f"{name}.json"
        if not path.exists():
            pytest.fail(f"{self.name}: the guest left no {name}.json (script status "
                        f"{self.run.rc}); console:\n{self.run.console[-6000:]}", pytrace=False)
        data: dict[str, Any] = json.loads(path.read_text())
        return data


@pytest.fixture(scope="session")
def vm_tools() -> vm.Tools:
    found = vm.find_tools()
    if isinstance(found, str):
        if in_ci():
            pytest.fail(f"real-kernel tier: {found} (CI must install them: .ci/run)",
                        pytrace=False)
        pytest.skip(f"real-kernel tier: {found}")
    return found


@pytest.fixture(scope="session")
def initramfs(vm_tools: vm.Tools, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return vm.build_initramfs(vm_tools, tmp_path_factory.mktemp("initramfs") / "initrd.cpio")


def guest_script(steps: tuple[str, ...]) -> str:
    """The guest's run.sh: the checkout's interpreter runs inguest.py from the checkout."""
    return "\n".join([
        "export PATH=/usr/sbin:/usr/bin:/sbin:/bin TMPDIR=/var/tmp LANG=C.UTF-8",
        f"cd {shlex.quote(str(ROOT))} || exit 100",
        f"exec {shlex.quote(sys.executable)} -B -m tests.realkernel.inguest "
        f"{vm.GUEST_SHARE} {' '.join(steps)}",
        "",
    ])


@pytest.fixture(scope="session")
def guests(vm_tools: vm.Tools, initramfs: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``guests(name)``: the boot ``name`` of :data:`BOOTS`, booted on first use."""
    done: dict[str, Guest] = {}

    def get(name: str) -> Guest:
        earlier = os.environ.get("RK_RESULTS")
        if earlier and name not in done:
            share = Path(earlier) / f"guest-{name}0" / "share"
            console = (share.parent / "console.txt").read_text(errors="replace")
            rc = (share / "rc").read_text().strip() if (share / "rc").exists() else ""
            done[name] = Guest(name, BOOTS[name][0],
                               vm.GuestRun(int(rc) if rc else None, console, share, 0.0))
        if name not in done:
            shape, steps = BOOTS[name]
            work = tmp_path_factory.mktemp(f"guest-{name}")
            run = vm.boot(vm_tools, shape, initramfs, work, guest_script(steps),
                          timeout=BOOT_TIMEOUT_S)
            sys.stderr.write(f"\n[realkernel] {name}: {run.seconds:.0f} s, guest status "
                             f"{run.rc}\n")
            done[name] = Guest(name, shape, run)
        return done[name]

    return get
