"""Load report: shares, flags, grouping and the balancer's recommendation, on hand-made input."""

from __future__ import annotations

from pyirqbalance.api.report import NO_TOPOLOGY_NOTE, build_report, format_report
from pyirqbalance.engine.model import Decision


def decision(irq: int, current: int | None, target: int | None, reason: str) -> Decision:
    return Decision(irq=irq, name="", irq_class="ethernet", level="core", node=0,
                    current_mask=current, target_mask=target, assigned=None, reason=reason)


COUNTS = {
    24: {0: 900, 1: 100, 2: 0, 3: 0},
    25: {0: 10, 1: 10, 2: 10, 3: 10},
    26: {0: 0, 1: 0, 2: 0, 3: 0},
    27: {0: 0, 1: 0, 2: 0, 3: 50},
}
NAMES = {24: "eth0", 25: "nvme0q1", 26: "idle", 27: "ahci"}


def test_shares_and_flags_without_topology():
    rep = build_report(COUNTS, NAMES, threshold=80)
    by = {i.irq: i for i in rep.irqs}
    assert set(by) == {24, 25, 27}                   # idle IRQs are left out
    assert by[24].shares == (("cpu 0", 90.0), ("cpu 1", 10.0)) and by[24].flagged
    assert not by[25].flagged and by[25].shares[0] == ("cpu 0", 25.0)
    assert by[27].flagged and by[27].shares == (("cpu 3", 100.0),)
    assert by[24].recommended is None and rep.notes == (NO_TOPOLOGY_NOTE,)
    assert [i.irq for i in rep.flagged] == [24, 27]


def test_threshold_is_strict():
    assert not build_report({1: {0: 80, 1: 20}}, {}, threshold=80).irqs[0].flagged
    assert build_report({1: {0: 81, 1: 19}}, {}, threshold=80).irqs[0].flagged


def test_recommendations_come_from_decisions():
    decisions = [
        decision(24, 0x1, 0x4, "placed on cpu 2"),
        decision(25, 0xF, 0xF, "already in place"),
        decision(27, 0x8, None, "banned by --banirq"),
    ]
    rep = build_report(COUNTS, NAMES, threshold=80, decisions=decisions)
    by = {i.irq: i for i in rep.irqs}
    assert (by[24].current, by[24].recommended, by[24].action, by[24].reason) == (
        "0", "2", "move", "placed on cpu 2")
    assert (by[25].recommended, by[25].action) == ("0-3", "keep")
    assert (by[27].recommended, by[27].action, by[27].reason) == (
        None, "leave", "banned by --banirq")
    assert rep.notes == ()


def test_grouped_by_node():
    groups = {0: "node 0", 1: "node 0", 2: "node 1", 3: "node 1"}
    rep = build_report(COUNTS, NAMES, threshold=95, groups=groups, group="node")
    by = {i.irq: i for i in rep.irqs}
    assert by[24].shares == (("node 0", 100.0),) and by[24].flagged
    assert by[25].shares == (("node 0", 50.0), ("node 1", 50.0))


def test_text_table():
    text = format_report(build_report(COUNTS, NAMES, threshold=80), flagged_only=True)
    lines = text.splitlines()
    assert lines[2].split()[:4] == ["IRQ", "NAME", "TOTAL", "TOP"]
    assert [line.split()[0] for line in lines[3:5]] == ["24", "27"]
    assert "2 of 3 IRQs flagged" in text and NO_TOPOLOGY_NOTE in text
