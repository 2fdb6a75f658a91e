"""The balanced placement's state kept between passes gives what recomputing gives.

A pass reuses what the last one built for the IRQs that did not change (where an IRQ
fired and how often): these tests run the same machine twice under the same random
load, once as the daemon does and once with the kept records dropped before every
pass (everything built from scratch), and compare every pass's plan.
"""

from __future__ import annotations

import random

from pyirqbalance.engine.balanced import _Corrections
from pyirqbalance.engine.balancer import Balancer
from pyirqbalance.engine.model import BalancerSettings
from tests.oracle import gen_machines


def _machine() -> dict:
    # 2 nodes of 8 CPUs, 96 IRQs: NICs with hints, managed NVMe queues (the simulator
    # puts their masks back), accelerators
    return gen_machines.server("incremental", 2, 4, 2, 2, 96, seed=7)


def _plans(fake_machine, counter_simulator, seed: int, from_scratch: bool, passes: int = 8):
    root, m = fake_machine(_machine())
    sim = counter_simulator(root, m)
    b = Balancer(root, BalancerSettings(placement="balanced"))
    b.start()
    rng = random.Random(seed)
    firing = sorted(n for n, q in m.irqs.items() if q.get("rate"))
    out = []
    reused = 0
    for _ in range(passes):
        # a random share of the IRQs change rate (some to their old rate), a few stop
        for n in rng.sample(firing, len(firing) // 4):
            m.irqs[n]["rate"] = rng.choice([0, m.irqs[n]["rate"], rng.randrange(1, 9000)])
        sim.advance(1)
        kept = b.balanced._located if b.balanced is not None else {}
        if from_scratch and b.balanced is not None:
            b.balanced._located = {}
        b.run_pass()
        plan = b.placement_plan
        assert plan is not None
        reused += sum(1 for irq, loc in plan.located.items() if kept.get(irq) is loc)
        out.append((dict(plan.located), plan.moves, plan.before, plan.after, plan.floor,
                    plan.replanned))
    return out, reused


def test_kept_located_records_equal_recomputed_ones(fake_machine, counter_simulator):
    for seed in range(2):
        kept, reused = _plans(fake_machine, counter_simulator, seed, from_scratch=False)
        scratch, none = _plans(fake_machine, counter_simulator, seed, from_scratch=True)
        assert none == 0
        assert reused > 0  # the kept records were used
        for i, (a, b) in enumerate(zip(kept, scratch, strict=True)):
            assert a == b, (seed, i)


def test_corrections_equal_the_weighted_mean_of_each_irqs_factors():
    # the estimates' correction without a list per IRQ: every estimate times the mean of
    # its CPUs' factors weighted by its interrupts there, as recomputed from all pairs
    # (IRQs dropped -- re-seeded -- take only what is added after)
    rng = random.Random(23)
    for _ in range(200):
        c = _Corrections()
        pairs: dict[int, list[tuple[float, int]]] = {}
        for _cpu in range(rng.randrange(1, 6)):
            irqs = {irq: rng.randrange(1, 10**6) for irq in rng.sample(range(6), 3)}
            factor = rng.uniform(0.3, 3.0)
            c.add(irqs, factor)
            for irq, k in irqs.items():
                pairs.setdefault(irq, []).append((factor, k))
            if rng.random() < 0.5:
                gone = rng.randrange(6)
                c.drop(gone)
                pairs.pop(gone, None)
        skip = set(rng.sample(range(6), 1))
        ns = {irq: rng.uniform(1e3, 1e4) for irq in range(6)}
        want = dict(ns)
        for irq, ps in pairs.items():
            if irq not in skip:
                want[irq] *= sum(f * k for f, k in ps) / sum(k for _, k in ps)
        c.apply(ns, skip)
        assert ns == want
        assert bool(c.first) == bool(pairs)
