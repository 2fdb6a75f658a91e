"""irqRestServer's /irqsummary window: per-CPU lists, summed per boot across a wrap and a
reboot, and a message that says so (in-process API on the counter simulator)."""

from __future__ import annotations

import time
from datetime import datetime

from tests.integration.test_api import WRAP_IRQ, WRAP_RATE, Rig, rates


def test_seed_window_across_a_wrap_and_a_reboot(tmp_path, fake_machine, counter_simulator):
    rig = Rig(tmp_path, fake_machine, counter_simulator)
    try:
        rig.run_pass(advance=False)                   # baseline of boot-1
        start = time.time()
        for _ in range(3):                            # IRQ 130 wraps its 32-bit counter
            rig.run_pass()
        rig.reboot("boot-2")
        rig.sim.state.advance(1.0)
        rig.render()
        rig.run_pass(advance=False)                   # baseline of boot-2: one pass since boot
        for _ in range(2):
            rig.run_pass()
        r = rig.anon.get("/irqsummary", start=str(start), stop=str(time.time() + 1))
        assert r.status == 200, r.data
        assert set(r.data) == {"message", "irq_data", "cpus", "notes"}
        # irqRestServer's message (it refused such a window); what we did, in the notes.
        assert r.data["message"] == "start is prior to last reboot: " + datetime.fromtimestamp(
            rig.btime).strftime("%m%d%H%M")
        assert "the window spans 1 reboot(s): counts are summed per boot" in r.data["notes"]
        data = r.data["irq_data"]
        assert r.data["cpus"] == [0, 1, 2, 3]
        # 3 passes in each boot, each firing every IRQ's rate on one CPU.
        expected = rates(rig.machine)
        assert {int(k): sum(v) for k, v in data.items() if k != "total" and sum(v)} == {
            irq: 6 * rate for irq, rate in expected.items()}
        # Every IRQ of the machine is listed, the ones that did not fire with zeros.
        assert {int(k) for k in data if k != "total"} == set(rig.machine.irqs)
        assert sum(data[str(WRAP_IRQ)]) == 6 * WRAP_RATE
        assert all(len(v) == 4 for v in data.values())
        assert data["total"] == [sum(v[k] for i, v in data.items() if i != "total")
                                 for k in range(4)]
        # Before the store's first sample: summed from it, and said.
        early = rig.anon.get("/irqsummary", start=str(start - 3600)).data
        assert any(n.startswith("the window starts before the first recorded sample")
                   for n in early["notes"])
    finally:
        rig.close()
