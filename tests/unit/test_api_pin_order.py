"""An API pin (``set_affinity``) is written and pinned with no balancing pass between the two.

A pass that ran after the client's write but before the pin would write the balancer's own
placement over the client's mask, and the IRQ would then stay pinned where the balancer put
it. Here the override registry runs a whole pass at the moment it records the pin (the
latest a pass could slip in); a_desktop4's IRQ 128 (a NIC queue) is one the first pass
places on a single CPU, so an unpinned IRQ would be moved off the client's CPUs 0-3.
"""

from __future__ import annotations

from pathlib import Path

from pyirqbalance.api.context import ApiContext, LiveState, set_affinity
from pyirqbalance.api.overrides import OverrideRegistry
from pyirqbalance.engine.balancer import Balancer
from pyirqbalance.engine.model import BalancerSettings

NIC_QUEUE = 128


class PassOnRecord(OverrideRegistry):
    """Records a pin after a whole balancing pass has run."""

    def __init__(self, balancer: Balancer) -> None:
        super().__init__(None)
        self.balancer = balancer
        self.passes = 0

    def set(self, irq: int, mask: int) -> None:
        self.balancer.run_pass()
        self.passes += 1
        super().set(irq, mask)


def test_no_pass_lands_between_the_write_and_the_pin(fake_machine):
    root, _ = fake_machine("a_desktop4")
    balancer = Balancer(root, BalancerSettings())
    balancer.start()
    registry = PassOnRecord(balancer)
    ctx = ApiContext(root=root, live=LiveState(root), balancer=balancer, overrides=registry)
    path = Path(root.proc("irq", str(NIC_QUEUE), "smp_affinity"))
    set_affinity(ctx, NIC_QUEUE, 0xF, "cpu")
    assert registry.passes == 1
    assert int(path.read_text().strip().replace(",", ""), 16) == 0xF   # the client's mask
    assert balancer.is_banned(NIC_QUEUE)
    balancer.run_pass()
    assert int(path.read_text().strip().replace(",", ""), 16) == 0xF
