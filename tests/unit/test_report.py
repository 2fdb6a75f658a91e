"""Load report: shares, verdicts, the whole-IRQ plan and the balance metric, by hand."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pyirqbalance.api import ctl
from pyirqbalance.api.report import (
    NO_TOPOLOGY_NOTE,
    build_report,
    counts_from_interrupts,
    format_report,
    plan_cpus,
    verdict,
)
from pyirqbalance.engine.model import Decision
from pyirqbalance.kernel.procinterrupts import parse_interrupts

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "seed" / "interrupts_hand_spaced"
MACHINES = Path(__file__).resolve().parents[1] / "machines"


def decision(irq: int, current: int | None, target: int | None, reason: str) -> Decision:
    return Decision(irq=irq, name="", irq_class="ethernet", level="core", node=0,
                    current_mask=current, target_mask=target, assigned=None, reason=reason)


def sample_report(threshold: float = 5.0):
    parsed = parse_interrupts(SAMPLE.read_text())
    counts, names = counts_from_interrupts(parsed)
    return build_report(counts, names, threshold=threshold, cpus=parsed.cpus)


def test_hand_spaced_sample_names_shares_and_verdicts():
    rep = sample_report()
    rows = [(i.irq, i.name, i.shares, i.verdict) for i in rep.irqs]
    # 30: 900/1000, 100/1000; 32: 1/3 = 33.333.., 2/3 = 66.666..; 35 never fired: left out.
    assert rows == [
        (30, "eth0-TxRx-0", (90.0, 10.0), "CPU1"),
        (31, "eth0-TxRx-1", (48.0, 52.0), "Balanced"),   # 4 points apart, threshold 5
        (32, "eth0", (33.33, 66.67), "CPU0"),
        (33, "ahci, ehci_hcd:usb1", (50.0, 50.0), "Balanced"),
        (34, "nvme0q1", (100.0, 0.0), "CPU1"),
    ]
    assert rep.notes == (NO_TOPOLOGY_NOTE,)


def test_threshold_is_the_largest_allowed_gap_in_points():
    assert sample_report(4.0).irqs[1].verdict == "Balanced"     # 52 - 48 = 4 <= 4
    assert sample_report(3.99).irqs[1].verdict == "CPU0"         # CPU0 has the smaller share
    assert verdict((25.0, 25.0, 25.0, 25.0), ("a", "b", "c", "d"), 0) == "Balanced"
    assert verdict((60.0, 0.0, 40.0, 0.0), ("CPU0", "CPU1", "CPU2", "CPU3"), 5) == "CPU1"


def test_plan_and_balance_metric_by_hand():
    rep = sample_report()
    # Totals: 30: 1000, 31: 1000, 32: 3, 33: 600, 34: 2000 (all 4603).
    # Heaviest first to the least-loaded CPU (ties: lower CPU): 34 -> 0, 30 -> 1, 31 -> 1,
    # 33 -> 0 (2000 each), 32 -> 1; sums 2600 / 2003. No move or swap lowers 2600, and no
    # subset of {2000, 1000, 1000, 600, 3} sums to 2004..2599: 2600 is the optimum.
    assert {i.irq: i.plan_cpu for i in rep.irqs} == {30: 1, 31: 1, 32: 1, 33: 0, 34: 0}
    # Busiest CPU now: CPU0 900+480+1+300+2000 = 3681 -> 79.97 %; plan 2600 -> 56.48 %;
    # best: max(4603 / 2, 2000) = 2301.5 -> 50.00 %.
    assert rep.balance is not None
    assert (rep.balance.now, rep.balance.plan, rep.balance.best) == (79.97, 56.48, 50.0)


def test_plan_search_beats_greedy():
    # Greedy alone: 3 -> 0, 3 -> 1, 2 -> 0, 2 -> 1, 2 -> 0 gives 7 / 5; swapping a 3 with a 2
    # gives 6 / 6, the optimum.
    plan = plan_cpus({1: 3, 2: 3, 3: 2, 4: 2, 5: 2}, [0, 1])
    sums = [sum(w for i, w in {1: 3, 2: 3, 3: 2, 4: 2, 5: 2}.items() if plan[i] == c)
            for c in (0, 1)]
    assert sums == [6, 6]


def test_decisions_with_affinity_as_it_is_now():
    counts = {24: {0: 900, 1: 100}, 25: {0: 10, 1: 10}, 27: {0: 0, 1: 50}}
    decisions = [decision(24, 0x1, 0x2, "placed on cpu 1"), decision(25, 0x3, 0x3, "in place"),
                 decision(27, 0x2, None, "banned by --banirq")]
    # The decision still says IRQ 24 is on CPU0, but smp_affinity already holds CPU1.
    rep = build_report(counts, {}, decisions=decisions, current={24: 0x2, 25: 0x3, 27: 0x2})
    by = {i.irq: i for i in rep.irqs}
    assert (by[24].current, by[24].recommended, by[24].action) == ("1", "1", "keep")
    assert (by[25].recommended, by[25].action) == ("0-1", "keep")
    assert (by[27].recommended, by[27].action, by[27].reason) == (None, "leave",
                                                                  "banned by --banirq")
    assert rep.notes == ()


def test_grouped_by_node():
    counts = {24: {0: 900, 1: 100, 2: 0, 3: 0}, 25: {0: 10, 1: 10, 2: 10, 3: 10}}
    groups = {0: "node 0", 1: "node 0", 2: "node 1", 3: "node 1"}
    rep = build_report(counts, {}, threshold=5, groups=groups, group="node")
    assert rep.columns == ("node 0", "node 1")
    assert [(i.shares, i.verdict) for i in rep.irqs] == [((100.0, 0.0), "node 1"),
                                                          ((50.0, 50.0), "Balanced")]


def test_ctl_report_file_text_and_json(capsys):
    out = io.StringIO()
    assert ctl.main(["report", "--file", str(SAMPLE)], out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[2].split() == ["IRQ", "NAME", "CPU0", "%", "CPU1", "%", "VERDICT", "PLAN"]
    assert lines[3].split() == ["30", "eth0-TxRx-0", "90.00", "10.00", "CPU1", "CPU1"]
    assert lines[5].split() == ["32", "eth0", "33.33", "66.67", "CPU0", "CPU1"]
    assert lines[6].split()[:3] == ["33", "ahci,", "ehci_hcd:usb1"]
    assert "3 of 5 IRQs have cpu shares more than 5 points apart" in out.getvalue()
    # 79.97 % now is 29.97 points above the best any whole-IRQ plan can do: not balanced.
    assert ("interrupt load not balanced: the busiest CPU handles 79.97% of all interrupts "
            "now, 56.48% under the plan, 50.00% at best (2 CPUs)") in out.getvalue()
    out = io.StringIO()
    assert ctl.main(["--json", "report", "--file", str(SAMPLE), "--threshold", "3"], out=out) == 0
    data = json.loads(out.getvalue())
    assert data["irqs"][1] == {"irq": 31, "name": "eth0-TxRx-1", "total": 1000,
                               "shares": [48.0, 52.0], "verdict": "CPU0", "plan_cpu": 1,
                               "flagged": True, "banned_share": 0.0}
    assert data["balance"] == {"now": 79.97, "plan": 56.48, "best": 50.0}
    text = format_report(data, flagged_only=True)
    assert [line.split()[0] for line in text.splitlines()[3:7]] == ["30", "31", "32", "34"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 10**9), min_size=1, max_size=8), st.integers(2, 3))
def test_plan_is_within_the_greedy_guarantee_of_the_optimum(weights, ncpu):
    """Heaviest-first placement is within 4/3 of the optimum (Graham); the local search only
    lowers it. The optimum is found by trying every assignment of these few IRQs."""
    w = dict(enumerate(weights))
    cpus = list(range(ncpu))
    plan = plan_cpus(w, cpus)
    assert set(plan) == set(w) and set(plan.values()) <= set(cpus)
    got = max(sum(w[i] for i in w if plan[i] == c) for c in cpus)
    best = min(max(sum(w[i] for i, c in enumerate(choice) if c == k) for k in cpus)
               for choice in itertools.product(cpus, repeat=len(w)))
    assert best <= got <= best * 4 / 3
    assert got * ncpu >= sum(weights) and got >= max(weights)     # the metric's lower bound


def test_summary_line_follows_the_figures():
    """Every IRQ on one CPU (x86 delivers each to one CPU at a time), the machine evenly
    loaded: each IRQ's shares are 100 points apart, yet the load is as balanced as it can be."""
    counts = {10: {0: 100, 1: 0}, 11: {0: 0, 1: 100}}
    text = format_report(build_report(counts, {}, cpus=[0, 1]).to_json())
    assert "2 of 2 IRQs have cpu shares more than 5 points apart" in text
    assert ("interrupt load balanced: the busiest CPU handles 50.00% of all interrupts now, "
            "50.00% under the plan, 50.00% at best (2 CPUs)") in text
    assert "not balanced" not in text


