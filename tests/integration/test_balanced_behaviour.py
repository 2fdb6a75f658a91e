"""--placement=balanced through the Balancer on fake machines: rules any planner must keep.

Only what the machine shows is asserted (the CPU each IRQ fires on after the balancer's writes,
as the counter simulator applies them), never the planner's internals. Costs: mkfake's network
IRQs cost 2000 + 8000 ns each; rates are multiples of 5000 (5000 x 2000 ns = one 10 ms jiffy).
"""

from __future__ import annotations

import logging

from pyirqbalance.engine.balancer import Balancer
from pyirqbalance.engine.model import BalancerSettings, HintPolicy

#: IRQ -> interrupts per second; per-IRQ cost at 10 us each: 200, 150, 100, 50 ms per second.
RATES = {40: 20000, 41: 15000, 42: 10000, 43: 5000}
COST_MS = {irq: rate // 100 for irq, rate in RATES.items()}


def nic_machine(cpus: int, hints: dict[int, str] | None = None) -> dict:
    """One package of ``cpus`` cores; a NIC whose IRQs 40-43 first fire on CPUs in turn."""
    irqs = [{"irq": irq, "rate": rate} for irq, rate in RATES.items()]
    for q in irqs:
        if hints and q["irq"] in hints:
            q["affinity_hint"] = hints[q["irq"]]
    return {
        "name": f"nic_{cpus}cpu",
        "topology": {"packages": 1, "cores_per_package": cpus},
        "pci_devices": [{"address": "0000:03:00.0", "class": "0x020000", "driver": "igb",
                         "numa_node": -1, "irqs": irqs}],
    }


def run(fake_machine, counter_simulator, machine: dict, settings: BalancerSettings,
        passes: int) -> dict[int, int]:
    """The CPU each NIC IRQ fires on after ``passes`` passes and the last pass's writes."""
    root, m = fake_machine(machine)
    sim = counter_simulator(root, m)
    b = Balancer(root, settings, log=logging.getLogger("test"))
    b.start()
    for _ in range(passes):
        sim.advance(1)
        b.run_pass()
    sim.apply_writes()
    return {irq: sim.state.eff[irq] for irq in RATES}


def load_ms(where: dict[int, int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for irq, cpu in where.items():
        out[cpu] = out.get(cpu, 0) + COST_MS[irq]
    return out


def test_it_evens_two_cpus(fake_machine, counter_simulator):
    # first firing: cpu0 40 + 42 = 300, cpu1 41 + 43 = 200; the even split is 250 / 250
    where = run(fake_machine, counter_simulator, nic_machine(2),
                BalancerSettings(placement="balanced"), 2)
    assert load_ms(where) == {0: 250, 1: 250}


def test_subset_hint_keeps_the_irq_on_its_hint(fake_machine, counter_simulator):
    # IRQ 40 hints cpu0 and --hintpolicy=subset: it stays there; the rest still evens out
    # (250 / 250 is reached without moving 40: 40 + 43 on cpu0, 41 + 42 on cpu1).
    settings = BalancerSettings(placement="balanced", hintpolicy=HintPolicy.SUBSET)
    where = run(fake_machine, counter_simulator, nic_machine(2, {40: "0"}), settings, 2)
    assert where[40] == 0
    assert load_ms(where) == {0: 250, 1: 250}


def test_subset_hint_moves_an_irq_onto_its_hint(fake_machine, counter_simulator):
    # IRQ 43 first fires on cpu3 but hints cpu1: it must go to cpu1.
    settings = BalancerSettings(placement="balanced", hintpolicy=HintPolicy.SUBSET)
    where = run(fake_machine, counter_simulator, nic_machine(4, {43: "1"}), settings, 2)
    assert where[43] == 1


def test_a_banned_cpu_is_emptied_and_never_used(fake_machine, counter_simulator):
    # 4 CPUs, IRQBALANCE_BANNED_CPULIST=3: IRQ 43 first fires on cpu3 and must leave it;
    # nothing is put there, whatever the load.
    settings = BalancerSettings(placement="balanced", banned_cpulist_env="3")
    where = run(fake_machine, counter_simulator, nic_machine(4), settings, 3)
    assert 3 not in where.values()
    # banning cpu0 and cpu1 instead: all four IRQs on cpus 2-3, evened (40 + 43 / 41 + 42)
    settings = BalancerSettings(placement="balanced", banned_cpulist_env="0-1")
    where = run(fake_machine, counter_simulator, nic_machine(4), settings, 3)
    assert set(where.values()) <= {2, 3}
    assert load_ms(where) == {2: 250, 3: 250}
