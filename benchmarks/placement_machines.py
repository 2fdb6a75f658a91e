#!/usr/bin/env python3
"""Write the placement-quality machines (tests/machines/p_*.json), fixed seeds.

    python3 benchmarks/placement_machines.py [--seed N] [OUTDIR]

Eight machines in the oracle's schema (tests/oracle/README.md) for
benchmarks/placement_quality.py and the differential suite: NICs with 8-64
queues whose per-queue rates are heavy-tailed (log-normal: a few hot queues,
many cold), NVMe queues (some kernel-managed), 1-8 NUMA nodes, SMT, offline
and isolated CPUs, a kernel without IRQ time accounting and a load that
shifts half-way through a run. Each IRQ's count since boot is its rate times
``UPTIME_PASSES`` (mkfake adds what they cost to /proc/stat's irq/softirq
columns), so the first pass sees a machine that has been running. The
``harness`` key carries what only the simulator can do:
``irq_time_accounting: false`` (irq/softirq columns stay flat) and
``rate_shift: {"pass": P, "rates": {irq: rate}}`` (new rates from pass P).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


#: Added to every random seed: ``--seed N`` draws the same families anew (other rates, costs,
#: hot sets, counts since boot) -- machines the placement was never tuned on.
SEED = 0
#: Passes of load the counters since boot stand for.
UPTIME_PASSES = 500
NET = "0x020000"
NVME = "0x010802"


def rates(rng: random.Random, n: int, mean: float, sigma: float = 1.1) -> list[int]:
    """n heavy-tailed per-queue rates (log-normal), mean about ``mean``."""
    raw = [rng.lognormvariate(0.0, sigma) for _ in range(n)]
    scale = mean * n / sum(raw)
    return [max(1, int(r * scale)) for r in raw]


def hot_cold(rng: random.Random, n: int, cpus: int, per_cpu: float, hot: int = 4) -> list[int]:
    """n queue rates for a NIC meant to fill ``cpus`` CPUs at ``per_cpu`` each: ``hot``
    queues of 0.6-0.9 of a CPU's share, the rest log-normal (sigma 1) -- a few hot
    queues, many cold ones, the hot ones never alone enough to set the floor."""
    total = cpus * per_cpu
    hot_rates = [per_cpu * rng.uniform(0.6, 0.9) for _ in range(hot)]
    cold = rates(rng, n - hot, (total - sum(hot_rates)) / (n - hot), 1.0)
    out = [int(r) for r in hot_rates] + cold
    rng.shuffle(out)
    return out


def nic(address: str, node: int, first_irq: int, queue_rates: list[int], name: str,
        driver: str = "ice") -> dict:
    irqs = [{"irq": first_irq, "type": "msix", "name": f"{driver}-{address}:misc", "rate": 1}]
    for i, r in enumerate(queue_rates):
        irqs.append({"irq": first_irq + 1 + i, "type": "msix", "name": f"{name}-TxRx-{i}",
                     "rate": r})
    return {"address": address, "class": NET, "vendor": "0x8086", "device": "0x159b",
            "driver": driver, "numa_node": node, "irqs": irqs}


def nvme(address: str, node: int, first_irq: int, queue_rates: list[int],
         managed: bool) -> dict:
    irqs = [{"irq": first_irq, "type": "msix", "name": "nvme0q0", "rate": 2}]
    for i, r in enumerate(queue_rates):
        irqs.append({"irq": first_irq + 1 + i, "type": "msix", "name": f"nvme0q{i + 1}",
                     "rate": r, "managed": managed})
    return {"address": address, "class": NVME, "vendor": "0x144d", "device": "0xa808",
            "driver": "nvme", "numa_node": node, "irqs": irqs}


def legacy(*numbers: int) -> list[dict]:
    names = {0: "timer", 1: "i8042", 8: "rtc0", 9: "acpi", 12: "i8042"}
    return [{"irq": n, "type": "legacy", "name": names.get(n, f"irq{n}"), "rate": 1,
             "no_balancing": n == 0} for n in numbers]


def with_history(desc: dict, accounting: bool = True) -> dict:
    """Counts since boot = rate x UPTIME_PASSES (mkfake puts them on the initial effective
    CPU and adds what they cost to /proc/stat). A machine without IRQ time accounting
    starts from zero counts: its /proc/stat must not show their cost."""
    if not accounting:
        return desc
    for irq in [q for d in desc.get("pci_devices", []) for q in d["irqs"]] + desc.get("irqs", []):
        if isinstance(irq, dict) and irq.get("rate"):
            irq["total"] = irq["rate"] * UPTIME_PASSES
    return desc


def machines() -> list[dict]:
    out = []
    rng = random.Random(1601 + SEED)
    out.append({
        "name": "p_nic32_smt",
        "comment": "1 socket, 8 cores x 2 threads (siblings 8 apart), 1 node; a 32-queue NIC "
                   "with heavy-tailed rates, a 8-queue NVMe (movable), legacy IRQs.",
        "topology": {"packages": 1, "cores_per_package": 8, "threads_per_core": 2},
        "pci_devices": [nic("0000:17:00.0", -1, 100, hot_cold(rng, 32, 16, 2000), "ens1f0"),
                        nvme("0000:5e:00.0", -1, 140, rates(rng, 8, 400, 0.6), False)],
        "irqs": legacy(0, 1, 8, 9, 12),
    })
    out.append({
        "name": "p_2node_2nic",
        "comment": "2 sockets x 6 cores, SMT, 2 nodes (24 CPUs); a 32-queue NIC on node 0, a "
                   "16-queue NIC on node 1, a managed 12-queue NVMe on node 1.",
        "topology": {"packages": 2, "cores_per_package": 6, "threads_per_core": 2,
                     "numa_nodes": 2},
        "pci_devices": [nic("0000:17:00.0", 0, 100, hot_cold(rng, 32, 12, 3000), "ens1f0"),
                        nic("0000:af:00.0", 1, 140, hot_cold(rng, 16, 12, 1500, 2), "ens2f0",
                            "i40e"),
                        nvme("0000:d8:00.0", 1, 160, rates(rng, 12, 150, 0.5), True)],
        "irqs": legacy(0, 1, 8, 9),
    })
    out.append({
        "name": "p_4node_64q",
        "comment": "2 sockets x 8 cores, SMT, 4 nodes (32 CPUs, 8 a node); a 64-queue NIC on "
                   "node 1 (8 queues a node CPU), a 16-queue NIC on node 3.",
        "topology": {"packages": 2, "cores_per_package": 8, "threads_per_core": 2,
                     "numa_nodes": 4},
        "pci_devices": [nic("0000:3b:00.0", 1, 200, hot_cold(rng, 64, 8, 3000, 3), "ens3f0"),
                        nic("0000:d8:00.0", 3, 300, hot_cold(rng, 16, 8, 2000, 2), "ens4f0",
                            "i40e")],
        "irqs": legacy(0, 1, 8, 9),
    })
    out.append({
        "name": "p_8node",
        "comment": "8 sockets x 4 cores, no SMT, 8 nodes (32 CPUs); four NICs of 8-16 queues on "
                   "nodes 0, 2, 5, 7 and an NVMe with 16 queues on node 4.",
        "topology": {"packages": 8, "cores_per_package": 4, "numa_nodes": 8},
        "pci_devices": [nic("0000:10:00.0", 0, 100, hot_cold(rng, 16, 4, 2500, 2), "ens1"),
                        nic("0000:30:00.0", 2, 120, hot_cold(rng, 8, 4, 2500, 2), "ens2", "i40e"),
                        nic("0000:60:00.0", 5, 140, hot_cold(rng, 12, 4, 2500, 2), "ens3"),
                        nic("0000:80:00.0", 7, 160, hot_cold(rng, 16, 4, 2500, 2), "ens4",
                            "mlx5_core"),
                        nvme("0000:a0:00.0", 4, 180, rates(rng, 16, 300, 0.7), False)],
        "irqs": legacy(0, 1, 8, 9),
    })
    out.append({
        "name": "p_offline_isolated",
        "comment": "1 socket x 16 cores x 2 threads (32 CPUs); CPUs 28-31 offline, 2-5 isolated "
                   "(isolcpus), 6-7 nohz_full; a 48-queue NIC, an 8-queue NVMe.",
        "topology": {"packages": 1, "cores_per_package": 16, "threads_per_core": 2,
                     "offline": "28-31", "isolated": "2-5", "nohz_full": "6-7"},
        "pci_devices": [nic("0000:17:00.0", -1, 100, hot_cold(rng, 48, 22, 2000, 5), "ens1f0"),
                        nvme("0000:5e:00.0", -1, 150, rates(rng, 8, 400, 0.6), False)],
        "irqs": legacy(0, 1, 8, 9),
    })
    out.append({
        "name": "p_managed_nvme",
        "comment": "2 sockets x 4 cores x 2 threads, 2 nodes (16 CPUs); a managed 16-queue "
                   "NVMe on node 0 with uneven queues (fixed load) and a 24-queue NIC on node 0.",
        "topology": {"packages": 2, "cores_per_package": 4, "threads_per_core": 2,
                     "numa_nodes": 2},
        "pci_devices": [nvme("0000:5e:00.0", 0, 100, rates(rng, 16, 500, 1.0), True),
                        nic("0000:17:00.0", 0, 140, hot_cold(rng, 24, 8, 2500, 3), "ens1f0")],
        "irqs": legacy(0, 1, 8, 9),
    })
    out.append({
        "name": "p_noacct",
        "comment": "1 socket x 4 cores x 2 threads (8 CPUs), a kernel without IRQ time "
                   "accounting: /proc/stat irq and softirq stay 0; a 24-queue NIC, a 4-queue "
                   "NVMe.",
        "topology": {"packages": 1, "cores_per_package": 4, "threads_per_core": 2},
        "pci_devices": [nic("0000:17:00.0", -1, 100, hot_cold(rng, 24, 8, 3000, 3), "ens1f0"),
                        nvme("0000:5e:00.0", -1, 130, rates(rng, 4, 400, 0.5), False)],
        "irqs": legacy(0, 1, 8, 9),
        "harness": {"irq_time_accounting": False},
    })
    shift_rng = random.Random(1608 + SEED)
    first = hot_cold(shift_rng, 32, 8, 3000, 3)
    second = sorted(first, reverse=True)  # the hottest queues become the first ones
    out.append({
        "name": "p_shift",
        "comment": "2 sockets x 4 cores x 2 threads, 2 nodes (16 CPUs); a 32-queue NIC on node 1 "
                   "and an 8-queue one on node 0; from pass 5 the 32 queues' rates are "
                   "reshuffled (the load shifts half-way through a 10-pass run).",
        "topology": {"packages": 2, "cores_per_package": 4, "threads_per_core": 2,
                     "numa_nodes": 2},
        "pci_devices": [nic("0000:af:00.0", 1, 100, first, "ens2f0"),
                        nic("0000:17:00.0", 0, 140, hot_cold(shift_rng, 8, 8, 1000, 2), "ens1f0",
                            "i40e")],
        "irqs": legacy(0, 1, 8, 9),
        "harness": {"rate_shift": {"pass": 5, "rates": {
            str(101 + i): r for i, r in enumerate(second)}}},
    })
    out += hard_machines()
    return [with_history(d, accounting=d.get("harness", {}).get("irq_time_accounting", True))
            for d in out]


SAS = "0x010700"
#: Passes a benchmark run has; rates_by_pass keys are the /proc/stat read that starts a pass.
PASSES = 10


def queues(first_irq: int, rates_: list[int], name: str, **extra) -> list[dict]:
    return [{"irq": first_irq + i, "type": "msix", "name": f"{name}-{i}", "rate": r, **extra}
            for i, r in enumerate(rates_)]


def device(address: str, cls: str, node: int, irqs: list[dict], driver: str) -> dict:
    return {"address": address, "class": cls, "vendor": "0x8086", "device": "0x1000",
            "driver": driver, "numa_node": node, "irqs": irqs}


def light(first_irq: int, n: int, rate: int = 2) -> list[dict]:
    """n light platform IRQs (arm64 GIC style rows: ``GICv3  N Level  name``)."""
    return [{"irq": first_irq + i, "type": "legacy", "chip": "GICv3", "hwirq": 32 + i,
             "flow": None, "level": "Level", "name": f"plat{i}", "rate": rate,
             "affinity": "0"} for i in range(n)]


def unlike_history(rng: random.Random, desc: dict, cpus: int) -> dict:
    """Counts since boot unlike today's rates: each IRQ's spread over 1-3 random CPUs,
    totals drawn independently of its rate (what an earlier balancer and another load
    left behind)."""
    for q in [q for d in desc.get("pci_devices", []) for q in d["irqs"]]:
        if isinstance(q, dict) and q.get("rate"):
            picked = rng.sample(range(cpus), rng.randint(1, 3))
            q["counts"] = {str(c): int(rng.lognormvariate(13.0, 1.0)) for c in picked}
    return desc


def hard_machines() -> list[dict]:
    """Machines built to break a balancer that believes its own writes, a cost table,
    a per-move threshold or one pass's load."""
    out = []
    rng = random.Random(2307 + SEED)
    # 2 nodes x 24 CPUs (12 cores x 2 threads a socket, siblings 24 apart): node 0 =
    # 0-11,24-35. A 24-queue managed NVMe on node 0 whose queues the kernel spread over
    # two-CPU masks (writes refused), 24 i40e queues there with one-CPU hints, 16 on node 1.
    node0 = list(range(12)) + list(range(24, 36))
    nvme_q = queues(301, rates(rng, 24, 400, 0.8), "nvme0q", managed=True)
    for i, q in enumerate(nvme_q):
        q["name"] = f"nvme0q{i + 1}"
        q["affinity"] = f"{node0[i]},{node0[(i + 12) % 24]}"
    nic_q = queues(401, rates(rng, 24, 1500, 0.5), "i40e-ens2f0-TxRx")
    for i, q in enumerate(nic_q):
        q["affinity_hint"] = str(node0[i])
    nic2_q = queues(451, rates(rng, 16, 1500, 0.5), "i40e-ens3f0-TxRx")
    managed = {
        "name": "p_managed_2cpu",
        "comment": "2 nodes, 48 CPUs: a kernel-managed 24-queue NVMe on node 0 whose queues "
                   "have two-CPU masks (the kernel fires each on one of them; writes refused) "
                   "and 24 hinted i40e queues on node 0 too; a 16-queue i40e on node 1.",
        "topology": {"packages": 2, "cores_per_package": 12, "threads_per_core": 2,
                     "numa_nodes": 2},
        "pci_devices": [
            device("0000:5e:00.0", NVME, 0, [{"irq": 300, "type": "msix", "name": "nvme0q0",
                                              "rate": 2}] + nvme_q, "nvme"),
            device("0000:3b:00.0", NET, 0, [{"irq": 400, "type": "msix",
                                             "name": "i40e-0000:3b:00.0:misc", "rate": 1}]
                   + nic_q, "i40e"),
            device("0000:af:00.0", NET, 1, [{"irq": 450, "type": "msix",
                                             "name": "i40e-0000:af:00.0:misc", "rate": 1}]
                   + nic2_q, "i40e"),
        ],
        "irqs": legacy(0, 1, 8, 9),
    }
    out.append(managed)
    boot = json.loads(json.dumps(managed))
    boot["name"] = "p_managed_2cpu_boot"
    boot["comment"] = managed["comment"] + " Counts since boot unlike today's rates."
    out.append(unlike_history(random.Random(2308 + SEED), boot, 48))

    # 24 CPUs: 16 SAS vectors and 16 NIC queues all effective on CPU0 at start, each IRQ
    # with its own cost per interrupt (2-40 us)
    sas = queues(100, [rng.randint(300, 1500) for _ in range(16)], "mpt3sas0-msix")
    nicq = queues(130, [rng.randint(300, 1500) for _ in range(16)], "ens1f0-TxRx")
    for q in sas + nicq:
        q["effective_affinity"] = "0"
        q["irq_cost_ns"] = rng.choice([1000, 2000, 4000, 8000])
        q["softirq_cost_ns"] = rng.choice([1000, 6000, 15000, 30000])
    out.append({
        "name": "p_sas_cpu0",
        "comment": "24 CPUs, 16 SAS vectors and 16 NIC queues all firing on CPU0 at start, "
                   "per-IRQ costs unequal (2-38 us an interrupt).",
        "topology": {"packages": 1, "cores_per_package": 12, "threads_per_core": 2},
        "pci_devices": [device("0000:03:00.0", SAS, -1, sas, "mpt3sas"),
                        device("0000:17:00.0", NET, -1, nicq, "ixgbe")],
        "irqs": legacy(0, 1, 8, 9),
    })

    # AMD-like: 1 socket, 48 cores x 2 threads, NPS4 (4 nodes of 12 cores); two NVMe with
    # managed queues spread over 3-CPU groups, a 32-queue NIC on node 1
    def managed_nvme(addr: str, node: int, first: int, n: int) -> dict:
        cpus = [c for c in range(96) if (c % 48) // 12 == node]
        qs = queues(first + 1, rates(rng, n, 700, 0.7), "nvmeq", managed=True)
        for i, q in enumerate(qs):
            q["affinity"] = ",".join(str(cpus[(3 * i + k) % len(cpus)]) for k in range(3))
        return device(addr, NVME, node, [{"irq": first, "type": "msix", "name": "nvmeq0",
                                          "rate": 2}] + qs, "nvme")
    out.append({
        "name": "p_amd_nps4",
        "comment": "AMD-like 96 CPUs (48 cores x 2 threads, NPS4: 4 nodes), two NVMe with "
                   "8 managed queues on 3-CPU masks, a 32-queue NIC on node 1.",
        "topology": {"packages": 1, "cores_per_package": 48, "threads_per_core": 2,
                     "numa_nodes": 4,
                     "caches": [{"index": 3, "level": 3, "size": "32768K",
                                 "shared_by": {"cores": 8}}]},
        "pci_devices": [managed_nvme("0000:41:00.0", 0, 100, 8),
                        managed_nvme("0000:c1:00.0", 2, 120, 8),
                        nic("0000:81:00.0", 1, 140, hot_cold(rng, 32, 24, 1500, 4), "ens3")],
        "irqs": legacy(0, 1, 8, 9),
    })

    def on_cpu0(name: str, comment: str, cores: int, threads: int, n: int, rate: int,
                cpu: str = "0", extra: list[dict] | None = None) -> dict:
        qs = queues(100, [rate + (i % 3) for i in range(n)], "ens1f0-TxRx", affinity=cpu)
        return {"name": name, "comment": comment,
                "topology": {"packages": 1, "cores_per_package": cores,
                             "threads_per_core": threads},
                "pci_devices": [device("0000:17:00.0", NET, -1, qs, "ice")],
                "irqs": legacy(0, 1, 8, 9) + (extra or [])}
    out.append(on_cpu0("p_cpu0_48q", "48 CPUs, 48 equal NIC queues whose mask is CPU 0 "
                       "(an irqaffinity=0 boot).", 24, 2, 48, 1500))
    out.append(on_cpu0("p_cpu0_64q", "32 CPUs, 64 equal NIC queues whose mask is CPU 0.",
                       16, 2, 64, 800))
    out.append(on_cpu0("p_gic_600", "32 CPUs, arm64 GIC style: 16 NIC queues and 600 light "
                       "platform IRQs, all with the mask CPU 0.", 16, 2, 16, 1500,
                       extra=light(1000, 600, 20)))
    out.append(on_cpu0("p_crowd24", "8 CPUs, 24 equal NIC queues crowded on CPU 5.",
                       4, 2, 24, 1200, cpu="5"))

    # no IRQ time accounting, costs unlike any table: NVMe 25 us an interrupt, NIC 4 us
    nvme_c = queues(150, rates(rng, 8, 500, 0.5), "nvme0q", irq_cost_ns=15000,
                    softirq_cost_ns=10000)
    nic_c = queues(100, hot_cold(rng, 24, 8, 3000, 3), "ens1f0-TxRx", irq_cost_ns=1000,
                   softirq_cost_ns=3000)
    out.append({
        "name": "p_noacct_costs",
        "comment": "8 CPUs, no IRQ time accounting; an NVMe interrupt costs 25 us, a NIC one "
                   "4 us (storage dearer than network, unlike any per-class guess).",
        "topology": {"packages": 1, "cores_per_package": 4, "threads_per_core": 2},
        "pci_devices": [device("0000:17:00.0", NET, -1, nic_c, "ice"),
                        device("0000:5e:00.0", NVME, -1, nvme_c, "nvme")],
        "irqs": legacy(0, 1, 8, 9),
        "harness": {"irq_time_accounting": False},
    })

    # load that changes every pass: bursts, oscillation, a random hot set
    def changing(name: str, comment: str, schedule) -> dict:
        base = hot_cold(rng, 32, 16, 1500, 4)
        by_pass = {str(p): {str(100 + i): r for i, r in enumerate(schedule(p, base))}
                   for p in range(2, PASSES + 2)}
        return {"name": name, "comment": comment,
                "topology": {"packages": 1, "cores_per_package": 8, "threads_per_core": 2},
                "pci_devices": [device("0000:17:00.0", NET, -1, queues(100, base, "ens1f0-TxRx"),
                                       "ice")],
                "irqs": legacy(0, 1, 8, 9),
                "harness": {"rates_by_pass": by_pass}}
    burst_rng = random.Random(2309 + SEED)

    def bursty(p: int, base: list[int]) -> list[int]:
        hot = set(burst_rng.sample(range(len(base)), 3))
        return [r * 5 if i in hot else r for i, r in enumerate(base)]

    def oscillating(p: int, base: list[int]) -> list[int]:
        return [r * 3 if (i % 2) == (p % 2) else r for i, r in enumerate(base)]

    def random_hot(p: int, base: list[int]) -> list[int]:
        hot = set(burst_rng.sample(range(len(base)), 8))
        return [3000 if i in hot else 200 for i in range(len(base))]
    out.append(changing("p_bursty", "16 CPUs, 32 NIC queues; every pass 3 random queues "
                        "fire 5x their rate.", bursty))
    out.append(changing("p_oscillating", "16 CPUs, 32 NIC queues; odd and even queues take "
                        "turns at 3x their rate.", oscillating))
    out.append(changing("p_random_hot", "16 CPUs, 32 NIC queues; every pass a new random "
                        "set of 8 is hot (3000 a pass), the rest cold (200).", random_hot))

    # the kernel spreads each IRQ over its mask; writes reverted; a lagging effective CPU
    def plain(name: str, comment: str, harness: dict | None = None, **q_extra) -> dict:
        qs = queues(100, hot_cold(rng, 32, 16, 2000, 4), "ens1f0-TxRx")
        for q in qs[::2]:
            q.update(q_extra)
        desc = {"name": name, "comment": comment,
                "topology": {"packages": 1, "cores_per_package": 8, "threads_per_core": 2},
                "pci_devices": [device("0000:17:00.0", NET, -1, qs, "ice"),
                                nvme("0000:5e:00.0", -1, 150, rates(rng, 8, 400, 0.6), False)],
                "irqs": legacy(0, 1, 8, 9)}
        if harness:
            desc["harness"] = harness
        return desc
    out.append(plain("p_spread", "16 CPUs, 32 NIC queues and an NVMe; the kernel spreads "
                     "each IRQ's interrupts over the online CPUs of its mask.",
                     {"delivery": "spread"}))
    out.append(plain("p_revert", "16 CPUs, 32 NIC queues; every other queue's mask is put "
                     "back by the kernel after a write (no error), starting on two CPUs.",
                     reverts=True, affinity="2,3"))
    out.append(plain("p_lag", "16 CPUs, 32 NIC queues and an NVMe; effective_affinity shows "
                     "the old CPU for a pass after a move (x86: until the IRQ next fires).",
                     {"lag_effective": True}))
    # unequal costs on one CPU: 16 queues of equal rates on CPU 2, 2-40 us an interrupt
    uneq = queues(100, [1000] * 16, "ens1f0-TxRx", effective_affinity="2")
    for i, q in enumerate(uneq):
        q["irq_cost_ns"], q["softirq_cost_ns"] = 1000 + 500 * i, 1000 + 2000 * (i % 5) * i // 4
    out.append({
        "name": "p_unequal_costs",
        "comment": "8 CPUs, 16 NIC queues with equal rates firing on CPU 2 at start, each "
                   "with its own cost per interrupt.",
        "topology": {"packages": 1, "cores_per_package": 4, "threads_per_core": 2},
        "pci_devices": [device("0000:17:00.0", NET, -1, uneq, "ixgbe")],
        "irqs": legacy(0, 1, 8, 9),
    })
    # CPU hotplug: two CPUs holding queues go offline (the kernel moves their IRQs), then
    # come back
    hot_rng = random.Random(2310 + SEED)
    hotplug = {
        "name": "p_hotplug",
        "comment": "16 CPUs, 32 NIC queues and an NVMe; CPUs 5 and 13 go offline for three "
                   "passes (the kernel moves their IRQs to CPUs of their masks), then come back.",
        "topology": {"packages": 1, "cores_per_package": 8, "threads_per_core": 2},
        "pci_devices": [device("0000:17:00.0", NET, -1,
                               queues(100, hot_cold(hot_rng, 32, 16, 2000, 4), "ens1f0-TxRx"),
                               "ice"),
                        nvme("0000:5e:00.0", -1, 150, rates(hot_rng, 8, 400, 0.6), False)],
        "irqs": legacy(0, 1, 8, 9),
        "harness": {"hotplug": [{"pass": 4, "offline": [5, 13]}, {"pass": 7, "online": [5, 13]}]},
    }
    out.append(hotplug)
    return out


def main() -> int:
    global SEED
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", nargs="?", type=Path, default=ROOT / "tests" / "machines")
    ap.add_argument("--seed", type=int, default=0,
                    help="draw the families with other seeds (names get a _sN suffix); "
                         "0: the committed machines")
    a = ap.parse_args()
    SEED = a.seed
    try:
        a.outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"placement_machines.py: cannot create {a.outdir}: {e.strerror}", file=sys.stderr)
        return 1
    for desc in machines():
        if SEED:
            desc["name"] += f"_s{SEED}"
        path = a.outdir / f"{desc['name']}.json"
        path.write_text(json.dumps(desc, indent=1) + "\n")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
