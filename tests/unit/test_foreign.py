"""Foreign writes: smp_affinity changes pyirqbalance did not make (engine/foreign.py).

The balancer runs passes on a fake machine (a_desktop4, counters unchanged
between passes, so nothing migrates after the first pass); the test writes an
IRQ's smp_affinity file between passes as another program would. Kernel
behaviour that is *not* a foreign write is played by SysRoot subclasses: a
kernel that keeps another mask than the one written (it replaces a mask
without online CPUs by the default affinity, kernel/irq/proc.c
``write_irq_affinity``), and one that refuses the write (EIO, managed IRQ).
"""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path

from pyirqbalance.api.metrics import Metrics
from pyirqbalance.engine.balancer import Balancer
from pyirqbalance.engine.foreign import FIRST_WARNINGS, ForeignSettings, ForeignWrites
from pyirqbalance.engine.model import BalancerSettings
from pyirqbalance.kernel import procirq
from pyirqbalance.kernel.cpumask import format_mask
from tests.oracle import mkfake
from tests.oracle.kernfs import KernfsSysRoot

MACHINE = Path(__file__).resolve().parents[1] / "fixtures" / "irqbalance-1.9.2" / "a_desktop4.json"
# a_desktop4 (4 CPUs): NIC queues 127-131 go to single CPUs on the first pass
NIC_QUEUE = 128


class KernelRoot(KernfsSysRoot):
    """Writes as the kernel takes them: refused for ``refuse``, replaced for ``keep``."""

    __slots__ = ("keep", "refuse")

    def __init__(self, base, *, refuse: dict[int, int] | None = None,
                 keep: dict[int, int] | None = None):
        super().__init__(base)
        self.refuse = refuse or {}
        self.keep = keep or {}

    def write(self, path: str, data: str) -> int:
        irq = int(Path(path).parent.name)
        if irq in self.refuse:
            return self.refuse[irq]
        if irq in self.keep:
            data = format_mask(self.keep[irq])
        return super().write(path, data)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _balancer(tmp_path, *, settings=None, clock=None, **kernel):
    machine = mkfake.Machine(json.loads(MACHINE.read_text()))
    mkfake.build_tree(machine, str(tmp_path / "t"), force=True)
    root = KernelRoot(tmp_path / "t", **kernel)
    b = Balancer(root, BalancerSettings())
    b.foreign = ForeignWrites(settings, log=logging.getLogger("test.foreign"),
                              clock=clock or Clock())
    b.start()
    b.run_pass()  # places and writes every IRQ: the expectations
    return b, root


def _write(root, irq: int, mask: int) -> None:
    """Another program writes the file (the fake tree keeps what it is given)."""
    with open(root.irq_file(irq, "smp_affinity"), "w") as f:
        f.write(format_mask(mask) + "\n")


def _other_mask(root, irq: int) -> int:
    current = procirq.read_smp_affinity(root, irq)
    assert current is not None
    return 0x1 if current != 0x1 else 0x2


def test_a_change_between_passes_is_counted_and_the_first_logged(tmp_path, caplog):
    b, root = _balancer(tmp_path)
    before = procirq.read_smp_affinity(root, NIC_QUEUE)
    foreign_mask = _other_mask(root, NIC_QUEUE)
    _write(root, NIC_QUEUE, foreign_mask)
    with caplog.at_level(logging.WARNING, logger="test.foreign"):
        b.run_pass()
    (seen,) = b.foreign.view
    assert (seen.irq, seen.changes) == (NIC_QUEUE, 1)
    assert (seen.last.expected, seen.last.found) == (before, foreign_mask)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"IRQ {NIC_QUEUE} (" in warnings[0]
    assert f"expected {format_mask(before)}, found {format_mask(foreign_mask)}" in warnings[0]

    # nothing changes: nothing more counted; a second change counts, without a second warning
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="test.foreign"):
        b.run_pass()
        assert b.foreign.total == 1
        _write(root, NIC_QUEUE, foreign_mask ^ 0x3)
        b.run_pass()
    assert b.foreign.total == 2
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_our_own_writes_are_not_foreign(tmp_path):
    b, _root = _balancer(tmp_path)
    for _ in range(3):
        b.run_pass()
    assert b.foreign.total == 0
    assert NIC_QUEUE in b.foreign.expected


def test_the_mask_the_kernel_kept_is_expected_not_the_one_written(tmp_path):
    # the kernel keeps 0xf whatever is written to the NIC queue (a mask it normalised)
    b, root = _balancer(tmp_path, keep={NIC_QUEUE: 0xF})
    assert procirq.read_smp_affinity(root, NIC_QUEUE) == 0xF
    assert b.foreign.expected[NIC_QUEUE] == 0xF
    for _ in range(3):
        b.run_pass()
    assert b.foreign.total == 0


