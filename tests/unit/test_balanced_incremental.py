"""The balanced placement's state kept between passes gives what recomputing gives.

A pass reuses what the last one built for the IRQs that did not change (where an IRQ
fired and how often): these tests run the same machine twice under the same random
load, once as the daemon does and once with the kept records dropped before every
pass (everything built from scratch), and compare every pass's plan.
"""

from __future__ import annotations

import random

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