def test_verdicts_and_plan_use_only_usable_cpus():
    """CPUs 2 and 3 are banned (isolated): no verdict or plan names them, and interrupts
    that land there are reported."""
    counts = {20: {0: 100, 1: 100, 2: 0, 3: 0},     # even on the usable CPUs
              21: {0: 0, 1: 0, 2: 1000, 3: 0},      # all on an isolated CPU
              22: {0: 300, 1: 0, 2: 0, 3: 0}}
    rep = build_report(counts, {}, cpus=[0, 1, 2, 3], usable=[0, 1])
    by = {i.irq: i for i in rep.irqs}
    # 20: 50/50/0/0 -- the smallest share among CPU0-1 is 50, the largest 50: balanced.
    assert by[20].verdict == "Balanced"
    # 21: 0/0/100/0 -- more should go to the least-loaded usable CPU, CPU0.
    assert (by[21].verdict, by[21].banned_share) == ("CPU0", 100.0)
    assert by[22].verdict == "CPU1"
    assert {i.plan_cpu for i in rep.irqs} <= {0, 1}
    assert rep.usable == (0, 1)
    assert ("IRQ 21: 100.00% of its interrupts are on CPU 2, which the balancer may not use "
            "(banned or isolated)") in rep.notes
    # Plan on 2 CPUs: 21 (1000) -> CPU0, 22 (300) -> CPU1, 20 (200) -> CPU1: busiest 1000 of
    # 1500 = 66.67 %, which is also the best (the largest IRQ). Now: CPU2 has 1000.
    assert rep.balance == (66.67, 66.67, 66.67)
    text = format_report(rep.to_json())
    assert "(2 of 4 CPUs the balancer may use)" in text
    without = {i.irq: i.verdict for i in build_report(counts, {}, cpus=[0, 1, 2, 3]).irqs}
    assert without[20] == "CPU2"          # what the report said before: an isolated CPU


