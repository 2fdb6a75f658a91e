"""``--oneshot --dry-run``'s header and summary, checked against what a real ``--oneshot``
does to an identical tree and against the machines' descriptions.

* a_desktop4: no isolated or nohz_full CPUs;
* e_isolated_nohz: isolated 2-3 and nohz_full 12-15, so banned 2-3,12-15, and every IRQ
  starts on all 16 CPUs (mkfake's default affinity), i.e. on banned CPUs;
* g_nvme_managed: the NVMe I/O queues are kernel-managed. The kernel creates
  /proc/irq/N/smp_affinity read-only (0444) for such IRQs and refuses a write with EIO
  (kernel/irq/proc.c ``register_irq_proc``; seen on a virtio-blk queue, virtio1-req.0, of a
  Debian 12 guest): the test gives the fake tree's files that mode.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.hermetic import pyirqbalance_argv
from tests.oracle import mkfake

ROOT = Path(__file__).resolve().parents[2]
MACHINES = ROOT / "tests" / "machines"


def machine(name: str) -> mkfake.Machine:
    return mkfake.Machine(json.loads((MACHINES / f"{name}.json").read_text()))


def build(tmp_path: Path, name: str) -> Path:
    tree = tmp_path / name
    mkfake.build_tree(machine(name), str(tree), force=True)
    return tree


def run(tree: Path, *args: str) -> subprocess.CompletedProcess:
    config = tree.parent / "empty.yaml"
    config.write_text("")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("IRQBALANCE_", "NOTIFY_", "WATCHDOG_")) and k != "INVOCATION_ID"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        pyirqbalance_argv("--oneshot", "--interval=1", f"--sysroot={tree}", f"--config={config}",
                          *args), capture_output=True, text=True, env=env, timeout=120)


def affinities(tree: Path) -> dict[str, str]:
    return {p.parent.name: p.read_text() for p in (tree / "proc" / "irq").glob("*/smp_affinity")}


@pytest.mark.parametrize("name", ["a_desktop4", "e_isolated_nohz"])
def test_would_move_is_what_a_real_oneshot_changes(tmp_path, name):
    tree = build(tmp_path, name)
    copy = tmp_path / "copy"
    shutil.copytree(tree, copy, symlinks=True)
    out = run(tree, "--dry-run", "--format=json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)["summary"]
    before = affinities(copy)
    real = run(copy)
    assert real.returncode == 0, real.stderr
    changed = {irq for irq, text in affinities(copy).items() if text != before[irq]}
    assert summary["would_move"] == len(changed)
    assert sum(summary["by_level"].values()) == len(changed)
    assert summary["irqs"] == (summary["would_move"] + summary["kernel_refuses"]
                               + summary["in_place"] + summary["banned"] + summary["left_alone"])
    if name == "e_isolated_nohz":     # every IRQ starts on all CPUs, banned ones included
        assert summary["off_banned_cpus"] == len(changed) > 0
    else:
        assert summary["off_banned_cpus"] == 0


def test_text_ends_with_the_summary_line(tmp_path):
    tree = build(tmp_path, "e_isolated_nohz")
    out = run(tree, "--dry-run")
    data = json.loads(run(tree, "--dry-run", "--format=json").stdout)["summary"]
    last = out.stdout.rstrip("\n").splitlines()[-1]
    assert last.startswith(f"would move {data['would_move']} of {data['irqs']} IRQs (")
    assert f"; {data['off_banned_cpus']} off banned CPUs)" in last


def test_header_says_where_banned_cpus_come_from(tmp_path):
    plain = run(build(tmp_path, "a_desktop4"), "--dry-run").stdout.splitlines()[1]
    assert plain.endswith("banned: none (no isolated or nohz_full CPUs)")
    isolated = run(build(tmp_path, "e_isolated_nohz"), "--dry-run").stdout.splitlines()[1]
    assert isolated.endswith("banned: 2-3,12-15 (isolated and nohz_full CPUs)")


def test_header_names_the_variable_that_banned_none(tmp_path):
    tree = build(tmp_path, "e_isolated_nohz")
    env = dict(os.environ, IRQBALANCE_BANNED_CPULIST="-")
    config = tmp_path / "empty.yaml"
    config.write_text("")
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        pyirqbalance_argv("--oneshot", "--dry-run", f"--sysroot={tree}", f"--config={config}"),
        capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.splitlines()[1].endswith("banned: none (set by IRQBALANCE_BANNED_CPULIST)")


def test_kernel_managed_irqs_are_said_to_be_refused_not_moved(tmp_path):
    m = machine("g_nvme_managed")
    tree = build(tmp_path, "g_nvme_managed")
    managed = {n for n, q in m.irqs.items() if q.get("managed")}
    assert managed
    for irq in managed:
        os.chmod(tree / "proc" / "irq" / str(irq) / "smp_affinity", 0o444)
    report = json.loads(run(tree, "--dry-run", "--format=json").stdout)
    entries = {e["irq"]: e for e in report["irqs"]}
    refused = {n for n, e in entries.items() if e["kernel_refuses"]}
    moving = {n for n, e in entries.items()
              if e["target_mask"] is not None and e["target_mask"] != e["current_mask"]}
    assert refused and refused == managed & moving
    assert report["summary"]["kernel_refuses"] == len(refused)
    text = run(tree, "--dry-run").stdout
    for line in text.splitlines()[3:]:
        words = line.split()
        if words and words[0].isdigit() and int(words[0]) in refused:
            assert "kernel-managed (smp_affinity read-only): the kernel refuses" in line
            assert "  move to " not in line          # the WHY column does not say "move to"
    assert f"; {len(refused)} the kernel manages itself would refuse a move" in text
