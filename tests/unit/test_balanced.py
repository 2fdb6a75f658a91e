"""Balanced placement (``--placement=balanced``) on hand-computed cases.

Every expected CPU below is worked out in the comments from the rules of
engine/balanced.py: the busiest CPU gives one IRQ to the CPU that ends lowest
when that lowers it by more than ``min_gain``; when no single move does, a
swap with a cheaper IRQ elsewhere may; IRQs that may not stay where they
fire move first, costliest first, to the least-loaded CPU they may use.
"""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest

from pyirqbalance.engine.balanced import (
    BalancedPlacement,
    Item,
    Located,
    _long_run_add,
    floor_of,
    plan_by_kind,
    plan_placement,
)
from pyirqbalance.engine.balancer import Balancer
from pyirqbalance.engine.model import BalancerSettings
from pyirqbalance.kernel.cpumask import parse_mask

CPU0, CPU1, CPU2, CPU3 = 1, 2, 4, 8


def test_one_move_evens_two_cpus():
    # cpu0: A 6 + B 4 = 10, cpu1: C 2. Off cpu0: B -> max(6, 6) = 6; A -> max(4, 8) = 8.
    # B moves. Then cpu0 = cpu1 = 6; nothing lowers cpu0 below 6 * 0.95: stop.
    items = [Item(1, 6, 0, CPU0 | CPU1), Item(2, 4, 0, CPU0 | CPU1), Item(3, 2, 1, CPU0 | CPU1)]
    plan = plan_placement(items, CPU0 | CPU1)
    assert plan.placed == {1: 0, 2: 1, 3: 1}
    assert plan.moves == {2: (0, 1)}
    assert plan.before == {0: 10, 1: 2}
    assert plan.after == {0: 6, 1: 6}
    # floor: max(costliest 6, no fixed load, total 12 / 2 CPUs = 6) = 6
    assert plan.floor == 6


def test_swap_when_no_single_move_helps():
    # cpu0: A 3, B 2, C 2 = 7; cpu1: D 3, E 2 = 5. Moving a 2 gives max(5, 7) = 7, a 3
    # gives max(4, 8) = 8: no single move lowers 7 (below 7 * 0.95).
    # Swap A 3 <-> E 2 (delta 1): 6 / 6. (A with D: delta 0, nothing.)
    items = [Item(1, 3, 0, CPU0 | CPU1), Item(2, 2, 0, CPU0 | CPU1), Item(3, 2, 0, CPU0 | CPU1),
             Item(4, 3, 1, CPU0 | CPU1), Item(5, 2, 1, CPU0 | CPU1)]
    plan = plan_placement(items, CPU0 | CPU1)
    assert plan.moves == {1: (0, 1), 5: (1, 0)}
    assert plan.after == {0: 6, 1: 6}


def test_hysteresis_keeps_a_small_gain_from_moving():
    # cpu0: 5.2 + 5.2 = 10.4, cpu1: 5 + 5 = 10. The best is a swap of 5.2 and 5: 10.2 / 10.2,
    # 2 % lower: under the 5 % threshold nothing moves; with threshold 0 the swap is made.
    items = [Item(1, 5.2, 0, CPU0 | CPU1), Item(2, 5.2, 0, CPU0 | CPU1),
             Item(3, 5.0, 1, CPU0 | CPU1), Item(4, 5.0, 1, CPU0 | CPU1)]
    assert plan_placement(items, CPU0 | CPU1, min_gain=0.05).moves == {}
    assert plan_placement(items, CPU0 | CPU1, min_gain=0.0).moves == {1: (0, 1), 3: (1, 0)}


def test_move_budget():
    # four IRQs of 4 on cpu0 of 4 CPUs: one to cpu1, one to cpu2 (each the least loaded,
    # lowest number first), then the budget of 2 is spent: cpu3 stays empty.
    allowed = CPU0 | CPU1 | CPU2 | CPU3
    items = [Item(n, 4, 0, allowed) for n in (1, 2, 3, 4)]
    plan = plan_placement(items, allowed, max_moves=2)
    assert plan.moves == {1: (0, 1), 2: (0, 2)}
    assert plan.after == {0: 8, 1: 4, 2: 4, 3: 0}
    assert plan_placement(items, allowed, max_moves=3).after == {0: 4, 1: 4, 2: 4, 3: 4}


def test_an_irq_off_its_node_moves_first_and_outside_the_budget():
    # node 0 = cpus 0-1, node 1 = cpus 2-3. X (10) fires on cpu2 but belongs to node 0;
    # Y (3) is fixed on cpu0 (allowed 0). X goes to the least-loaded CPU of node 0: cpu1.
    items = [Item(1, 10, 2, CPU0 | CPU1, node=0), Item(2, 3, 0, 0)]
    plan = plan_placement(items, CPU0 | CPU1 | CPU2 | CPU3, max_moves=1)
    assert plan.moves == {1: (2, 1)}
    assert plan.after == {0: 3, 1: 10, 2: 0, 3: 0}


