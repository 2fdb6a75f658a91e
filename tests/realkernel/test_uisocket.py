"""The control socket in the guest answers irqbalance-ui's ``setup`` and ``stats`` as
irqbalance 1.9.2 does there, and its tree is the guest's: its CPUs and nodes, IRQs that
/proc/interrupts lists, and every IRQ it shows on a CPU is on that CPU in smp_affinity.

Each daemon ran alone (``--interval=1 --banirq=N``, N a legacy IO-APIC IRQ) and was
asked after its first balancing pass, with SCM_CREDENTIALS as irqbalance-ui sends them.
"""

from __future__ import annotations

import pytest

from tests.realkernel.records import cpulist, mask, parse_stats

pytestmark = pytest.mark.realkernel

CPU, NODE = 0, 3  # irqbalance's obj_type_t


@pytest.fixture(scope="module")
def obs(guests):
    return guests("4cpu-1node").step("uisocket")


def test_setup_is_irqbalances_byte_for_byte(obs):
    assert obs["pyirqbalance"]["setup"] == obs["irqbalance"]["setup"]
    assert f"IRQ {obs['ban']} " in obs["pyirqbalance"]["setup"]


def test_stats_has_irqbalances_tree_and_irqs(obs):
    theirs = parse_stats(obs["irqbalance"]["stats"])
    ours = parse_stats(obs["pyirqbalance"]["stats"])
    assert [(o.type, o.number) for o in ours] == [(o.type, o.number) for o in theirs]
    their_irqs = {irq: c for o in theirs for irq, c in o.irqs.items()}
    our_irqs = {irq: c for o in ours for irq, c in o.irqs.items()}
    assert our_irqs == their_irqs  # the same IRQs, each with the same class


def test_stats_describes_the_guest(obs):
    ours = parse_stats(obs["pyirqbalance"]["stats"])
    assert {o.number for o in ours if o.type == CPU} == cpulist(obs["online"])
    assert {o.number for o in ours if o.type == NODE} == {-1, *obs["nodes"]}
    listed = {irq for o in ours for irq in o.irqs}
    assert listed and listed <= {int(irq) for irq in obs["interrupts"]}
    assert int(obs["ban"]) not in listed


def test_irqs_shown_on_a_cpu_are_there_in_smp_affinity(obs):
    ours = obs["pyirqbalance"]  # the masks were read between two replies with the same tree
    writable = {int(irq) for irq, err in obs["probe_errno"].items() if err == 0}
    on_cpus = [(o.number, irq) for o in parse_stats(ours["stats"]) if o.type == CPU
               for irq in o.irqs if irq in writable]
    assert on_cpus, "no movable IRQ on a CPU object: nothing compared"
    for cpu, irq in on_cpus:
        assert mask(ours["masks"][str(irq)]) == 1 << cpu, (irq, cpu, ours["masks"][str(irq)])
