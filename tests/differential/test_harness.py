"""The harness itself: it captures exactly what a balancer wrote, pass by pass.

A stand-in balancer (standin_balancer.py) writes a round-robin layout that is
known in advance, half through smp_affinity and a third through
smp_affinity_list; the harness must report precisely those writes, with the
kernel's refusals for managed IRQs, and tell them apart from irqbalance's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.differential.conftest import expected, machine_path
from tests.oracle import harness

pytestmark = pytest.mark.differential

STANDIN = [sys.executable, str(Path(__file__).with_name("standin_balancer.py")), harness.SYSROOT]


def _round_robin(machine: str, shift: int) -> dict[int, int]:
    m = harness.load_machine(machine_path(machine))
    return {irq: 1 << m.online[(k + shift) % len(m.online)] for k, irq in enumerate(m.irqs)}


def _needs_a_stage():
    ok, _ = harness.can_unshare()
    if not ok and not Path("/dev/shm").is_dir():
        pytest.skip("no private namespace and no /dev/shm tmpfs to stage a tree")


def test_mask_cpus_reads_both_formats():
    assert harness.mask_cpus("00000008") == 0b1000
    assert harness.mask_cpus("00000000,00000008\n") == 0b1000
    assert harness.mask_cpus("00000001,00000000") == 1 << 32
    assert harness.mask_cpus("") is None
    assert harness.mask_cpus("0x1") is None
    assert harness.mask_cpus("123456789") is None


def test_compare_sorts_irqs_into_the_four_kinds():
    agreement = harness.compare(
        {1: "00000001", 2: "00000002", 3: "00000004"},
        {"1": "00000000,00000001", "2": "00000004", "4": "00000008"},
    )
    assert agreement.identical == (1,)
    assert agreement.differing == {2: ("00000002", "00000004")}
    assert agreement.only_a == {3: "00000004"}
    assert agreement.only_b == {4: "00000008"}
    assert agreement.ratio == 0.25
    assert harness.compare({}, {}).ratio == 1.0


def test_oneshot_captures_every_write_of_a_balancer(tmp_path):
    _needs_a_stage()
    res = harness.run_oneshot(STANDIN, machine_path("g_nvme_managed"), tmp_path)
    assert res.returncode == 0, res.log
    assert res.masks == _round_robin("g_nvme_managed", 0)
    # the managed NVMe queues and the IRQF_NOBALANCING timer
    assert res.kernel_would_reject == (0, 51, 52, 53, 54, 55, 56, 57, 58)
    assert harness.compare(expected("g_nvme_managed", "oneshot")["written"], res).ratio < 0.5


def test_cycles_capture_each_pass_and_the_kernels_answer(tmp_path):
    _needs_a_stage()
    res = harness.run_cycles(
        [*STANDIN, "--daemon"], machine_path("g_nvme_managed"), tmp_path, passes=3
    )
    assert res.returncode == 0, res.log
    assert not res.errors
    assert (res.stat_reads, res.interrupts_reads) == (4, 4)
    assert [p.index for p in res.passes] == [0, 1, 2, 3]
    assert res.passes[0].written == {}
    m = harness.load_machine(machine_path("g_nvme_managed"))
    for p in res.passes[1:]:
        want = _round_robin("g_nvme_managed", p.index - 1)
        # a write equal to what the kernel already holds is still a write (mtime)
        assert p.masks == want, p.index
        assert set(p.rejected) == {0, 51, 52, 53, 54, 55, 56, 57, 58}
    # accepted writes stick, refused ones keep the kernel's mask
    last = _round_robin("g_nvme_managed", 2)
    assert res.final_affinity[61] == str(last[61].bit_length() - 1)
    assert res.final_affinity[51] == m.irqs[51]["affinity"]


HOTPLUG = {
    "name": "hotplug4",
    "topology": {"packages": 1, "cores_per_package": 4},
    "pci_devices": [{
        "address": "0000:03:00.0", "class": "0x020000", "driver": "igb", "numa_node": -1,
        "irqs": [{"irq": 40 + i, "rate": 100} for i in range(4)],
    }],
    # CPU 1 goes offline in the window after pass 1's writes (the 2nd /proc/stat open)
    # and comes back in the window after pass 3's (the 4th)
    "harness": {"hotplug": [{"pass": 2, "offline": [1]}, {"pass": 4, "online": [1]}]},
}


def test_cycles_take_a_cpu_offline_and_back(tmp_path):
    # The stand-in reads the online CPUs once (0-3) and its pass p gives IRQ 40+k CPU
    # (k + p - 1) % 4. While CPU 1 is offline (windows of passes 1 and 2) nothing fires there
    # and nothing is effective there: IRQ 41, which pass 1 put there, moved to another CPU,
    # and a write naming only CPU 1 is refused (no online CPU in the mask): pass 2's (IRQ 40)
    # and pass 3's (IRQ 43), answered before CPU 1 comes back for the window after them.
    # Back online, pass 4 sends IRQ 42 there ((2 + 3) % 4 = 1) and it fires there.
    _needs_a_stage()
    res = harness.run_cycles([*STANDIN, "--daemon"], HOTPLUG, tmp_path, passes=5)
    assert res.returncode == 0, res.log
    assert not res.errors
    by_index = {p.index: p for p in res.passes}
    for i in (1, 2):
        assert 1 not in by_index[i].effective.values(), i
        assert by_index[i].fired.get(1, 0) == 0, i
    # pass 2 gives CPU 1 to IRQ 40 ((0 + 1) % 4): refused while CPU 1 is offline
    assert by_index[2].rejected == {40: "EINVAL (no online CPU in mask)"}
    assert by_index[1].written[41] and by_index[1].effective[41] != 1
    assert by_index[3].rejected == {43: "EINVAL (no online CPU in mask)"}
    assert by_index[4].effective[42] == 1
    assert by_index[4].fired[1] == 100 * (2000 + 8000)  # IRQ 42 alone, 10 us an interrupt