def test_a_banned_cpu_is_left_even_by_a_light_irq_placed_here():
    # cpu3 is not usable. Z (4) fires there, may go anywhere usable: to cpu1 (cpu0 has 5,
    # cpu1 and cpu2 none: the lowest number of the least loaded).
    items = [Item(1, 5, 0, CPU0 | CPU1 | CPU2), Item(2, 4, 3, CPU0 | CPU1 | CPU2)]
    plan = plan_placement(items, CPU0 | CPU1 | CPU2)
    assert plan.placed[2] == 1
    assert plan.after[3] == 0


def test_light_irqs_stay_where_they_fire():
    # mean over 2 CPUs = (10 + 0.2 + 9) / 2 = 9.6; 5 % of it is 0.48: the 0.2 IRQ is light
    # and, the busiest CPU (10.2) being under 1.5 x the mean, not a candidate. Moving the 10
    # to cpu1 leaves 19: nothing moves.
    items = [Item(1, 10, 0, CPU0 | CPU1), Item(2, 0.2, 0, CPU0 | CPU1),
             Item(3, 9, 1, CPU0 | CPU1)]
    plan = plan_placement(items, CPU0 | CPU1)
    assert plan.placed == {1: 0, 3: 1}
    assert plan.moves == {}


def test_the_whole_plan_must_gain_not_each_move():
    # 40 equal IRQs of 1 on cpu0 of 2 CPUs and 20 on cpu1 (no single move of 1 lowers cpu0's
    # 40 by 5 %): moving ten of them gives 30 / 30, 25 % lower. Each IRQ is heavy (5 % of
    # the mean 30 is 1.5? no: 1 < 1.5, light) -- but cpu0 is not 1.5 x the mean (40 < 45):
    # nothing is a candidate, nothing moves; with cpu1 holding 5 instead (mean 22.5,
    # 40 > 33.75: crowded) light IRQs move, 17 or 18 of them, ending at 23 / 22 (ties:
    # lowest IRQ numbers first).
    both = CPU0 | CPU1
    items = [Item(n, 1, 0, both) for n in range(40)] + [Item(100 + n, 1, 1, both)
                                                        for n in range(20)]
    assert plan_placement(items, both, max_moves=100).moves == {}
    items = items[:45]
    plan = plan_placement(items, both, max_moves=100)
    assert max(plan.after.values()) == 23
    assert all(src == 0 and dst == 1 for src, dst in plan.moves.values())
    assert len(plan.moves) == 17
    assert sorted(plan.moves) == list(range(17))


def test_a_spike_alone_moves_nothing():
    # cpu0: A 10 + B 10 this window, cpu1: C 4. Moving A (the lowest number of the two
    # nearest (20 - 4) / 2) gives 10 / 14: 30 % lower, at the steady times as well when
    # they are this window's. When B's 10 is one window's spike (steady 1), cpu0 is 11
    # steady and the move would leave 1 / 14: busier than before, so nothing moves.
    both = CPU0 | CPU1
    items = [Item(1, 10, 0, both, steady=10), Item(2, 10, 0, both, steady=10),
             Item(3, 4, 1, both, steady=4)]
    assert plan_placement(items, both).moves == {1: (0, 1)}
    items[1] = Item(2, 10, 0, both, steady=1)
    assert plan_placement(items, both).moves == {}