def test_report_on_a_machine_with_isolated_cpus(tmp_path, fake_machine):
    """e_isolated_nohz: isolcpus=2-3, nohz_full=12-15 (the balancer bans both). The local
    report (a dry-run balancer, as the daemon's) never recommends those CPUs."""
    root, _ = fake_machine(MACHINES / "e_isolated_nohz.json")
    path = Path(root.proc("interrupts"))
    lines = path.read_text().splitlines(keepends=True)
    ncpu = len(lines[0].split())
    for k, line in enumerate(lines):
        if line.split(":")[0].strip() == "131":       # a NIC queue whose counts are on CPU2
            cells = line.split()
            counts = [0] * ncpu
            counts[2] = sum(int(c) for c in cells[1:1 + ncpu])
            lines[k] = "131:" + "".join(f"{n:>11}" for n in counts) + " " + " ".join(
                cells[1 + ncpu:]) + "\n"
    path.write_text("".join(lines))
    cfg = tmp_path / "empty.yaml"
    cfg.write_text("{}\n")
    out = io.StringIO()
    argv = ["--local", "--sysroot", str(root.base), "--config", str(cfg), "--json", "report"]
    assert ctl.main(argv, out=out) == 0
    data = json.loads(out.getvalue())
    banned = {2, 3, 12, 13, 14, 15}
    assert set(data["usable_cpus"]) == set(range(16)) - banned
    assert all(i["verdict"] not in {f"CPU{c}" for c in banned} for i in data["irqs"])
    assert all(i["plan_cpu"] not in banned for i in data["irqs"])
    item = {i["irq"]: i for i in data["irqs"]}[131]
    assert item["banned_share"] == 100.0
    assert any(n.startswith("IRQ 131: 100.00% of its interrupts are on CPU 2") for n in
               data["notes"])
