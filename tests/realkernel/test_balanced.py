"""``--placement=balanced`` on a real kernel with UDP between the two NICs (one of them in a
network namespace of the guest; QEMU's hub joins only these two):

* it locates every firing IRQ on the CPUs whose /proc/interrupts column counted it: a dry
  run (window: since boot) between two reads of /proc/interrupts, and a daemon's report
  after a pass next to our reads right after the pass before and that pass (the CPU that
  counted most of an IRQ's interrupts in our window is among the CPUs it was located on);
* the interrupt time of each CPU is /proc/stat's irq + softirq time (the dry run's figure
  lies between the two reads around it);
* with CPU 1 banned and the last CPU offline, it never plans or writes onto either.
"""

from __future__ import annotations

import json

import pytest

from tests.realkernel.records import bits, cpulist, mask

pytestmark = pytest.mark.realkernel


@pytest.fixture(scope="module")
def obs(guests):
    return guests("8cpu-2node").step("balanced")


@pytest.fixture(scope="module")
def dry(obs):
    assert obs["dry_rc"] == 0, obs["dry_stderr"]
    return json.loads(obs["dry"])["placement"]


def fired_on(row, columns) -> set[int]:
    return {cpu for cpu, n in zip(columns, row["counts"]) if n}


def rise_on(a, b, columns) -> dict[int, int]:
    return {cpu: nb - na for cpu, na, nb in zip(columns, a["counts"], b["counts"]) if nb > na}


def test_the_dry_run_locates_every_firing_irq_where_the_kernel_counted_it(obs, dry):
    located = {str(e["irq"]): set(e["cpus"]) for e in dry["located"]}
    assert set(obs["nic_irqs"]) <= set(located), "a NIC queue IRQ was not located"
    for irq, cpus in located.items():
        # since boot: among the CPUs that counted it; an IRQ counted on several CPUs since
        # boot may be located where it fires now (its effective affinity) only
        high = fired_on(obs["rows2"][irq], obs["columns"])
        assert cpus and cpus <= high, (irq, obs["rows2"][irq]["desc"], cpus, high)
        if len(high) == 1:
            assert cpus == high, (irq, obs["rows2"][irq]["desc"], cpus, high)


def test_interrupt_time_is_irq_plus_softirq_from_proc_stat(obs, dry):
    def us(stat, cpu):  # /proc/stat: user nice system idle iowait irq softirq ... (clock ticks)
        irq, softirq = stat[f"cpu{cpu}"][5:7]
        return (irq + softirq) * 1e6 / obs["clk_tck"]

    assert any(us(obs["stat1"], c) for c in obs["columns"]), "no irq/softirq time to read"
    assert dry["estimated"] is False
    for entry in dry["cpus"]:
        cpu = entry["cpu"]
        assert us(obs["stat1"], cpu) - 0.1 <= entry["now_us"] <= us(obs["stat2"], cpu) + 0.1, \
            (cpu, entry, us(obs["stat1"], cpu), us(obs["stat2"], cpu))


def test_the_daemon_locates_firing_irqs_where_the_kernel_counted_them(obs):
    online = cpulist(obs["online_daemon"])
    compared = 0
    for w in obs["windows"]:
        located = {str(e["irq"]): set(e["cpus"]) for e in w["report"]["placement"]["located"]}
        for cpus in located.values():
            assert cpus <= online
        if w["passes_seen"] != w["pass"]:
            continue  # the report may already be the next pass's
        for irq in obs["nic_irqs"]:
            rise = rise_on(w["a"][irq], w["b"][irq], obs["columns_daemon"])
            if sum(rise.values()) < 10:
                continue
            assert max(rise, key=rise.__getitem__) in located.get(irq, set()), \
                (irq, rise, located.get(irq))
            compared += 1
    assert compared, "no NIC IRQ fired steadily in a window whose report was that pass's"


def test_the_daemon_never_plans_or_writes_onto_offline_or_banned_cpus(obs):
    forbidden = {obs["offline"], obs["banned"]}
    for w in obs["windows"]:
        plan = w["report"]["placement"]
        assert not {m["to"] for m in plan["moves"]} & forbidden, plan["moves"]
        times = {c["cpu"]: c for c in plan["cpus"]}
        assert obs["offline"] not in times, plan["cpus"]
        banned = times.get(obs["banned"])
        assert banned is None or banned["after_us"] <= banned["now_us"], banned
    movable = {irq for irq, err in obs["probe_errno"].items() if err == 0}
    written = {irq: m for irq, m in obs["masks_daemon"].items()
               if irq in movable and m != obs["before"].get(irq)}
    assert written, "the daemon changed no mask: nothing tested"
    onto = {irq: m for irq, m in written.items() if bits(mask(m)) & forbidden}
    assert not onto, onto


def test_the_daemon_ran_without_a_traceback(obs):
    assert obs["alive"] and obs["rc"] == 0, obs["log"][-3000:]
    assert "Traceback" not in obs["log"]
