"""Per-pass counts when /proc/interrupts is streamed or compared with the last pass.

Whatever shortcut the scanner takes (rows reused from the last pass, only
changed rows handed over, found from the kept file or from the hashes of a
streamed file's lines), each IRQ's
count after a pass must be its row's total in that pass's file, and its last
count the total in the file before (irqbalance parse_proc_interrupts).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyirqbalance.engine.balancer import Balancer
from pyirqbalance.engine.model import BalancerSettings
from pyirqbalance.kernel.procinterrupts import reference_irq_counts
from tests.oracle import mkfake
from tests.oracle.kernfs import KernfsSysRoot

MACHINE = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "irqbalance-1.9.2" / "b_2s64.json")
    .read_text()
)


def _totals(data: bytes) -> dict[int, int]:
    return {r.irq: r.total for r in reference_irq_counts(data).rows}


@pytest.mark.parametrize("memo_limit", [0, 1 << 30], ids=["streamed", "compared"])
def test_counts_follow_every_file(tmp_path, memo_limit):
    m = mkfake.Machine(MACHINE)
    tree = tmp_path / "tree"
    mkfake.build_tree(m, str(tree), force=True)
    root = KernfsSysRoot(tree)
    state = mkfake.SimState(m)
    interrupts = tree / "proc" / "interrupts"
    interrupts.write_text(mkfake.render_interrupts(m, state))
    b = Balancer(root, BalancerSettings(), memo_limit=memo_limit)
    b.start()
    before = _totals(interrupts.read_bytes())
    quiet = sorted(before)[::3]  # a third of the IRQs stop firing half way
    for step in range(5):
        if step == 2:
            for irq in quiet:
                m.irqs[irq]["rate"] = 0
        state.advance(1)
        interrupts.write_text(mkfake.render_interrupts(m, state))
        b.run_pass()
        after = _totals(interrupts.read_bytes())
        for irq, info in b.db.by_irq.items():
            assert (info.last_count, info.count) == (before[irq], after[irq]), irq
        if step > 2:
            assert all(before[irq] == after[irq] for irq in quiet)
            assert any(before[irq] != after[irq] for irq in before)
        # the shortcut is taken in both modes: only changed rows are handed over
        # (found by comparing bytes with the kept file, or hashes of the streamed lines)
        assert b._scanner.changed is not None
        assert bool(b._scanner._memo.hashes) == (not memo_limit)
        before = after


def test_text_is_kept_only_when_asked(tmp_path):
    m = mkfake.Machine(MACHINE)
    mkfake.build_tree(m, str(tmp_path / "tree"), force=True)
    root = KernfsSysRoot(tmp_path / "tree")
    plain = Balancer(root, BalancerSettings())
    plain.start()
    assert plain.run_pass().snapshot is None
    kept = Balancer(root, BalancerSettings(), keep_text=True)
    kept.start()
    snapshot = kept.run_pass().snapshot
    assert snapshot.interrupts == (tmp_path / "tree" / "proc" / "interrupts").read_bytes()
