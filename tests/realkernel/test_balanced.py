"""``--placement=balanced`` on a real kernel with UDP between the two NICs (one of them in a
network namespace of the guest; QEMU's hub joins only these two) and direct reads of the
NVMe drive (its kernel-managed queues fire on the CPUs the reads run on):

* it locates every firing IRQ (NIC queues, NVMe queues, anything else that fires) on the
  CPUs whose /proc/interrupts column counted it: a dry run (window: since boot) between two
  reads of /proc/interrupts locates every IRQ that rose between them, on CPUs that counted
  it; a daemon's report after a pass, next to our two reads inside that pass's window
  (after the pass before ended, before that pass began: whatever rose in ours rose in the
  daemon's), locates every IRQ that rose steadily in ours, and the CPU that counted most
  of it is among the CPUs it was located on;
* the interrupt time of each CPU is /proc/stat's irq + softirq time (the dry run's figure
  lies between the two reads around it);
* with CPU 1 banned and the last CPU offline, it never plans or writes onto either (the
  NVMe queues are the kernel's to place: their writes are refused, and the offline CPU's
  queue is shut down by the kernel, its mask still naming that CPU).
"""

from __future__ import annotations

import json
import re

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


#: A rise over a window that counts as firing steadily.
STEADY = 10


def kind(row) -> str | None:
    """What fires: an NVMe I/O queue, virtio-net's or e1000e's queues (None: another IRQ)."""
    desc = row["desc"]
    if re.search(r"\bnvme\d+q[1-9]\d*$", desc):
        return "nvme queue"
    if re.search(r"-(input|output)\.\d+$", desc):
        return "virtio-net"
    if re.search(r"-(rx|tx)-\d+$", desc):
        return "e1000e"
    return None


KINDS = {"nvme queue", "virtio-net", "e1000e"}


def test_the_dry_run_locates_every_firing_irq_where_the_kernel_counted_it(obs, dry):
    located = {str(e["irq"]): set(e["cpus"]) for e in dry["located"]}
    rows1, rows2 = obs["rows1"], obs["rows2"]
    # counted before the dry run read /proc/interrupts, still firing after it
    firing = {irq for irq, row in rows2.items()
              if irq in rows1 and 0 < sum(rows1[irq]["counts"]) < sum(row["counts"])}
    assert firing <= set(located), {irq: rows2[irq]["desc"] for irq in firing - set(located)}
    assert set(obs["nic_irqs"]) <= set(located), "a NIC queue IRQ was not located"
    kinds = {kind(rows2[irq]) for irq in firing}
    assert kinds >= KINDS, ("nothing of some kind fired between the reads", kinds)
    for irq, cpus in located.items():
        # since boot: among the CPUs that counted it; an IRQ counted on several CPUs since
        # boot may be located where it fires now (its effective affinity) only
        high = fired_on(rows2[irq], obs["columns"])
        assert cpus and cpus <= high, (irq, rows2[irq]["desc"], cpus, high)
        if len(high) == 1:
            assert cpus == high, (irq, rows2[irq]["desc"], cpus, high)


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


def test_the_daemon_locates_every_firing_irq_where_the_kernel_counted_it(obs):
    online = cpulist(obs["online_daemon"])
    assert len(obs["windows"]) >= 2, f"{obs['tries']} tries gave {len(obs['windows'])} windows"
    compared: dict[str, set[str]] = {}
    for w in obs["windows"]:
        located = {str(e["irq"]): set(e["cpus"]) for e in w["report"]["placement"]["located"]}
        for cpus in located.values():
            assert cpus <= online
        for irq, b in w["b"].items():
            if irq not in w["a"]:
                continue
            rise = rise_on(w["a"][irq], b, obs["columns_daemon"])
            if sum(rise.values()) < STEADY:
                continue
            assert irq in located, (w["pass"], irq, b["desc"], rise)
            assert max(rise, key=rise.__getitem__) in located[irq], \
                (w["pass"], irq, b["desc"], rise, located[irq])
            compared.setdefault(kind(b) or "other", set()).add(irq)
    assert compared.get("nvme queue"), ("no NVMe queue fired steadily in a window", compared)
    nics = compared.get("virtio-net", set()) | compared.get("e1000e", set())
    assert set(obs["nic_irqs"]) <= nics, \
        ("a NIC queue IRQ never fired steadily in a window", obs["nic_irqs"], compared)


def test_the_daemon_never_plans_or_writes_onto_offline_or_banned_cpus(obs):
    forbidden = {obs["offline"], obs["banned"]}
    for w in obs["windows"]:
        plan = w["report"]["placement"]
        assert not {m["to"] for m in plan["moves"]} & forbidden, plan["moves"]
        times = {c["cpu"]: c for c in plan["cpus"]}
        assert obs["offline"] not in times, plan["cpus"]
        banned = times.get(obs["banned"])
        assert banned is None or banned["after_us"] <= banned["now_us"], banned
    # the NVMe queues are the kernel's: it refuses their writes (so no write of the daemon
    # is among their masks), and the offline CPU's queue, shut down, still names that CPU
    queues = {irq for irq in obs["nvme_irqs"] if kind(obs["rows1"][irq]) == "nvme queue"}
    assert queues and all(obs["probe_errno"][irq] for irq in queues), obs["probe_errno"]
    shut = {irq for irq in queues if mask(obs["masks_offline"][irq]) == 1 << obs["offline"]}
    assert shut, ("no NVMe queue of the offline CPU", obs["masks_offline"])
    for w in obs["windows"]:
        located = {str(e["irq"]) for e in w["report"]["placement"]["located"]}
        assert not shut & located, (w["pass"], shut & located)
    movable = {irq for irq, err in obs["probe_errno"].items() if err == 0}
    written = {irq: m for irq, m in obs["masks_daemon"].items()
               if irq in movable and m != obs["before"].get(irq)}
    assert written, "the daemon changed no mask: nothing tested"
    onto = {irq: m for irq, m in written.items() if bits(mask(m)) & forbidden}
    assert not onto, onto


def test_the_daemon_ran_without_a_traceback(obs):
    assert obs["alive"] and obs["rc"] == 0, obs["log"][-3000:]
    assert "Traceback" not in obs["log"]