def test_without_accounting_a_class_that_cannot_spread_evenly_makes_room_in_the_others():
    # interrupts per window, no cost known; 4 CPUs. Storage (planned first: its costliest IRQ
    # is 50 / 80 of it): IRQ 1 50 on cpu0, 2-4 10 on cpu1-3; nothing lowers cpu0, which keeps
    # 30 above the even 20. Network: IRQs 5-44, 2 each, 10 a CPU: even alone.
    # For the network plan cpu0 carries w x 30 (the classes have as many interrupts).
    # w 1/4: 27.5 / 20 / 20 / 20; 2s leave cpu0 (the lowest IRQ there, 5, 6, 7) for cpu1,
    #   cpu2, cpu3: 21.5 / 22 / 22 / 22; network per CPU 14 / 22 / 22 / 22: its busiest
    #   22 / 80 = 0.275 of it, 1.10 x its floor 1/4 -- within 15 % of spread alone (1.00).
    # w 1/2: 35 -> 6 moves, network 8 / 24 / 24 / 24: 1.20 x: ruled out; 3/4 and 1 more so.
    # Worst case (per-interrupt costs 1 or 10): both alike, floor max(50, 160 / 4) = 50: w 0
    #   cpu0 50 + 20 = 70 (1.40), w 1/4 50 + 14 = 64 (1.28); storage dear: 520 / 514 over
    #   500; network dear: floor 880 / 4 = 220, w 0 cpu0 50 + 200 (1.14), w 1/4 cpu1 10 +
    #   220 (1.05). Worst 1.40 against 1.28: w 1/4.
    cpus = CPU0 | CPU1 | CPU2 | CPU3
    items = [Item(1, 50, 0, cpus), Item(2, 10, 1, cpus), Item(3, 10, 2, cpus),
             Item(4, 10, 3, cpus)]
    items += [Item(irq, 2, (irq - 5) // 10, cpus) for irq in range(5, 45)]
    kinds = {1: "storage", 2: "storage", 3: "storage", 4: "storage"}
    kinds |= dict.fromkeys(range(5, 45), "net")
    plan = plan_by_kind(items, kinds, cpus)
    assert plan.moves == {5: (0, 1), 6: (0, 2), 7: (0, 3)}
    assert plan.after == pytest.approx({0: 64, 1: 32, 2: 32, 3: 32})


def test_without_accounting_a_first_placement_is_where_the_next_pass_leaves_it():
    # A 24-queue NIC and a 4-queue NVMe on 8 CPUs (interrupts a second; a draw of the
    # p_noacct family), firing nowhere known yet. Which weight of one class's excess the
    # other makes room for wins depends on where the IRQs start: placed from nowhere, one
    # weight; re-planned from that placement on the same counts, another -- and the second
    # pass moved 8 IRQs for nothing but that (no count changed). A first placement's moves
    # are free: it is re-planned from where it puts the IRQs until nothing moves, so the
    # next pass, at its hysteresis, has nothing to do.
    nic = [1, 265, 218, 157, 2155, 306, 316, 1687, 472, 2531, 2062, 321, 2458, 825, 531, 1835,
           941, 347, 843, 212, 1875, 642, 692, 2089, 208]
    nvme = [2, 557, 504, 206, 331]
    every = 0xFF
    items = [Item(100 + i, rate * 1e3, None, every) for i, rate in enumerate(nic)]
    items += [Item(200 + i, rate * 1e3, None, every) for i, rate in enumerate(nvme)]
    kinds = {it.irq: "nvme" if it.irq >= 200 else "ice" for it in items}

    def next_pass(first):
        placed = [it._replace(cpu=first.placed[it.irq]) for it in items]
        return plan_by_kind(placed, kinds, every, min_gain=0.05, max_moves=16)

    first = plan_by_kind(items, kinds, every, min_gain=0.0, max_moves=len(items),
                         settle_gain=0.05)
    assert set(first.placed) == {it.irq for it in items}
    assert next_pass(first).moves == {}
    unsettled = plan_by_kind(items, kinds, every, min_gain=0.0, max_moves=len(items))
    assert next_pass(unsettled).moves  # what the settling is for


def test_under_changing_load_irqs_whose_rate_jumps_about_are_not_stacked():
    # windows of 100, 300, 100, 300 interrupts: mean 200, variance ((100)^2 * 4) / 4 = 10000
    entry = None
    for n in (100, 300, 100, 300):
        entry = _long_run_add(entry, n)
    assert entry == (200.0, 4, 10000.0)
    # IRQs 1, 2 jump about like that (1 us an interrupt), 3, 4 fire a steady 200. At their
    # long-run rates plus one standard deviation: 1, 2 cost 300 us, 3, 4 200 us. All four
    # at their means cost 200 us: 1 + 2 on cpu0, 3 + 4 on cpu1 is even (400 / 400), nothing
    # to move; at mean + deviation cpu0 is 600, cpu1 400, and the swap 1 <-> 3 gives
    # 500 / 500: the two that jump are no longer on one CPU, where their peaks add up.
    bp = BalancedPlacement(None, logging.getLogger("test"))  # type: ignore[arg-type]
    steady = _long_run_add(_long_run_add(None, 200), 200)
    bp._long_run = {1: entry, 2: entry, 3: steady, 4: steady}
    bp._ns = dict.fromkeys((1, 2, 3, 4), 1000.0)
    both = CPU0 | CPU1
    now = [Item(1, 300e3, 0, both), Item(2, 300e3, 0, both), Item(3, 200e3, 1, both),
           Item(4, 200e3, 1, both)]
    items = bp._long_run_items(now, {})
    assert [it.cost for it in items] == [300e3, 300e3, 200e3, 200e3]
    assert [it.steady for it in items] == [300e3, 300e3, 200e3, 200e3]
    assert plan_placement(items, both).moves == {1: (0, 1), 3: (1, 0)}
    assert plan_placement(items, both).after == {0: 500e3, 1: 500e3}


def test_a_cpu_within_the_jiffies_rounding_keeps_the_estimates_when_others_replan():
    # noise (two jiffies) 20 ms. cpu0: IRQ 1, 100 interrupts at 50 us = 5 ms predicted,
    # /proc/stat shows 0 jiffies: within the rounding. cpu1: IRQ 2, 100 at 500 us = 50 ms
    # predicted, 100 ms measured: off by 50 ms, the pass plans from the measurement. IRQ 2's
    # run of windows (this one) is more than a jiffy off: corrected to within one, 90 / 50
    # -> 900 us; cpu1's factor at the corrected estimate 100 / 90. cpu0 has no factor: its
    # IRQ keeps its 5 ms (a factor 0 / 5 would make it cost nothing and drop out of the plan).
    # cpu2: IRQ 3, 100 at 300 us = 30 ms predicted, 40 measured: within the noise of the
    # prediction but not of zero, its measured time stands (40 / 30); its run is 10 ms off,
    # not more than a jiffy: no correction.
    bp = BalancedPlacement(None, logging.getLogger("test"))  # type: ignore[arg-type]
    bp._ns = {1: 50e3, 2: 500e3, 3: 300e3}
    factor: dict[int, float] = {}
    off = bp._measure({0: {1: 100}, 1: {2: 100}, 2: {3: 100}}, {0: 0.0, 1: 100e6, 2: 40e6},
                      set(), factor, 20e6)
    assert off
    assert bp._ns == pytest.approx({1: 50e3, 2: 900e3, 3: 300e3})
    assert factor == pytest.approx({1: 100 / 90, 2: 40 / 30})


def test_under_changing_load_a_queue_leans_on_its_device_as_far_as_chance_explains():
    # 1 us an interrupt. Device d: IRQ 1 fired 0, 400, 0, 400 (mean 200, variance 40000),
    # IRQ 2 400, 400, 0, 400 (mean 300, variance 30000). Their means differ by chance as far
    # as anyone can tell: each mean is off by variance / 4 windows (10000, 7500; 8750 on
    # average), more than the means' own spread ((50^2 + 50^2) / 1 = 5000): both take the
    # device's figures, mean 250, variance 35000: 250 + 187.08 us.
    # Device f: IRQ 5 100, 300, 100, 300 (mean 200, variance 10000), IRQ 6 500, 700, 500, 700
    # (mean 600): chance explains 2500 of their means' spread 80000; each leans 2500 /
    # (2500 + 77500) = 1/32 of the way: 206.25 and 593.75, variance 10000: + 100 us.
    # IRQ 9 (no device): its own 200 + 100.
    def windows(*counts):
        entry = None
        for n in counts:
            entry = _long_run_add(entry, n)
        return entry

    bp = BalancedPlacement(None, logging.getLogger("test"))  # type: ignore[arg-type]
    bp._long_run = {1: windows(0, 400, 0, 400), 2: windows(400, 400, 0, 400),
                    5: windows(100, 300, 100, 300), 6: windows(500, 700, 500, 700),
                    9: windows(100, 300, 100, 300)}
    bp._ns = dict.fromkeys(bp._long_run, 1000.0)
    now = [Item(irq, 1.0, 0, CPU0 | CPU1) for irq in (1, 2, 5, 6, 9)]
    device = {1: "d", 2: "d", 5: "f", 6: "f", 9: None}
    costs = [it.cost for it in bp._long_run_items(now, device)]
    assert costs == pytest.approx([(250 + 35000 ** 0.5) * 1e3, (250 + 35000 ** 0.5) * 1e3,
                                   306.25e3, 693.75e3, 300e3])


def test_a_new_irq_on_a_cpu_its_neighbours_explain_is_not_seeded_at_0():
    # cpu0: IRQ 1 known at 100 us, 100 interrupts = 10 ms, and IRQ 2 firing for the first
    # time, 50 interrupts; /proc/stat shows 10 ms (one jiffy): nothing is left for IRQ 2.
    # Seeded at 0 it would stay 0 (corrections multiply); it gets the CPU's time per
    # interrupt, 10 ms / 150 = 66.7 us.
    bp = BalancedPlacement(None, logging.getLogger("test"))  # type: ignore[arg-type]
    bp._ns = {1: 100e3}
    bp._measure({0: {1: 100, 2: 50}}, {0: 10e6}, {2}, {}, 20e6)
    assert bp._ns == pytest.approx({1: 100e3, 2: 10e6 / 150})


def test_an_irq_counted_elsewhere_than_it_fires_is_planned_where_it_fires():
    # Since boot, IRQ 1 (6) was counted on cpu0 but fires on cpu1 now; IRQ 2 (4) on cpu0,
    # IRQ 3 (2) on cpu1. Now (as counted): cpu0 6 + 4 = 10, cpu1 2. From now on: cpu0 4,
    # cpu1 6 + 2 = 8. Off cpu1: 3 -> cpu0 gives max(6, 6) = 6 (1 -> cpu0: max(10, 2)); then
    # nothing lowers 6 by 5 %. (Planned as counted, 2 would move to cpu1 instead.)
    items = [Item(1, 6, 1, CPU0 | CPU1, counted=((0, 6.0),)), Item(2, 4, 0, CPU0 | CPU1),
             Item(3, 2, 1, CPU0 | CPU1)]
    plan = plan_placement(items, CPU0 | CPU1)
    assert plan.before == {0: 10, 1: 2}
    assert plan.moves == {3: (1, 0)}
    assert plan.after == {0: 6, 1: 6}


def test_floor():
    # fixed 7 on cpu0; movable 5 and 4 of node 1 (cpus 2-3), 3 of no node; 4 usable CPUs.
    # costliest movable 5; fixed 7; total 19 / 4 = 4.75; node 1: (5 + 4) / 2 = 4.5 -> 7.
    items = [Item(1, 7, 0, 0), Item(2, 5, 2, CPU2 | CPU3, 1), Item(3, 4, 3, CPU2 | CPU3, 1),
             Item(4, 3, 1, CPU0 | CPU1 | CPU2 | CPU3)]
    assert floor_of(items, CPU0 | CPU1 | CPU2 | CPU3, {}) == 7
    # with the fixed IRQ at 1 instead: max(5, 1, 13 / 4, 9 / 2) = 5
    items[0] = Item(1, 1, 0, 0)
    assert floor_of(items, CPU0 | CPU1 | CPU2 | CPU3, {}) == 5


# --------------------------------------------------------------------------
# through the balancer, on a fake machine
# --------------------------------------------------------------------------

TWO_CPU_NIC = {
    "name": "two_cpu_nic",
    "topology": {"packages": 1, "cores_per_package": 2},
    "pci_devices": [{
        "address": "0000:03:00.0", "class": "0x020000", "driver": "igb", "numa_node": -1,
        # no counts yet; the default effective CPU goes round: 40 cpu0, 41 cpu1, 42 cpu0, 43 cpu1.
        # Rates are multiples of 5000: 5000 x 2000 ns (irq) = one 10 ms jiffy exactly.
        "irqs": [{"irq": 40, "rate": 20000}, {"irq": 41, "rate": 15000},
                 {"irq": 42, "rate": 10000}, {"irq": 43, "rate": 5000}],
    }],
}


def _run(fake_machine, counter_simulator, machine, settings, passes):
    root, m = fake_machine(machine)
    sim = counter_simulator(root, m)
    b = Balancer(root, settings, log=logging.getLogger("test"))
    b.start()
    for _ in range(passes):
        sim.advance(1)
        b.run_pass()
    sim.apply_writes()
    return b, sim


def test_first_pass_places_by_load(fake_machine, counter_simulator):
    # network IRQs cost 2000 + 8000 ns each (mkfake): cpu0 = 40 + 42 = 30000 interrupts =
    # 300 ms (6 + 24 jiffies), cpu1 = 41 + 43 = 20000 = 200 ms; split by counts: 40 = 200 ms,
    # 42 = 100, 41 = 150, 43 = 50. A single move off cpu0 never ends below 300 (42 -> cpu1:
    # 200 / 300). Swaps: 40 <-> 41 (delta 50) gives 250 / 250, 40 <-> 43 (150) 150 / 350,
    # 42 <-> 43 (50) 250 / 250 too but is not lower: 40 <-> 41 is made.
    settings = BalancerSettings(placement="balanced")
    b, sim = _run(fake_machine, counter_simulator, TWO_CPU_NIC, settings, 1)
    assert sim.state.eff == {40: 1, 41: 0, 42: 0, 43: 1}
    plan = b.placement_plan
    assert plan is not None and not plan.estimated
    assert plan.before == pytest.approx({0: 300e6, 1: 200e6})
    assert plan.after == pytest.approx({0: 250e6, 1: 250e6})
    # every heavy IRQ is pinned to one CPU
    for irq, cpu in {40: 1, 41: 0, 42: 0, 43: 1}.items():
        text = b.root.read_first_line(b.root.irq_file(irq, "smp_affinity"))
        assert text is not None and parse_mask(text.strip()) == 1 << cpu, irq


def test_the_first_placement_takes_a_gain_under_the_hysteresis(fake_machine, counter_simulator):
    # 10 us an interrupt (rates multiples of 5000: whole jiffies). cpu0: 40 150000 + 42 10000
    # = 1600 ms, cpu1: 41 135000 + 43 10000 = 1450 ms. 42 -> cpu1 gives 1500 / 1550: 50 ms,
    # 3 % of 1600, under the 5 % asked between placements; swaps do not lower cpu0 (40 <-> 41
    # 1450 / 1600, 42 <-> 43 nothing). The first placement writes every IRQ anyway: it moves 42.
    machine = json.loads(json.dumps(TWO_CPU_NIC))
    machine["pci_devices"][0]["irqs"] = [
        {"irq": 40, "rate": 150000}, {"irq": 41, "rate": 135000},
        {"irq": 42, "rate": 10000}, {"irq": 43, "rate": 10000}]
    b, sim = _run(fake_machine, counter_simulator, machine, BalancerSettings(placement="balanced"),
                  1)
    assert b.placement_plan.moves == {42: (0, 1)}
    assert b.placement_plan.after == pytest.approx({0: 1500e6, 1: 1550e6})
    assert sim.state.eff == {40: 0, 41: 1, 42: 1, 43: 1}


def test_a_move_whose_mask_the_kernel_did_not_keep_is_given_up_at_once(fake_machine):
    # the last plan moved 40 and 41 to cpu1; both fired on cpu0 again. 40's smp_affinity
    # reads cpu0 (the kernel refused the mask after all, or a driver put its own back): left
    # where it fires now. 41's reads cpu1 (the kernel may still move it: an x86 vector
    # moves when the IRQ next fires): one miss, a second is needed.
    root, _ = fake_machine(TWO_CPU_NIC)
    for irq, mask in ((40, "1"), (41, "2")):
        with open(root.irq_file(irq, "smp_affinity"), "w") as f:
            f.write(mask + "\n")
    bp = BalancedPlacement(root, logging.getLogger("test"))
    bp._requested = {40: 1, 41: 1}
    bp._check_requests({40: Located(100, ((0, 100),)), 41: Located(100, ((0, 100),))})
    assert bp._stuck == {40}
    assert bp._misses == {40: 2, 41: 1}


def test_a_rebuild_keeps_the_estimates_and_drops_the_counters_it_made_wrong():
    # CPU hotplug rebuilds the topology: /proc/interrupts' columns and /proc/stat's lines
    # change meaning, so the totals, columns, jiffies and runs of windows are dropped (the
    # first pass after is a window since boot again); what an interrupt costs, each IRQ's
    # rates and the fact that the daemon already placed (the hysteresis applies) are kept.
    bp = BalancedPlacement(None, logging.getLogger("test"))  # type: ignore[arg-type]
    bp._topo = SimpleNamespace()  # type: ignore[assignment]
    bp._ns, bp._rate, bp._long_run = {40: 1500.0}, {40: 900.0}, {40: (900.0, 3, 4.0)}
    bp._counts, bp._jiffies, bp._columns = {40: 5000}, {0: 12}, {40: {0: 5000}}
    bp._history = {0: object()}  # type: ignore[dict-item]
    bp._placed = bp._ever_placed = True
    bp._stuck = {41}
    assert bp.plan_pass(SimpleNamespace(topo=SimpleNamespace()), None) is None
    assert (bp._counts, bp._jiffies, bp._columns, bp._history, bp._stuck) == ({}, {}, {}, {},
                                                                              set())
    assert not bp._placed and bp._ever_placed
    assert (bp._ns, bp._rate, bp._long_run) == ({40: 1500.0}, {40: 900.0}, {40: (900.0, 3, 4.0)})


def test_only_a_first_placement_is_free_of_the_jiffys_worth_of_gain(
        fake_machine, counter_simulator, monkeypatch):
    # USER_HZ 100: noise (irq and softirq, a jiffy each) 20 ms, a plan after the first must
    # gain half of it, 10 ms; the first placement (here the daemon's first pass) none.
    from pyirqbalance.engine import balanced

    asked: list[float] = []
    plan = balanced.plan_placement

    def spy(*args, **kwargs):
        asked.append(kwargs["min_gain_ns"])
        return plan(*args, **kwargs)

    monkeypatch.setattr(balanced, "plan_placement", spy)
    _run(fake_machine, counter_simulator, TWO_CPU_NIC, BalancerSettings(placement="balanced"), 3)
    assert asked == [0.0, 10e6, 10e6]


def test_stable_load_no_moves_after_convergence(fake_machine, counter_simulator):
    settings = BalancerSettings(placement="balanced")
    root, m = fake_machine(TWO_CPU_NIC)
    sim = counter_simulator(root, m)
    b = Balancer(root, settings)
    b.start()
    sim.advance(1)
    b.run_pass()
    for _ in range(4):
        sim.apply_writes()
        sim.state.advance(1)
        sim.render()
        b.run_pass()
        assert not b.placement_plan.moves
    assert sim.apply_writes() == ({}, {})


def test_no_irq_time_accounting_estimates_and_says_so(fake_machine, counter_simulator, caplog):
    # /proc/stat's irq columns stay 0: costs are counts (every interrupt equally costly),
    # all four IRQs are network ones, so the same costs as measured above and the same
    # swap; the warning is logged once.
    settings = BalancerSettings(placement="balanced")
    root, m = fake_machine(TWO_CPU_NIC)
    sim = counter_simulator(root, m)
    b = Balancer(root, settings)
    b.start()
    with caplog.at_level(logging.WARNING, logger="pyirqbalance"):
        for _ in range(3):
            sim.apply_writes()
            sim.state.advance(1)
            for cpu in sim.state.irq_ns:
                sim.state.irq_ns[cpu] = sim.state.softirq_ns[cpu] = 0
            sim.render()
            b.run_pass()
    assert b.placement_plan.estimated
    assert [r.message for r in caplog.records].count(
        "interrupt time in /proc/stat is flat while interrupts are counted (no IRQ time "
        "accounting): balancing interrupt counts, every interrupt taken as equally costly") == 1
    sim.apply_writes()
    assert sim.state.eff == {40: 1, 41: 0, 42: 0, 43: 1}


def test_default_placement_is_untouched(fake_machine, counter_simulator):
    # The default placement is irqbalance's whatever the balanced placement's settings: the
    # same CPUs as with those settings at other values, and not the balanced placement's.
    def placed(settings: BalancerSettings) -> tuple[dict[int, int], Balancer]:
        b, sim = _run(fake_machine, counter_simulator, TWO_CPU_NIC, settings, 2)
        return dict(sim.state.eff), b

    default, b = placed(BalancerSettings())
    assert b.placement_plan is None and b.balanced is None
    knobs, _ = placed(BalancerSettings(placement="irqbalance", placement_min_gain=0.0,
                                       placement_max_moves=1))
    balanced, _ = placed(BalancerSettings(placement="balanced"))
    assert default == knobs
    assert balanced == {40: 1, 41: 0, 42: 0, 43: 1} != default


# --------------------------------------------------------------------------
# the option
# --------------------------------------------------------------------------


def test_option_and_yaml_keys():
    from pyirqbalance.service.cli import UsageError, resolve
    from pyirqbalance.service.config import Config, ConfigError, parse_config

    assert resolve([], {}, Config()).settings.placement == "irqbalance"
    assert resolve(["--placement=balanced"], {}, Config()).settings.placement == "balanced"
    cfg = parse_config({"balancing": {"placement": "balanced", "placement_min_gain": 0.1,
                                      "placement_max_moves": 4}})
    s = resolve([], {}, cfg).settings
    assert (s.placement, s.placement_min_gain, s.placement_max_moves) == ("balanced", 0.1, 4)
    # the command line wins over the file
    assert resolve(["--placement=irqbalance"], {}, cfg).settings.placement == "irqbalance"
    with pytest.raises(UsageError, match="invalid --placement value 'fast': use irqbalance "
                                         "or balanced"):
        resolve(["--placement=fast"], {}, Config())
    with pytest.raises(ConfigError, match=r"balancing\.placement: 'fast' is not allowed "
                                          r"\(irqbalance or balanced\)"):
        parse_config({"balancing": {"placement": "fast"}})
    with pytest.raises(ConfigError, match=r"balancing\.placement_min_gain: 1\.5 is out of range"):
        parse_config({"balancing": {"placement_min_gain": 1.5}})
    with pytest.raises(ConfigError, match=r"balancing\.placement_max_moves: 0 is out of range"):
        parse_config({"balancing": {"placement_max_moves": 0}})


def test_where_an_irq_fires_is_read_from_its_counters_not_from_the_write(
        fake_machine, counter_simulator):
    # As test_first_pass_places_by_load, but IRQ 40 is kernel-managed: the simulator refuses
    # the write and puts the mask back, with no error to the writer (as the oracle harness
    # does). Pass 1 swaps 40 (cpu0) and 41 (cpu1); only 41 moves. Window 2: 40 fires its
    # 20000 on cpu0 (not cpu1 where it was written), 41 its 15000 on cpu0, 42 10000 on cpu0,
    # 43 5000 on cpu1. At 10 us an interrupt: cpu0 450 ms, cpu1 50 ms -- what the plan must
    # start from.
    machine = json.loads(json.dumps(TWO_CPU_NIC))
    machine["pci_devices"][0]["irqs"][0]["managed"] = True
    settings = BalancerSettings(placement="balanced")
    b, _ = _run(fake_machine, counter_simulator, machine, settings, 2)
    plan = b.placement_plan
    assert {irq: (loc.cpus, loc.n) for irq, loc in plan.located.items()} == {
        40: (((0, 20000),), 20000), 41: (((0, 15000),), 15000), 42: (((0, 10000),), 10000),
        43: (((1, 5000),), 5000)}
    assert plan.before == pytest.approx({0: 450e6, 1: 50e6})
    # the plan moves time off cpu0 by moving what the kernel lets it move
    assert 40 not in plan.moves or plan.moves[40][0] == 0
    assert plan.after[0] < 450e6


def test_a_crowded_cpu_is_emptied_in_one_plan():
    # 48 equal IRQs of 10 on cpu0 of 16 CPUs (no single move gains 5 % of 480, all together
    # do): with a budget of 48 the plan ends at 3 a CPU, 30 = the floor (480 / 16).
    cpus = (1 << 16) - 1
    items = [Item(n, 10, 0, cpus) for n in range(48)]
    plan = plan_placement(items, cpus, max_moves=48)
    assert max(plan.after.values()) == 30 == plan.floor
    assert len(plan.moves) == 45


def test_an_irq_spread_over_cpus_it_may_use_stays_spread():
    # the kernel spreads IRQ 1 (12) evenly over cpu0 and cpu1; IRQ 2 (8) fires on cpu0.
    # before: cpu0 6 + 8 = 14, cpu1 6, cpu2 0. IRQ 1 is left spread; IRQ 2 goes to cpu2.
    cpus = CPU0 | CPU1 | CPU2
    items = [Item(1, 12, 0, cpus, spread=((0, 6.0), (1, 6.0))), Item(2, 8, 0, cpus)]
    plan = plan_placement(items, cpus)
    assert plan.before == {0: 14, 1: 6, 2: 0}
    assert plan.moves == {2: (0, 2)}
    assert plan.after == {0: 6, 1: 6, 2: 8}


def test_a_plan_from_the_measurement_shares_each_cpus_measured_time():
    # IRQs 1 and 2 fire 10 interrupts each on cpu0, estimated at 1000 ns an interrupt
    # (predicted 20000 ns); /proc/stat measures 60000 ns there, off by more than the noise
    # (2000 ns): the pass plans from the measurement. The estimates are corrected to within
    # a jiffy (noise / 2 = 1000 ns) of it: 59000 / 20000 = 2.95 each, 2950 ns an interrupt.
    # Planned from the measurement, cpu0's 60000 ns is shared over the two as the corrected
    # estimates say: 30000 each (the correction and the measurement counted once: a factor
    # of 3 over the old estimates on top of the corrected ones would give 88500 each).
    from types import SimpleNamespace

    from pyirqbalance.engine.balanced import BalancedPlacement, Located
    from pyirqbalance.engine.model import BalanceLevel, HintPolicy
    from pyirqbalance.engine.topology import NO_NODE

    bp = BalancedPlacement(None, logging.getLogger("test"))
    bp._ns = {1: 1000.0, 2: 1000.0}
    bp._rate = {1: 10.0, 2: 10.0}
    node = SimpleNamespace(number=NO_NODE, mask=CPU0 | CPU1)
    firing = [SimpleNamespace(irq=irq, node=node, level=BalanceLevel.CORE, hint=0,
                              hintpolicy=HintPolicy.IGNORE, unmanaged_reason=None)
              for irq in (1, 2)]
    located = {1: Located(10, ((0, 10),)), 2: Located(10, ((0, 10),))}
    topo = SimpleNamespace(numa=False)
    items, _background, replanned, _changed = bp._items(
        firing, topo, CPU0 | CPU1, located, {0: 60000.0, 1: 0.0}, False, False, 2000.0)
    assert replanned
    assert bp._ns == pytest.approx({1: 2950.0, 2: 2950.0})
    assert {it.irq: it.cost for it in items} == pytest.approx({1: 30000.0, 2: 30000.0})


def test_the_seed_shares_each_cpus_time_since_boot_over_what_its_columns_counted(
        fake_machine, counter_simulator):
    # Network interrupts cost 2000 + 8000 ns (mkfake). Since boot: IRQ 40 counted 95000 on
    # cpu0 and fires on cpu0; IRQ 41 counted 95000 on cpu0 too but fires on cpu1 now. One
    # window (5000 each) after the daemon's start: columns 40 {0: 100000}, 41 {0: 95000,
    # 1: 5000}; cpu0 spent 195000 x 10 us = 1.95 s since boot, cpu1 50 ms. Only cpu1's
    # column of 41 changed since the start, so 41 is located on cpu1 with its 100000 -- but
    # cpu1's time covers only the 5000 of its column. Shared over what each CPU's columns
    # counted: cpu0 1.95 s / 195000 = 10 us, cpu1 50 ms / 5000 = 10 us, both IRQs 10 us.
    # (Shared over the IRQs located on each CPU: 40 1.95 s / 100000 = 19.5 us, 41 50 ms /
    # 100000 = 0.5 us, and two such IRQs later sharing a CPU would keep that 39:1 split, as
    # corrections multiply both alike.)
    machine = json.loads(json.dumps(TWO_CPU_NIC))
    machine["pci_devices"][0]["irqs"] = [
        {"irq": 40, "rate": 5000, "counts": {"0": 95000}, "effective_affinity": "0"},
        {"irq": 41, "rate": 5000, "counts": {"0": 95000}, "effective_affinity": "1"}]
    b, _ = _run(fake_machine, counter_simulator, machine, BalancerSettings(placement="balanced"),
                1)
    assert b.balanced is not None
    assert b.balanced._ns == pytest.approx({40: 10e3, 41: 10e3})
    # now: each CPU's time since boot as /proc/stat counted it; after: each IRQ where it
    # fires now (nothing moves: the two CPUs are even)
    assert b.placement_plan.before == pytest.approx({0: 1.95e9, 1: 0.05e9})
    assert b.placement_plan.after == pytest.approx({0: 1e9, 1: 1e9})
    assert not b.placement_plan.moves
