#!/usr/bin/env python3
"""Write the placement-quality machines (tests/machines/p_*.json), fixed seeds.

    python3 benchmarks/placement_machines.py [OUTDIR]

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

import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
    rng = random.Random(1601)
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
    shift_rng = random.Random(1608)
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
    return [with_history(d, accounting=d.get("harness", {}).get("irq_time_accounting", True))
            for d in out]


def main() -> int:
    outdir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "machines"
    for desc in machines():
        path = outdir / f"{desc['name']}.json"
        path.write_text(json.dumps(desc, indent=1) + "\n")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
