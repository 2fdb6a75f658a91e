"""pyirqbalance.kernel.procstat on real /proc/stat captures and irqbalance's sscanf rules.

Expected values are copied from the captured files (tests/fixtures/proc); the
irq-jiffies rules come from irqbalance 1.9 ``parse_proc_stat`` (spec section 2.3).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pyirqbalance.kernel.procstat import (
    CpuTimes,
    ParseError,
    parse_irq_jiffies,
    parse_stat,
    read_stat,
)

PROC = Path(__file__).parent.parent / "fixtures" / "proc"
U64 = 2**64 - 1


def text(name: str) -> str:
    return (PROC / name).read_text()


def test_480_cpu_hp_bl920_nine_fields():
    stat = parse_stat(text("performancecopilot-pcp/extracted/bigsys-root-hpbl920gen8/proc/stat"))
    assert len(stat.cpus) == 480
    assert stat.total == CpuTimes(-1, 17330, 3269, 120465, 869208946, 2311, 1, 1144, 0, 0)
    assert stat.cpus[0] == CpuTimes(0, 516, 27, 21355, 1784436, 37, 1, 25, 0, 0, 0)
    assert stat.cpus[-1] == CpuTimes(479, 0, 0, 9, 1807845, 0, 0, 1, 0, 0)
    assert (stat.intr_total, stat.softirq_total, stat.btime) == (112101525, 279372541, 1417651544)


def test_offline_cpu_absent():
    stat = parse_stat(text("sysstat/tests/root3/proc/stat"))
    assert [c.cpu for c in stat.cpus] == [0, 1, 2, 3, 4, 5, 7]
    assert stat.by_cpu()[7].irq_softirq == 2107 + 981


def test_seven_field_lines():
    stat = parse_stat(text("sysstat/tests/root6/proc/stat"))
    assert stat.by_cpu()[9] == CpuTimes(9, 200, 2000, 200, 2000, 200, 200, 20)
    assert stat.by_cpu()[9].steal == 0


def test_this_vm_two_snapshots():
    before = parse_stat(text("this-vm/proc/stat"))
    after = parse_stat(text("this-vm/proc/stat.after-10s"))
    assert before.cpus[1] == CpuTimes(1, 4972, 0, 4056, 897406, 324, 0, 145, 289, 0, 0)
    assert after.cpus[1].idle - before.cpus[1].idle == 898447 - 897406
    assert (before.intr_total, before.btime, before.softirq_total) == (447624, 1795374512, 366178)
    assert parse_irq_jiffies(text("this-vm/proc/stat")) == ((0, 0 + 67), (1, 0 + 145))


@pytest.mark.parametrize("name", [
    "shirou-gopsutil/cpu/testdata/linux/424/proc/stat",
    "prometheus-procfs/proc/stat",
    "prometheus-node_exporter/proc/stat",
    "RandolphWang1-D2000/proc/stat",
    "GoCleverInsignia5-i5_info/proc/stat",
] + [f"sysstat/tests/root{r}/proc/stat" for r in ("1", "2", "3", "4", "5", "6", "6b", "7")])
def test_jiffies_agree_with_full_parse(name):
    stat = parse_stat(text(name))
    assert parse_irq_jiffies(text(name)) == tuple((c.cpu, c.irq_softirq) for c in stat.cpus)


def test_empty_file_is_an_error(make_tree):
    with pytest.raises(ParseError, match="no cpu line"):
        parse_stat(text("shirou-gopsutil/cpu/testdata/linux/times_empty/proc/stat"))
    assert parse_irq_jiffies("") is None
    root = make_tree({"proc/stat": ""})
    with pytest.raises(ParseError):
        read_stat(root)


@pytest.mark.parametrize("bad", ["cpu0 1 2 x\n", "cpuX 1 2 3\n", "cpu 1\nintr abc\n"])
def test_malformed_lines(bad):
    with pytest.raises(ParseError, match="line"):
        parse_stat(bad)


def test_irqbalance_rules():
    # the first line is skipped whatever it is; reading stops at a line without "cpu"
    text = "garbage\ncpu3 1 2 3 4 5 6 7\nintr 1\ncpu4 1 2 3 4 5 6 7\n"
    assert parse_irq_jiffies(text) == ((3, 13),)
    # fewer than two numbers for irq/softirq: (cpu, None), reading goes on (bans decide)
    assert parse_irq_jiffies("cpu\ncpu0 1 2 3 4 5 6\ncpu1 1 2 3 4 5 6 7\n") == ((0, None), (1, 13))
    # scanf never gives back digits: "56" is one number, so cpu0 has only 5
    assert parse_irq_jiffies("cpu\ncpu0 1 2 3 4 56\n") == ((0, None),)
    # "%*s" takes the whole first word
    assert parse_irq_jiffies("cpu\ncpu12345 1 2 3 4 5 6\n") == ((12345, None),)
    # %u accepts signs and needs no blank before a sign; %llu wraps, the sum wraps
    assert parse_irq_jiffies("cpu\ncpu0 1+2 3 4 5 6 7\n") == ((0, 13),)
    assert parse_irq_jiffies("cpu\ncpu2 1 2 3 4 5 -6 +7\n") == ((2, 1),)
    assert parse_irq_jiffies("cpu\ncpu2 1 2 3 4 5 99999999999999999999999 1\n") == ((2, 0),)
    # "cpu" anywhere in the line; the number is strtoul from the 4th character
    assert parse_irq_jiffies("cpu\nxx cpu 1 2 3 4 5 6 7\n") == ((0, None),)
    assert parse_irq_jiffies("cpu\nabc 7 1 2 3 4 5 6 cpu\n") == ((7, 11),)
