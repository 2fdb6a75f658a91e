"""--hintpolicy: what the dry run shows is what a run writes, and what each policy writes.

The policies are irqbalance 1.0-1.1's (activate.c ``activate_mapping``): ``exact`` writes the
driver's ``affinity_hint`` instead of the placed object's CPUs, ``subset`` writes the object's
CPUs that are also in the hint, ``ignore`` writes the object's CPUs. The machine is
a_desktop4 (one package of 4 CPUs; the NIC's queue IRQs 128-131 hint CPUs 0-3) with hints
added to two legacy IRQs, which balance at package level (the whole package, CPUs 0-3).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pyirqbalance.kernel.cpumask import parse_mask
from tests.conftest import MACHINES
from tests.hermetic import pyirqbalance_argv

ROOT = Path(__file__).resolve().parents[2]
#: legacy IRQ -> the affinity_hint given to it (mkfake cpulist)
LEGACY_HINTS = {1: "1-2", 4: "2"}


def machine() -> dict:
    desc = json.loads((MACHINES / "a_desktop4.json").read_text())
    for q in desc["irqs"]:
        if q["irq"] in LEGACY_HINTS:
            q["affinity_hint"] = LEGACY_HINTS[q["irq"]]
    desc["name"] = "a_desktop4_hinted"
    return desc


def _run(*args: str) -> subprocess.CompletedProcess:
    out = subprocess.run(pyirqbalance_argv(*args), capture_output=True, text=True, cwd=ROOT,
                         timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    return out


def _masks(tree: Path) -> dict[int, int]:
    return {int(p.parent.name): parse_mask(p.read_text().strip())
            for p in (tree / "proc" / "irq").glob("*/smp_affinity")}


def _dry_run_and_run(fake_machine, tmp_path: Path, *options: str):
    """(dry-run JSON, masks before, masks after a real oneshot) on two copies of one tree."""
    root, _ = fake_machine(machine())
    shown, written = Path(root.base), tmp_path / "written"
    shutil.copytree(shown, written, symlinks=True)
    before = _masks(shown)
    dry = json.loads(_run("--oneshot", "--dry-run", "--format=json", f"--sysroot={shown}",
                          *options).stdout)
    assert _masks(shown) == before  # the dry run wrote nothing
    _run("--oneshot", f"--sysroot={written}", *options)
    return dry, before, _masks(written)


#: What each policy writes (hex masks): NIC queues 128-131 are placed on single CPUs,
#: legacy IRQs 1 and 4 on the package (CPUs 0-3).
WRITES = {
    "exact": {128: 0x1, 129: 0x2, 130: 0x4, 131: 0x8, 1: 0x6, 4: 0x4},
    # each queue on one CPU of its hint: the hint's CPU
    "subset": {128: 0x1, 129: 0x2, 130: 0x4, 131: 0x8, 1: 0x6, 4: 0x4},
    "ignore": {1: 0xF, 4: 0xF},
}


@pytest.mark.parametrize("placement", ["irqbalance", "balanced"])
@pytest.mark.parametrize("policy", sorted(WRITES))
def test_the_dry_run_shows_what_the_run_writes(fake_machine, tmp_path, policy, placement):
    dry, before, after = _dry_run_and_run(fake_machine, tmp_path, f"--hintpolicy={policy}",
                                          f"--placement={placement}")
    shown = {i["irq"]: i["target_mask"] for i in dry["irqs"]}
    assert set(shown) <= set(after)
    mismatched = {
        irq: (target, f"{after[irq]:x}") for irq, target in shown.items()
        if after[irq] != (before[irq] if target is None else parse_mask(target))
    }
    assert mismatched == {}, "dry-run target vs written smp_affinity"
    # and it is what the policy asks for (the first pass places the same for both)
    want = WRITES[policy]
    assert {irq: after[irq] for irq in want} == want
