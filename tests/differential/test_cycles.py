"""Cycles: the daemons make the same decisions pass after pass under simulated load.

Each machine of ``CYCLES_MACHINES`` runs as a daemon for ``CYCLES_PASSES``
passes; the harness serves /proc/interrupts and /proc/stat through FIFOs,
fires every IRQ's rate on its effective CPU between passes and gives each
write the kernel's answer (managed and IRQF_NOBALANCING IRQs refuse). The
recording (tests/fixtures/expected/<machine>/cycles.json) holds irqbalance's
writes per pass.
"""

from __future__ import annotations

import pytest

from tests.differential.cases import CYCLES_MACHINES, CYCLES_PASSES, allowed
from tests.differential.conftest import (
    assert_agrees,
    assert_recording_is_of,
    expected,
    machine_path,
    require_oracle,
    require_pyirqbalance,
)
from tests.oracle import harness

pytestmark = pytest.mark.differential


@pytest.mark.parametrize("machine", CYCLES_MACHINES)
def test_recording_is_of_this_machine(machine):
    rec = assert_recording_is_of(machine, "cycles")
    assert rec["passes_requested"] == CYCLES_PASSES
    # pass 0 (start-up) and one record per balancing pass
    assert len(rec["passes"]) == CYCLES_PASSES + 1
    assert rec["returncode"] == 0 and not rec["errors"]


def test_some_machine_moves_irqs_after_the_first_pass():
    """The cycles set must exercise load-based migration, not only the first placement."""
    later = [
        m for m in CYCLES_MACHINES
        if any(p["written"] for p in expected(m, "cycles")["passes"][2:])
    ]
    assert len(later) >= 2, later


@pytest.mark.parametrize("machine", CYCLES_MACHINES)
def test_irqbalance_still_decides_the_recording(machine, tmp_path):
    """The installed irqbalance still makes the recorded decisions.

    A second run is allowed: irqbalance orders IRQs of equal load by heap
    address (docs/differences.md), and on a busy machine its main loop can
    allocate in another order between passes (seen twice in a day, on
    g_nvme_managed, with the suite sharing 2 CPUs with benchmarks).
    """
    require_oracle()
    recorded = expected(machine, "cycles")
    rec = harness.CyclesResult.from_json({**recorded, "argv": [], "balancer": ""})
    extra, env = harness.machine_options(machine_path(machine))
    for attempt in (1, 2):
        res = harness.run_cycles(
            harness.IRQBALANCE, machine_path(machine), tmp_path / f"run{attempt}", CYCLES_PASSES,
            extra, env,
        )
        if all(a.ratio == 1.0 for a in harness.compare_cycles(rec, res)):
            break
    assert res.returncode == 0, res.log[-3000:]
    assert not res.errors
    assert res.stat_reads == rec.stat_reads
    # The FIFO server counts an open of /proc/interrupts when its writer thread gets
    # through open(); the one of the last pass can race with the balancer's exit on
    # SIGTERM (seen once in CI: 7 instead of 8), so allow that one.
    assert rec.interrupts_reads - 1 <= res.interrupts_reads <= rec.interrupts_reads
    for i, agreement in enumerate(harness.compare_cycles(rec, res)):
        assert agreement.ratio == 1.0, f"pass {i}: {agreement.describe()}"
    assert [p.rejected for p in res.passes] == [p.rejected for p in rec.passes]


@pytest.mark.parametrize("machine", CYCLES_MACHINES)
def test_pyirqbalance_decides_what_irqbalance_decided(machine, tmp_path):
    require_pyirqbalance()
    rec = expected(machine, "cycles")
    extra, env = harness.machine_options(machine_path(machine))
    ours = harness.pyirqbalance_command("--foreground", "--interval=1")
    res = harness.run_cycles(ours, machine_path(machine), tmp_path, CYCLES_PASSES, extra, env)
    assert res.returncode == 0, res.log[-3000:]
    assert not res.errors
    # same read pattern: one /proc/stat per pass, a pass starts with /proc/interrupts;
    # at start-up one read fewer (the database's read is the baseline, docs/differences.md),
    # and the last one may race with SIGTERM (see above)
    assert res.stat_reads == rec["stat_reads"]
    assert rec["interrupts_reads"] - 2 <= res.interrupts_reads <= rec["interrupts_reads"] - 1
    assert len(res.passes) == len(rec["passes"])
    for want, got in zip(rec["passes"], res.passes):
        assert_agrees(
            want["written"], got.written, allowed(machine, "cycles", got.index),
            f"{machine} pass {got.index}",
        )
