"""--placement=balanced in ``--dry-run`` (text and JSON) and in ``pyirqbalancectl report``.

The machine: two CPUs and four network queues whose counts since boot are
20000, 15000, 10000 and 5000, on cpu0, cpu1, cpu0, cpu1 (mkfake's first
effective CPUs). A network interrupt costs 2000 + 8000 ns (mkfake), so
/proc/stat says cpu0 spent 300 ms and cpu1 200 ms in interrupts; split by
counts: 200, 150, 100 and 50 ms. The plan (worked out in
tests/unit/test_balanced.py): swap IRQs 40 and 41, 250 ms on each CPU. The
floor: max(costliest IRQ 200, total 500 / 2 CPUs) = 250 ms.
"""

from __future__ import annotations

import copy
import io
import json
import subprocess
from pathlib import Path

from pyirqbalance.api import ctl
from tests.hermetic import pyirqbalance_argv

ROOT = Path(__file__).resolve().parents[2]

MACHINE = {
    "name": "two_cpu_nic",
    "topology": {"packages": 1, "cores_per_package": 2},
    "pci_devices": [{
        "address": "0000:03:00.0", "class": "0x020000", "driver": "igb", "numa_node": -1,
        "irqs": [{"irq": 40, "total": 20000}, {"irq": 41, "total": 15000},
                 {"irq": 42, "total": 10000}, {"irq": 43, "total": 5000}],
    }],
}
EXPECTED = {
    "placement": "balanced",
    "estimated": False,
    "window": "since boot",
    "floor_us": 250000.0,
    "busiest_now_us": 300000.0,
    "busiest_after_us": 250000.0,
    "cpus": [{"cpu": 0, "now_us": 300000.0, "after_us": 250000.0},
             {"cpu": 1, "now_us": 200000.0, "after_us": 250000.0}],
    "moves": [{"irq": 40, "from": 0, "to": 1}, {"irq": 41, "from": 1, "to": 0}],
    # where each fired since boot: the only CPU column of its row that is not 0
    "located": [{"irq": 40, "cpus": [0], "count": 20000}, {"irq": 41, "cpus": [1], "count": 15000},
                {"irq": 42, "cpus": [0], "count": 10000}, {"irq": 43, "cpus": [1], "count": 5000}],
}


def _dry_run(tree: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*pyirqbalance_argv(), "--dry-run", f"--sysroot={tree}", *extra],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )


def test_dry_run_json_shows_now_after_and_floor(fake_machine):
    root, _ = fake_machine(MACHINE)
    out = json.loads(_dry_run(root.base, "--format=json", "--placement=balanced").stdout)
    assert out["placement"] == EXPECTED
    # the default placement has no such section
    assert "placement" not in json.loads(_dry_run(root.base, "--format=json").stdout)


def test_dry_run_says_when_costs_are_estimated(fake_machine):
    # /proc/stat without the interrupts' cost (cpu_stat takes back what mkfake adds for the
    # counts: cpu0 30000 x 2000 ns = 6 jiffies irq, x 8000 = 24 softirq; cpu1 4 and 16):
    # every interrupt is taken as 1 us (all four are network queues: only counts are
    # compared), a tenth of what was measured above, so the same plan at a tenth of the
    # times -- and it says so.
    desc = copy.deepcopy(MACHINE)
    desc["cpu_stat"] = {"0": {"irq": -6, "softirq": -24}, "1": {"irq": -4, "softirq": -16}}
    root, _ = fake_machine(desc)
    proc = _dry_run(root.base, "--format=json", "--placement=balanced")
    section = json.loads(proc.stdout)["placement"]
    assert section["estimated"] is True and "no IRQ time accounting" in section["note"]
    assert section["cpus"] == [{"cpu": 0, "now_us": 30000.0, "after_us": 25000.0},
                               {"cpu": 1, "now_us": 20000.0, "after_us": 25000.0}]
    assert section["moves"] == EXPECTED["moves"]
    assert "no IRQ time accounting" in proc.stderr  # the log says it too
    text = _dry_run(root.base, "--placement=balanced").stdout
    assert "balanced placement, interrupt time since boot: busiest CPU 30.0 ms now, 25.0 ms " \
           "after 2 moves; floor 25.0 ms" in text
    assert "note: no IRQ time accounting" in text


def test_ctl_report_shows_the_plan(fake_machine, tmp_path, monkeypatch):
    for var in ("PYIRQBALANCE_URL", "IRQBALANCE_BANNED_CPULIST", "IRQBALANCE_BANNED_CPUS",
                "IRQBALANCE_ARGS"):
        monkeypatch.delenv(var, raising=False)
    root, _ = fake_machine(MACHINE)
    config = tmp_path / "balanced.yaml"
    config.write_text("balancing:\n  placement: balanced\n")
    out = io.StringIO()
    code = ctl.main(["--config", str(config), "--local", "--sysroot", root.base, "--json",
                     "report", "--group", "cpu"], out=out)
    assert code == 0 and json.loads(out.getvalue())["placement"] == EXPECTED
    out = io.StringIO()
    code = ctl.main(["--config", str(config), "--local", "--sysroot", root.base, "report"],
                    out=out)
    assert code == 0
    assert "busiest CPU 300.0 ms now, 250.0 ms after 2 moves; floor 250.0 ms" in out.getvalue()
