"""`--oneshot` on a real kernel writes exactly what irqbalance 1.9.2's `--oneshot` writes.

In each guest shape, from the same masks, ``/usr/sbin/irqbalance --oneshot --foreground``
runs, its result is read from every /proc/irq/*/smp_affinity, the masks it found are
written back, and ``pyirqbalance --oneshot`` runs (both with ``--interval=1``).
"""

from __future__ import annotations

import pytest

from tests.realkernel.conftest import BOOTS

pytestmark = pytest.mark.realkernel


@pytest.mark.parametrize("boot", [n for n, (_, steps) in BOOTS.items() if "oneshot" in steps])
def test_oneshot_writes_what_irqbalance_writes(guests, boot):
    obs = guests(boot).step("oneshot")
    assert obs["irqbalance"]["rc"] == 0, obs["irqbalance"]
    assert obs["pyirqbalance"]["rc"] == 0, obs["pyirqbalance"]
    assert "Traceback" not in obs["pyirqbalance"]["stderr"]
    theirs, ours = obs["after_irqbalance"], obs["after_pyirqbalance"]
    moved = {irq for irq, mask in theirs.items() if obs["before"].get(irq) != mask}
    assert moved, "irqbalance changed no IRQ: nothing was compared"
    names = {irq: row["desc"] for irq, row in obs["interrupts"].items()}
    differ = {f"{irq} {names.get(irq, '?')}": (theirs.get(irq), ours.get(irq))
              for irq in sorted(set(theirs) | set(ours), key=int)
              if theirs.get(irq) != ours.get(irq)}
    assert not differ, f"(irqbalance, pyirqbalance) masks differ: {differ}"
