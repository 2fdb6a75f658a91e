"""CPU offline and online under the daemon, with the NVMe drive busy: no movable IRQ is
left on offline CPUs only, the daemon rescans and places the IRQs on the CPUs left, keeps
running, and puts IRQs on the CPU again once it is back.

In the 8-CPU guest the daemon (``--interval=1``) balanced for three passes; a CPU it had
put an IRQ on alone went offline for four passes (masks read after each), then came back.
"""

from __future__ import annotations

import pytest

from tests.realkernel.records import cpulist, mask

pytestmark = pytest.mark.realkernel


@pytest.fixture(scope="module")
def obs(guests):
    return guests("8cpu-2node").step("hotplug")


def movable(obs) -> set[str]:
    """IRQs the kernel lets anyone move (the probe wrote their own mask back)."""
    return {irq for irq, err in obs["probe_errno"].items() if err == 0}


def test_the_cpu_went_offline_and_came_back(obs):
    cpu = obs["cpu"]
    assert cpu in cpulist(obs["online_before"]) and cpu in cpulist(obs["online_after"])
    assert cpulist(obs["online_during"]) == cpulist(obs["online_before"]) - {cpu}


def test_no_movable_irq_keeps_a_mask_of_offline_cpus_only(obs):
    online = sum(1 << c for c in cpulist(obs["online_during"]))
    for n, sample in enumerate(obs["offline"], 1):
        stranded = {irq: m for irq, m in sample.items() if irq in movable(obs)
                    and not mask(m) & online}
        assert not stranded, f"pass {n} after the CPU left: {stranded}"


def test_the_daemon_places_the_irqs_again_without_the_cpu(obs):
    cpu, last = obs["cpu"], obs["offline"][-1]
    online = sum(1 << c for c in cpulist(obs["online_during"]))
    were_there = [irq for irq in movable(obs) if mask(obs["placed"][irq]) == 1 << cpu]
    assert were_there, f"no IRQ was on CPU {cpu} alone: nothing tested"
    for irq in were_there:
        # the kernel's fallback is every online CPU; the daemon picks its own place
        assert mask(last[irq]) & ~online == 0 and mask(last[irq]) != online, (irq, last[irq])
    written = [irq for irq in movable(obs) if last[irq] != obs["before"][irq]]
    assert all(not mask(last[irq]) >> cpu & 1 for irq in written), \
        {irq: last[irq] for irq in written}


def test_the_daemon_keeps_running_and_uses_the_cpu_again(obs):
    assert obs["alive"] and obs["rc"] == 0, obs["log"][-3000:]
    assert "Traceback" not in obs["log"]
    cpu, ncpus = obs["cpu"], len(cpulist(obs["online_after"]))
    assert any(mask(m) >> cpu & 1 and bin(mask(m)).count("1") < ncpus
               for sample in obs["back"] for irq, m in sample.items() if irq in movable(obs)), \
        f"no IRQ placed on CPU {cpu} after it came back ({len(obs['back'])} passes)"