def test_a_refused_write_is_not_foreign(tmp_path):
    b, root = _balancer(tmp_path, refuse={NIC_QUEUE: errno.EIO})
    found = procirq.read_smp_affinity(root, NIC_QUEUE)
    assert b.foreign.expected.get(NIC_QUEUE) == found  # what the kernel kept: unchanged
    b.run_pass()
    # a kernel-managed IRQ's mask is the kernel's business: never compared
    _write(root, NIC_QUEUE, _other_mask(root, NIC_QUEUE))
    b.run_pass()
    assert b.foreign.total == 0


def test_an_irq_fought_over_is_left_alone(tmp_path, caplog):
    b, root = _balancer(tmp_path, settings=ForeignSettings(max_changes=3, window_s=600))
    with caplog.at_level(logging.WARNING, logger="test.foreign"):
        for n in range(3):
            _write(root, NIC_QUEUE, 0x1 << (n % 2) if procirq.read_smp_affinity(
                root, NIC_QUEUE) != 0x1 << (n % 2) else 0x4)
            b.run_pass()
    assert b.foreign.total == 3
    assert b.foreign.left_alone == {NIC_QUEUE}
    assert b.is_banned(NIC_QUEUE) and NIC_QUEUE in b.settings.banned_irqs
    assert any("leaving it alone" in r.getMessage() and f"IRQ {NIC_QUEUE}" in r.getMessage()
               for r in caplog.records)
    # from now on its mask is the other program's: not compared, not written
    _write(root, NIC_QUEUE, 0x8)
    b.run_pass()
    assert b.foreign.total == 3
    assert procirq.read_smp_affinity(root, NIC_QUEUE) == 0x8


def test_changes_further_apart_than_the_window_do_not_add_up(tmp_path):
    clock = Clock()
    b, root = _balancer(tmp_path, settings=ForeignSettings(max_changes=2, window_s=60),
                        clock=clock)
    for _ in range(3):
        _write(root, NIC_QUEUE, _other_mask(root, NIC_QUEUE))
        b.run_pass()
        clock.now += 61
    assert b.foreign.total == 3
    assert not b.foreign.left_alone and not b.is_banned(NIC_QUEUE)


def test_max_changes_zero_never_leaves_an_irq_alone(tmp_path):
    b, root = _balancer(tmp_path, settings=ForeignSettings(max_changes=0))
    for _ in range(4):
        _write(root, NIC_QUEUE, _other_mask(root, NIC_QUEUE))
        b.run_pass()
    assert b.foreign.total == 4 and not b.foreign.left_alone


def test_a_rebuild_learns_again_instead_of_comparing(tmp_path):
    # CPU hotplug rebuilds the tree and may change masks itself: nothing is compared on
    # the pass after a rebuild; its activation's reads are the new expectations.
    b, root = _balancer(tmp_path)
    _write(root, NIC_QUEUE, _other_mask(root, NIC_QUEUE))
    b.force_rescan()
    b.run_pass()
    assert b.foreign.total == 0
    b.run_pass()
    assert b.foreign.total == 0


def test_an_api_pin_is_our_own_write(tmp_path):
    b, root = _balancer(tmp_path)
    b.disown(NIC_QUEUE)  # what the API does before it writes and pins
    _write(root, NIC_QUEUE, _other_mask(root, NIC_QUEUE))
    b.run_pass()
    assert b.foreign.total == 0


def test_metrics_show_the_foreign_writes(tmp_path):
    b, root = _balancer(tmp_path, settings=ForeignSettings(max_changes=1))
    _write(root, NIC_QUEUE, _other_mask(root, NIC_QUEUE))
    b.run_pass()
    text = Metrics(b).render().decode()
    name = b.foreign.view[0].name
    assert f'pyirqbalance_irq_foreign_writes_total{{irq="{NIC_QUEUE}",name="{name}"}} 1.0' in text
    assert "pyirqbalance_foreign_writes_total 1.0" in text
    assert "pyirqbalance_irqs_left_alone 1.0" in text
    assert "pyirqbalance_foreign_writes_enabled 1.0" in text


def test_many_first_changes_in_one_pass_are_summed_up(tmp_path, caplog):
    b, root = _balancer(tmp_path)
    irqs = sorted(b.foreign.expected)
    assert len(irqs) > FIRST_WARNINGS + 1
    for irq in irqs:
        _write(root, irq, _other_mask(root, irq))
    with caplog.at_level(logging.DEBUG, logger="test.foreign"):
        b.run_pass()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    firsts = [m for m in warnings if "changed by something else: expected" in m]
    assert len(firsts) == FIRST_WARNINGS
    assert f"{len(irqs) - FIRST_WARNINGS} more IRQs changed" in warnings[-1]
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG
             and "changed by something else: expected" in r.getMessage()]
    assert len(debug) == len(irqs) - FIRST_WARNINGS
    assert b.foreign.total == len(irqs)
