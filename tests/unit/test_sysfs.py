"""pyirqbalance.kernel.sysfs on real sysfs captures, generated machines and hand-made trees.

Expected values were read off the captured files themselves (tests/fixtures/sys,
provenance in tests/fixtures/SOURCES.md), from the machine description for mkfake
trees, or from the C semantics irqbalance 1.9 relies on (strtoul, strtol,
cputree.c/numa.c/classify.c) for the parsers. Order checks compare with
``os.listdir`` of the same directory, never with a sorted list.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyirqbalance.kernel import sysfs
from pyirqbalance.kernel.cpumask import mask_of, parse_cpulist
from pyirqbalance.kernel.sysfs import CacheIndex, NodeDir
from pyirqbalance.kernel.sysroot import SysRoot
from tests.conftest import Dir, Symlink
from tests.oracle.kernfs import KernfsSysRoot
from tests.oracle.mkfake import kernfs_order

ULONG_MAX = 2**64 - 1


def cpus(text: str) -> int:
    """A CPU set written as a list, for readable expectations."""
    return parse_cpulist(text)


def real(fixtures_dir, source: str) -> SysRoot:
    return SysRoot(fixtures_dir / "sys" / source)


def by_cpu(facts: sysfs.CpuFacts) -> dict[int, sysfs.CpuDir]:
    return {d.cpu: d for d in facts.dirs}


def by_name(devices) -> dict[str, sysfs.PciDevice]:
    return {d.name: d for d in devices}


def listed_cpus(root: SysRoot) -> list[int]:
    """cpuN entries of the cpu directory in os.listdir order."""
    names = os.listdir(root.sys("devices", "system", "cpu"))
    return [int(n[3:]) for n in names if n.startswith("cpu") and n[3:].isdecimal()]


EPYC = "util-linux/extracted/x86_64-epyc_7451"
HWLOC_PCI = "open-mpi-hwloc/extracted/32em64t-2n8c+dax+nvme+mic+dimms"
HWLOC_OFFLINES = "open-mpi-hwloc/extracted/16em64t-4s2c2t-offlines"
HWLOC_CPU0 = "open-mpi-hwloc/extracted/offline-cpu0-node0"
NODE_EXPORTER = "prometheus-node_exporter"
ARM = "util-linux/extracted/arm-A510-A710-A715-X3"
THIS_VM = "this-vm"
HYPERV = "jds2001-coreos-sosreport-master1"


# --------------------------------------------------------------------------
# pure parsers (C semantics irqbalance relies on)
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "base", "value"),
    [
        ("0x010802\n", 16, 0x010802),
        ("10de\n", 16, 0x10DE),
        ("0X1af4", 16, 0x1AF4),
        ("0x", 16, 0),  # "0x" without a hex digit: strtoul parses the "0"
        ("0xg", 16, 0),
        ("  \t42\n", 10, 42),
        ("+7", 10, 7),
        ("-1\n", 10, ULONG_MAX),
        ("-1", 16, ULONG_MAX),
        ("12abc", 10, 12),
        ("99999999999999999999999", 10, ULONG_MAX),  # ERANGE saturates
        ("18446744073709551615", 10, ULONG_MAX),
        ("18446744073709551616", 10, ULONG_MAX),
        ("-18446744073709551616", 10, ULONG_MAX),
        ("0" * 5000 + "7", 10, 7),
        ("9" * 5000, 10, ULONG_MAX),  # beyond Python's int("...") digit limit: no error
        ("f" * 17, 16, ULONG_MAX),
        ("abc", 10, None),
        ("", 10, None),
        ("-", 10, None),
        ("\u0663", 10, None),  # ARABIC-INDIC DIGIT THREE: not a C digit
    ],
)
def test_parse_strtoul(text, base, value):
    assert sysfs.parse_strtoul(text, base) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [("-1\n", -1), ("0\n", 0), ("4294967295", -1), ("2147483648", -(2**31)), ("8191\n", 8191),
     ("x", None), ("\n", None)],
)
def test_parse_int_is_a_c_int(text, value):
    assert sysfs.parse_int(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [("0x010802\n", 0x010802), ("0x0000\n", 0), ("0xffffffff\n", None), ("-1", None),
     ("0x1ffffffff", None), ("0xffffffff0", 0xFFFFFFF0), ("zz", None)],
)
def test_parse_hex_is_an_unsigned_int_with_invalid_marker(text, value):
    assert sysfs.parse_hex(text) == value


@pytest.mark.parametrize(
    ("line", "value"),
    [
        (None, None),
        ("\n", 0),  # get_mask_from_cpulist's guard: cpulist_parse("\n") would be CPU 0
        ("(null)\n", 0),
        (" " * 90 + "(null)\n", 0),
        ("\0\n", 0),
        ("1,3-5,9\n", mask_of([1, 3, 4, 5, 9])),
        ("1, 2\n", mask_of([1])),  # irqbalance keeps what it parsed before the error
        ("0-15:2/4\n", 0),
    ],
)
def test_parse_irqbalance_cpulist(line, value):
    assert sysfs.parse_irqbalance_cpulist(line) == value


@pytest.mark.parametrize(
    ("line", "value"),
    [(None, None), ("ff\n", 0xFF), ("00000000,00000001\n", 1), ("ff\0ff\n", 0xFF),
     ("1,,5\n", 1), ("zz\n", 0)],
)
def test_parse_irqbalance_mask(line, value):
    assert sysfs.parse_irqbalance_mask(line) == value


def test_strict_parsers_report_garbage_as_none():
    assert sysfs.parse_strict_mask("00000000,00000006\n") == 6
    assert sysfs.parse_strict_mask("zz\n") is None
    assert sysfs.parse_strict_mask("1,,5\n") is None
    assert sysfs.parse_strict_cpulist("2,50\n") == mask_of([2, 50])
    assert sysfs.parse_strict_cpulist("\n") == 0
    assert sysfs.parse_strict_cpulist("1-\n") is None
    assert sysfs.parse_strict_cpulist("9" * 5000 + "\n") is None
    assert sysfs.parse_strict_cpulist(None) is None


@pytest.mark.parametrize(
    ("line", "value"), [("1\n", True), ("0\n", False), ("2\n", None), ("on\n", None), (None, None)]
)
def test_parse_online_flag(line, value):
    assert sysfs.parse_online_flag(line) is value


@pytest.mark.parametrize(
    ("name", "number"),
    [("cpu0", 0), ("cpu127", 127), ("cpu007", 7), ("cpufreq", None), ("cpuidle", None),
     ("cpu", None), ("cpu1 ", None), ("cpu-1", None), ("cpu+1", None), ("cpu1a", None),
     ("node0", None)],
)
def test_cpu_dir_number(name, number):
    assert sysfs.cpu_dir_number(name) == number


@pytest.mark.parametrize(
    ("name", "number"),
    [
        ("node0", 0),
        ("node12", 12),
        ("node+3", 3),  # strtol takes a sign
        ("node", 0),  # strtol of "" consumes nothing and *end is already NUL
        ("node-1", None),  # negative: rejected
        ("node1x", None),  # trailing text: rejected
        ("nodes", None),
        ("node2147483648", None),  # the long truncated to int is negative
        ("node-99999999999999999999", 0),  # LONG_MIN truncated to int is 0
        ("power", None),
    ],
)
def test_cpu_node_entry_number_follows_irqbalance_strtol(name, number):
    assert sysfs.cpu_node_entry_number(name) == number


@pytest.mark.parametrize(
    ("name", "number"),
    [("node1", 1), ("node01", 1), ("node1abc", 1), ("nodes", None), ("node", None),
     ("has_cpu", None), ("online", None)],
)
def test_node_dir_number_follows_irqbalance(name, number):
    assert sysfs.node_dir_number(name) == number


@pytest.mark.parametrize(
    ("name", "number"), [("46", 46), ("0", 0), ("mode", 0), ("12abc", 12), ("-3", -3), (".", 0),
     ("99999999999999999999", -1), ("9" * 5000, -1)],  # LONG_MAX truncated to int
)
def test_msi_irq_number_is_strtol(name, number):
    assert sysfs.msi_irq_number(name) == number


# --------------------------------------------------------------------------
# real captures: CPUs
# --------------------------------------------------------------------------


def test_epyc_7451_cpus(fixtures_dir):
    root = real(fixtures_dir, EPYC)
    facts = sysfs.read_cpu_facts(root)
    assert [d.cpu for d in facts.dirs] == listed_cpus(root)
    assert sorted(d.cpu for d in facts.dirs) == list(range(96))
    assert facts.online == cpus("0-95")
    assert facts.isolated == 0  # "\n"
    # this kernel pads nohz_full with 90 spaces before "(null)"
    assert facts.nohz_full == 0

    cpu = by_cpu(facts)
    assert cpu[0].online_file is None  # cpu0 has no online file
    assert sum(d.online_file is True for d in facts.dirs) == 95
    assert [d.package_id for d in facts.dirs].count(0) == 48
    assert [d.package_id for d in facts.dirs].count(1) == 48
    assert [d.node for d in facts.dirs].count(3) == 12

    c50 = cpu[50]
    assert (c50.package_id, c50.core_id, c50.node) == (0, 2, 0)
    assert c50.core_siblings == cpus("0-23,48-71")
    assert c50.thread_siblings == cpus("2,50")
    assert [(c.index, c.level, c.type, c.size) for c in c50.caches] == [
        (0, 1, "Data", "32K"),
        (1, 1, "Instruction", "64K"),
        (2, 2, "Unified", "512K"),
        (3, 3, "Unified", "8192K"),
    ]
    assert c50.caches[2].shared_cpu_map == cpus("2,50")
    # L3 per CCX: 3 cores x 2 threads, not the NUMA node (6 cores)
    assert c50.caches[3].shared_cpu_map == c50.caches[3].shared_cpu_list == cpus("0-2,48-50")
    assert cpu[95].core_siblings == cpus("24-47,72-95")
    assert cpu[95].node == 7


def test_epyc_7451_nodes(fixtures_dir):
    root = real(fixtures_dir, EPYC)
    nodes = sysfs.read_node_facts(root)
    assert nodes.present
    names = [n for n in os.listdir(root.sys("devices", "system", "node")) if n.startswith("node")]
    assert [f"node{n.node}" for n in nodes.nodes] == names
    nd = {n.node: n for n in nodes.nodes}
    assert sorted(nd) == list(range(8))
    assert nd[0] == NodeDir(0, cpus("0-5,48-53"))
    assert nd[7].cpumap == cpus("42-47,90-95")


def test_hwloc_offline_cpus_signalled_only_by_cpu_online_files(fixtures_dir):
    root = real(fixtures_dir, HWLOC_OFFLINES)
    facts = sysfs.read_cpu_facts(root)
    assert [d.cpu for d in facts.dirs] == listed_cpus(root)
    # no top-level list files at all: irqbalance would see no online CPU
    assert (facts.online, facts.isolated, facts.nohz_full) == (None, None, None)
    cpu = by_cpu(facts)
    offline = {2, 5, 13, 14}
    assert {d.cpu for d in facts.dirs if d.online_file is False} == offline
    assert all(d.online_file is None for d in facts.dirs if d.cpu not in offline)
    for n in offline:  # an offline CPU directory holds only "online"
        assert (cpu[n].package_id, cpu[n].core_siblings, cpu[n].caches) == (None, None, ())
    assert (cpu[0].package_id, cpu[0].core_siblings) == (0, cpus("0,4,8,12"))
    assert (cpu[1].package_id, cpu[1].core_siblings) == (1, cpus("1,9"))
    assert [c.index for c in cpu[0].caches] == [0, 1, 2]
    assert all(d.node is None for d in facts.dirs)
    assert [(n.node, n.cpumap) for n in sysfs.read_node_facts(root).nodes] == [(0, cpus("0-15"))]


def test_hwloc_offline_cpu0_and_missing_node0(fixtures_dir):
    root = real(fixtures_dir, HWLOC_CPU0)
    facts = sysfs.read_cpu_facts(root)
    assert facts.online == cpus("4-20")
    assert facts.nohz_full == 0  # "\0\n": a NUL byte, then newline
    cpu = by_cpu(facts)
    assert len(cpu) == 24
    # offline cpu0: online=0, no topology, but its caches and node link were kept
    assert (cpu[0].online_file, cpu[0].package_id, cpu[0].node) == (False, None, 0)
    assert cpu[0].caches[3].shared_cpu_map == mask_of(range(4, 21, 2))
    assert (cpu[5].online_file, cpu[5].package_id, cpu[5].node) == (True, 1, 1)
    assert cpu[5].core_siblings == mask_of(range(5, 20, 2))

    nodes = sysfs.read_node_facts(root)
    # node0 is linked from the CPUs but has no directory
    assert nodes.nodes == (NodeDir(1, mask_of(range(5, 20, 2))),)


def test_node_exporter_cpu_less_node_and_isolated(fixtures_dir):
    root = real(fixtures_dir, NODE_EXPORTER)
    facts = sysfs.read_cpu_facts(root)
    assert facts.online == cpus("0-3")
    assert facts.isolated == cpus("1,3-5,9")
    assert facts.nohz_full is None
    assert [(d.cpu, d.package_id, d.core_id) for d in sorted(facts.dirs, key=lambda d: d.cpu)] == [
        (0, 0, 0), (1, 0, 1), (2, 1, 0), (3, 1, 1),
    ]
    assert all(d.core_siblings is None and d.caches == () for d in facts.dirs)

    nodes = {n.node: n for n in sysfs.read_node_facts(root).nodes}
    # only cpulist was captured: cpumap is irqbalance's empty default
    assert nodes == {
        0: NodeDir(0, 0),
        1: NodeDir(1, 0),
        2: NodeDir(2, 0),  # CPU-less node
    }


def test_arm_big_little_without_numa(fixtures_dir):
    root = real(fixtures_dir, ARM)
    facts = sysfs.read_cpu_facts(root)
    assert facts.online == cpus("0-7")
    cpu = by_cpu(facts)
    assert [d.package_id for d in facts.dirs].count(1) == 4
    c3 = cpu[3]
    assert (c3.package_id, c3.die_id, c3.node) == (1, -1, None)
    assert c3.core_siblings == c3.package_cpus == cpus("3-6")
    assert c3.core_cpus == cpus("3")
    assert [c.shared_cpu_map for c in c3.caches] == [cpus("3"), cpus("3"), cpus("3"), cpus("0-7")]
    assert all(c.size is None for c in c3.caches)  # not captured
    assert cpu[7].core_siblings == cpus("7")
    assert sysfs.read_node_facts(root) == sysfs.NodeFacts((), False)


def test_hyperv_guest(fixtures_dir):
    root = real(fixtures_dir, HYPERV)
    facts = sysfs.read_cpu_facts(root)
    assert [d.cpu for d in facts.dirs] == listed_cpus(root)
    assert facts.nohz_full == 0  # "(null)\n"
    for d in facts.dirs:
        assert (d.online_file, d.package_id, d.core_id, d.node) == (True, 0, 0, 0)
        assert d.core_siblings == d.thread_siblings == cpus("0-1")  # SMT sibling pair
        assert d.caches[3] == CacheIndex(3, 3, "Unified", cpus("0-1"), cpus("0-1"), "14080K")
    assert not sysfs.read_node_facts(root).present


def test_this_vm_with_recreated_links(fixtures_dir):
    root = real(fixtures_dir, THIS_VM)
    facts = sysfs.read_cpu_facts(root)
    assert (facts.online, facts.nohz_full) == (cpus("0-1"), None)
    c0 = by_cpu(facts)[0]
    assert (c0.node, c0.die_id, c0.cluster_id) == (0, 0, 65535)
    assert c0.caches[3].shared_cpu_map == cpus("0-1")
    nodes = sysfs.read_node_facts(root)
    assert nodes.nodes == (NodeDir(0, cpus("0-1")),)


# --------------------------------------------------------------------------
# real captures: PCI
# --------------------------------------------------------------------------


def test_hwloc_pci_devices(fixtures_dir):
    root = real(fixtures_dir, HWLOC_PCI)
    devices = sysfs.read_pci_devices(root)
    assert [d.name for d in devices] == os.listdir(root.sys("bus", "pci", "devices"))
    assert len(devices) == 137
    assert sum(d.msi_irqs is not None for d in devices) == 29
    assert sum(d.driver is not None for d in devices) == 48
    dev = by_name(devices)

    nvme = dev["0000:00:02.0"]
    assert (nvme.class_code, nvme.vendor, nvme.device) == (0x010802, 0x8086, 0x0953)
    assert (nvme.subsystem_vendor, nvme.subsystem_device) == (0x8086, 0x3709)
    assert (nvme.numa_node, nvme.local_cpus, nvme.legacy_irq, nvme.driver) == (-1, 0xF, 16, "nvme")
    msi_dir = os.path.join(root.sys("bus", "pci", "devices", "0000:00:02.0"), "msi_irqs")
    assert nvme.msi_irqs == tuple(int(n) for n in os.listdir(msi_dir))
    assert sorted(nvme.msi_irqs) == list(range(46, 54))

    # pre-3.14 kernels: msi_irqs/N are directories (holding "mode"); same numbers
    mlx = dev["0000:82:00.0"]
    assert (mlx.class_code, mlx.numa_node, mlx.local_cpus) == (0x028000, 1, cpus("8-15"))
    assert (mlx.driver, mlx.legacy_irq) == ("mlx4_core", 58)
    assert sorted(mlx.msi_irqs) == list(range(120, 248))
    assert dev["0000:00:1f.2"].msi_irqs == (84,)
    assert (dev["0000:00:1f.2"].driver, dev["0000:00:1f.2"].numa_node) == ("ahci", 0)

    host = dev["0000:00:00.0"]
    assert (host.class_code, host.msi_irqs, host.legacy_irq, host.driver) == (
        0x060000, None, 0, None)


def test_hwloc_pci_numa_and_cpus(fixtures_dir):
    root = real(fixtures_dir, HWLOC_PCI)
    facts = sysfs.read_cpu_facts(root)
    assert facts.online == cpus("0-15")
    assert all(d.node is None for d in facts.dirs)  # this capture has no cpuN/nodeK links
    nodes = sysfs.read_node_facts(root)
    assert {n.node: n.cpumap for n in nodes.nodes} == {0: cpus("0-7"), 1: cpus("8-15")}


def test_node_exporter_pci(fixtures_dir):
    root = real(fixtures_dir, NODE_EXPORTER)
    dev = by_name(sysfs.read_pci_devices(root))
    assert list(dev) == os.listdir(root.sys("bus", "pci", "devices"))
    nvme = dev["0000:01:00.0"]
    assert (nvme.class_code, nvme.vendor, nvme.numa_node, nvme.legacy_irq) == (
        0x010802, 0xC0A9, -1, 80)
    assert sorted(nvme.msi_irqs) == list(range(81, 90))
    assert nvme.driver is None  # no driver links in this capture
    igb = dev["0000:45:00.0"]
    assert (igb.class_code, igb.numa_node) == (0x020000, 0)
    assert igb.local_cpus == cpus("0-63,128-191")


def test_this_vm_pci(fixtures_dir):
    root = real(fixtures_dir, THIS_VM)
    devices = sysfs.read_pci_devices(root)
    assert [d.name for d in devices] == os.listdir(root.sys("bus", "pci", "devices"))
    dev = by_name(devices)
    assert len(dev) == 6
    net = dev["0000:00:03.0"]
    assert (net.class_code, net.vendor, net.device) == (0x020000, 0x1AF4, 0x1041)
    assert (net.numa_node, net.local_cpus, net.legacy_irq, net.driver) == (-1, 3, 0, "virtio-pci")
    assert sorted(net.msi_irqs) == [37, 38, 39]
    assert dev["0000:00:01.0"].class_code == 0xFFFF00
    assert (dev["0000:00:00.0"].msi_irqs, dev["0000:00:00.0"].driver) == (None, None)
    assert sysfs.read_pci_device(root, "0000:00:03.0") == net
    assert sysfs.read_pci_device(root, "0000:00:09.0") is None
    assert sysfs.read_pci_device(root, "..") is None
    assert sysfs.pci_device_path(root, "0000:00:03.0") == root.sys(
        "bus", "pci", "devices", "0000:00:03.0")


# --------------------------------------------------------------------------
# generated machines (mkfake) against their description
# --------------------------------------------------------------------------


def test_fake_two_socket_machine(fake_machine):
    root, m = fake_machine("b_2s64")
    facts = sysfs.read_cpu_facts(root)
    assert sorted(d.cpu for d in facts.dirs) == m.possible
    assert facts.online == mask_of(m.online)
    for d in facts.dirs:
        desc = m.cpu_by_id[d.cpu]
        assert (d.package_id, d.node) == (desc["package"], desc["node"])
        assert d.core_siblings == mask_of(m.siblings(d.cpu, "package"))
    nodes = sysfs.read_node_facts(root)
    assert {n.node: n.cpumap for n in nodes.nodes} == {
        k: mask_of(v) for k, v in m.node_cpus.items()}
    dev = by_name(sysfs.read_pci_devices(root))
    assert sorted(dev) == sorted(d["address"] for d in m.devices)
    for d in m.devices:
        got = dev[d["address"]]
        assert got.class_code == int(str(d["class"]), 0)
        assert got.numa_node == d["numa_node"]
        assert got.driver == d.get("driver")
        msi = [q["irq"] for q in d.get("irqs", []) if q.get("type", "msix") in ("msi", "msix")]
        assert sorted(got.msi_irqs or ()) == sorted(msi)


# --------------------------------------------------------------------------
# missing and garbled files
# --------------------------------------------------------------------------


def test_empty_root_gives_empty_facts(make_tree):
    root = make_tree({"proc/interrupts": ""})
    facts = sysfs.read_cpu_facts(root)
    assert facts == sysfs.CpuFacts((), None, None, None)
    assert sysfs.read_node_facts(root) == sysfs.NodeFacts((), False)
    assert sysfs.read_pci_devices(root) == ()
    assert sysfs.read_pci_device(root, "0000:00:00.0") is None


def test_garbled_and_empty_cpu_files_never_raise(make_tree):
    c = "sys/devices/system/cpu"
    root = make_tree(
        {
            f"{c}/online": "",  # empty: as missing
            f"{c}/kernel_max": "lots\n",
            f"{c}/possible": "0-\n",
            f"{c}/cpu0/online": "maybe\n",
            f"{c}/cpu0/topology/physical_package_id": "abc\n",
            f"{c}/cpu0/topology/core_id": b"\xff\xfe\n",
            f"{c}/cpu0/topology/core_siblings": "zz\n",
            f"{c}/cpu0/topology/thread_siblings": "zz\n",
            f"{c}/cpu0/cache/index0/level": "L1\n",
            f"{c}/cpu0/cache/index0/shared_cpu_map": "",
            f"{c}/cpu0/cache/power/control": "auto\n",
            f"{c}/cpu0/cache/uevent": "",
            f"{c}/cpu1/online": "1\n",
        }
    )
    facts = sysfs.read_cpu_facts(root)
    assert facts.online is None
    cpu = by_cpu(facts)
    c0 = cpu[0]
    assert (c0.online_file, c0.package_id, c0.core_id) == (None, None, None)
    assert c0.core_siblings == 0  # irqbalance's parser zeroes the mask, then stops at "z"
    assert c0.thread_siblings is None
    assert c0.caches == (CacheIndex(0, None, None, None, None, None),)
    c1 = cpu[1]
    assert (c1.online_file, c1.package_id, c1.core_siblings, c1.caches, c1.node) == (
        True, None, None, (), None,
    )


def test_cache_indexes_are_ordered_by_number(make_tree):
    base = "sys/devices/system/cpu/cpu0/cache"
    files = {f"{base}/index{k}/level": f"{k}\n" for k in (3, 10, 1, 2)}
    files[f"{base}/indexes/level"] = "9\n"  # not index<N>
    root = make_tree(files)
    (cpu0,) = sysfs.read_cpu_facts(root).dirs
    assert [(c.index, c.level) for c in cpu0.caches] == [(1, 1), (2, 2), (3, 3), (10, 10)]


def test_node_dirs_are_real_directories_named_node_digit(make_tree):
    n = "sys/devices/system/node"
    root = make_tree(
        {
            f"{n}/node0/cpumap": "3\n",
            f"{n}/node01/cpulist": "5\n",  # irqbalance reads node1/cpumap for it: missing
            f"{n}/node7": "a file\n",
            f"{n}/nodeX/cpumap": "1\n",
            f"{n}/node3": Symlink("node0"),  # not DT_DIR
            f"{n}/power/control": "auto\n",
            f"{n}/online": "0-1\n",
        }
    )
    nodes = sysfs.read_node_facts(root)
    got = {d.node: d for d in nodes.nodes}
    assert set(got) == {0, 1}
    assert got[0] == NodeDir(0, 3)
    assert got[1] == NodeDir(1, 0)
    assert nodes.present


def test_pci_device_degradation(make_tree):
    p = "sys/devices/pci0000:00"
    b = "sys/bus/pci/devices"
    root = make_tree(
        {
            f"{p}/0000:00:01.0/class": "0xffffffff\n",  # a removed device reads all ones
            f"{p}/0000:00:01.0/vendor": "0x8086\n",
            f"{p}/0000:00:01.0/irq": "11\n",
            f"{p}/0000:00:01.0/msi_irqs": Dir(),  # present but empty
            f"{p}/0000:00:02.0/class": "0x020000\n",
            f"{p}/0000:00:02.0/numa_node": "-1\n",
            f"{p}/0000:00:02.0/msi_irqs/40": "msix\n",
            f"{p}/0000:00:02.0/msi_irqs/0": "msix\n",
            f"{p}/0000:00:02.0/msi_irqs/mode": "x\n",
            f"{p}/0000:00:02.0/driver": Symlink("../../../bus/pci/drivers/e1000e"),
            f"{b}/0000:00:01.0": Symlink("../../../devices/pci0000:00/0000:00:01.0"),
            f"{b}/0000:00:02.0": Symlink("../../../devices/pci0000:00/0000:00:02.0"),
            f"{b}/0000:00:03.0": Symlink("../../../devices/pci0000:00/0000:00:03.0"),  # dangling
        }
    )
    dev = by_name(sysfs.read_pci_devices(root))
    gone = dev["0000:00:01.0"]
    assert (gone.class_code, gone.vendor, gone.device, gone.legacy_irq, gone.msi_irqs) == (
        None, 0x8086, None, 11, (),
    )
    nic = dev["0000:00:02.0"]
    assert (nic.class_code, nic.numa_node, nic.legacy_irq, nic.local_cpus) == (
        0x020000, -1, None, None)
    assert nic.msi_irqs == (40,)
    assert nic.driver == "e1000e"
    assert dev["0000:00:03.0"] == sysfs.PciDevice(
        "0000:00:03.0", None, None, None, None, None, None, None, None, None, None
    )
    assert sysfs.read_pci_device(root, "0000:00:03.0") is None  # dangling: no device directory


# --------------------------------------------------------------------------
# raw readdir order
# --------------------------------------------------------------------------


def _shuffled(names: list[str]) -> list[str]:
    names = list(names)
    random.Random(7).shuffle(names)
    return names


def _assert_unsorted(listing: list[str], key) -> None:
    # The creation order is shuffled, so no filesystem lists these sorted by
    # accident; if one did, the order checks below would prove nothing.
    assert listing != sorted(listing, key=key), "filesystem listed the entries sorted"


def test_cpu_dirs_keep_readdir_order(make_tree):
    c = "sys/devices/system/cpu"
    files = {f"{c}/cpu{n}/online": "1\n" for n in _shuffled([str(i) for i in range(40)])}
    files[f"{c}/cpufreq/policy0"] = ""
    root = make_tree(files)
    listing = listed_cpus(root)
    _assert_unsorted(listing, None)
    assert [d.cpu for d in sysfs.read_cpu_facts(root).dirs] == listing


def test_node_dirs_keep_readdir_order(make_tree):
    n = "sys/devices/system/node"
    root = make_tree({f"{n}/node{k}/cpumap": f"{1 << k:x}\n" for k in _shuffled(range(24))})
    listing = os.listdir(root.sys("devices", "system", "node"))
    _assert_unsorted(listing, lambda s: int(s[4:]))
    nodes = sysfs.read_node_facts(root).nodes
    assert [f"node{d.node}" for d in nodes] == listing
    assert all(d.cpumap == 1 << d.node for d in nodes)


def test_pci_devices_and_msi_irqs_keep_readdir_order(make_tree):
    names = [f"0000:00:{i:02x}.0" for i in range(20)]
    files = {}
    for name in _shuffled(names):
        files[f"sys/devices/pci0000:00/{name}/class"] = "0x020000\n"
        files[f"sys/bus/pci/devices/{name}"] = Symlink(f"../../../devices/pci0000:00/{name}")
    for irq in _shuffled(range(100, 130)):
        files[f"sys/devices/pci0000:00/{names[0]}/msi_irqs/{irq}"] = "msix\n"
    root = make_tree(files)
    listing = os.listdir(root.sys("bus", "pci", "devices"))
    _assert_unsorted(listing, None)
    devices = sysfs.read_pci_devices(root)
    assert [d.name for d in devices] == listing
    msi_dir = root.sys("bus", "pci", "devices", names[0], "msi_irqs")
    msi_listing = [int(x) for x in os.listdir(msi_dir)]
    _assert_unsorted(msi_listing, None)
    assert by_name(devices)[names[0]].msi_irqs == tuple(msi_listing)


def test_cpu_node_is_the_first_node_entry_in_readdir_order(make_tree):
    c = "sys/devices/system/cpu/cpu0"
    nodes = _shuffled([f"node{k}" for k in range(12)])
    files = {f"{c}/{e}": Symlink(f"../../node/{e}") for e in nodes}
    files[f"{c}/nodeX"] = Symlink("../../node/nodeX")
    root = make_tree(files)
    listing = os.listdir(root.sys("devices", "system", "cpu", "cpu0"))
    first = next(int(e[4:]) for e in listing if e[4:].isdecimal())
    (cpu0,) = sysfs.read_cpu_facts(root).dirs
    assert cpu0.node == first


def test_listings_go_through_the_sysroot(fake_machine):
    """A root with its own listing order (kernfs hash order) is obeyed everywhere."""
    tree, _ = fake_machine("a_desktop4")
    root = KernfsSysRoot(tree.base)
    names = os.listdir(root.sys("devices", "system", "cpu"))
    expected = [int(n[3:]) for n in kernfs_order(names)
                if n[3:].isdecimal() and n.startswith("cpu")]
    assert [d.cpu for d in sysfs.read_cpu_facts(root).dirs] == expected
    pci = os.listdir(root.sys("bus", "pci", "devices"))
    assert [d.name for d in sysfs.read_pci_devices(root)] == kernfs_order(pci)


def test_live_sysfs_order_is_kept():
    """On the running kernel (read only), the CPU list is kernfs readdir order."""
    live = SysRoot("/")
    if not os.path.isdir(live.sys("devices", "system", "cpu")):
        pytest.skip("no /sys on this machine")
    assert [d.cpu for d in sysfs.read_cpu_facts(live).dirs] == listed_cpus(live)
    pci = live.listdir(live.sys("bus", "pci", "devices"))
    if pci is not None:
        assert [d.name for d in sysfs.read_pci_devices(live)] == pci


# --------------------------------------------------------------------------
# no input makes a parser raise
# --------------------------------------------------------------------------

_PARSERS = [
    lambda t: sysfs.parse_strtoul(t, 10),
    lambda t: sysfs.parse_strtoul(t, 16),
    sysfs.parse_int,
    sysfs.parse_hex,
    sysfs.parse_irqbalance_mask,
    sysfs.parse_irqbalance_cpulist,
    sysfs.parse_strict_mask,
    sysfs.parse_strict_cpulist,
    sysfs.parse_online_flag,
    sysfs.cpu_dir_number,
    sysfs.cpu_node_entry_number,
    sysfs.node_dir_number,
    sysfs.msi_irq_number,
]


@given(st.text(alphabet=st.sampled_from("0123456789abcdefxX,-+: \t\n\0(null)\udcff"), max_size=60))
@settings(max_examples=300, deadline=None)
def test_parsers_never_raise(text):
    for parse in _PARSERS:
        value = parse(text)
        assert value is None or isinstance(value, (int, bool, tuple))
