"""The balancing stages on hand-built trees, against the spec's worked examples.

Expected numbers are worked by hand from irqbalance's procinterrupts.c (parse_proc_stat,
compute_irq_branch_load_share), irqlist.c (update_migration_status, move_candidate_irqs) and
placement.c (calculate_placement, find_best_object), and the
1.9.2 tie rules read from the oracle runs (later-allocated IRQ first among
equals; see docs/differences.md).
"""

from __future__ import annotations

import pytest

from pyirqbalance.engine.classify import IrqInfo, IrqType
from pyirqbalance.engine.irqlist import find_overloaded_objects
from pyirqbalance.engine.load import apply_cpu_times, propagate_loads
from pyirqbalance.engine.model import BalanceLevel, HintPolicy, IrqClass
from pyirqbalance.engine.placement import calculate_placement, find_best_object
from pyirqbalance.engine.topology import ALL_CPUS, ObjType, Topology, TopoObj


def _tree(domains: list[list[int]]) -> Topology:
    """One node 0 -> one package -> the given cache domains of CPUs (plus node -1)."""
    node_none = TopoObj(ObjType.NODE, -1, ALL_CPUS)
    all_cpus = sum(1 << c for d in domains for c in d)
    node0 = TopoObj(ObjType.NODE, 0, all_cpus)
    pkg = TopoObj(ObjType.PACKAGE, 0, all_cpus)
    topo = Topology(nodes=[node_none, node0], packages=[pkg], online=all_cpus)
    pkg.parent, pkg.numa_nodes = node0, [node0]
    node0.children.append(pkg)
    for n, cpus in enumerate(domains):
        cache = TopoObj(ObjType.CACHE, n, sum(1 << c for c in cpus))
        cache.parent, cache.numa_nodes = pkg, [node0]
        pkg.children.append(cache)
        topo.caches.append(cache)
        for c in cpus:
            cpu = TopoObj(ObjType.CPU, c, 1 << c)
            cpu.parent = cache
            cache.children.append(cpu)
            topo.cpus.append(cpu)
    topo.index()
    return topo


def _irq(n: int, cls: IrqClass, level: BalanceLevel, node: TopoObj, diff: int = 0) -> IrqInfo:
    info = IrqInfo(n, cls, IrqType.MSIX, level)
    info.node = node
    info.count = diff
    return info


def _attach(info: IrqInfo, obj: TopoObj) -> None:
    obj.interrupts.append(info)
    info.assigned = obj


def test_load_worked_example():
    """procinterrupts.c: CPU0 grew 3 jiffies; A=100, B=200 on CPU0, C=50 on its cache domain."""
    topo = _tree([[0, 1]])
    cpu0, cpu1 = topo.cpus
    cache0 = topo.caches[0]
    a = _irq(1, IrqClass.ETHERNET, BalanceLevel.CORE, topo.nodes[1], diff=100)
    b = _irq(2, IrqClass.ETHERNET, BalanceLevel.CORE, topo.nodes[1], diff=200)
    c = _irq(3, IrqClass.LEGACY, BalanceLevel.CACHE, topo.nodes[1], diff=50)
    _attach(a, cpu0)
    _attach(b, cpu0)
    _attach(c, cache0)
    assert apply_cpu_times(topo, [(0, 1000), (1, 500)], first_pass=True)
    assert apply_cpu_times(topo, [(0, 1003), (1, 500)], first_pass=False)
    assert cpu0.load == 30_000_000 and cpu1.load == 0
    propagate_loads(topo)
    assert cache0.load == topo.packages[0].load == topo.nodes[1].load == 30_000_000
    assert (cpu0.irq_count, cache0.irq_count) == (300, 50)
    assert (a.load, b.load, c.load) == (9_230_700, 18_461_400, 4_285_700)


def test_irq_load_floor_is_one():
    topo = _tree([[0, 1]])
    quiet = _irq(1, IrqClass.ETHERNET, BalanceLevel.CORE, topo.nodes[1], diff=0)
    _attach(quiet, topo.cpus[0])
    apply_cpu_times(topo, [(0, 10), (1, 10)], first_pass=True)
    apply_cpu_times(topo, [(0, 20), (1, 10)], first_pass=False)
    propagate_loads(topo)
    assert quiet.load == 1


def test_missing_cpu_in_stat_skips_propagation():
    """parse_proc_stat: a CPU of the tree absent from /proc/stat -> no load propagation."""
    topo = _tree([[0, 1]])
    assert not apply_cpu_times(topo, [(0, 10)], first_pass=True)


def _migration_setup():
    """irqlist.c: CPU loads 100/0/20; CPU0 holds A=60, B=30, C=1 of one class."""
    topo = _tree([[0, 1, 2]])
    cpu0, cpu1, cpu2 = topo.cpus
    cpu0.load, cpu1.load, cpu2.load = 100, 0, 20
    irqs = {}
    for n, (name, load) in enumerate([("A", 60), ("B", 30), ("C", 1)]):
        info = _irq(n, IrqClass.ETHERNET, BalanceLevel.CORE, topo.nodes[1])
        info.load = load
        _attach(info, cpu0)
        irqs[name] = info
    return topo, irqs


def test_migration_selection_without_migrateval():
    topo, irqs = _migration_setup()
    rebalance: list[IrqInfo] = []
    st = find_overloaded_objects(topo.cpus, rebalance, migrateval=0, powerthresh=None)
    assert st.avg_load == 40
    assert st.std_deviation == pytest.approx(52.915, abs=1e-3)
    assert rebalance == [irqs["B"]]
    assert irqs["B"].moved and irqs["B"].assigned is None


def test_migration_selection_with_migrateval_2():
    topo, irqs = _migration_setup()
    rebalance: list[IrqInfo] = []
    find_overloaded_objects(topo.cpus, rebalance, migrateval=2, powerthresh=None)
    assert rebalance == [irqs["A"]]


def _two_cpus_holding(loads: list[int]) -> tuple[Topology, list[IrqInfo]]:
    """CPU0 holds IRQs of ``loads`` (its load is their sum); CPU1 is idle."""
    topo = _tree([[0, 1]])
    cpu0, cpu1 = topo.cpus
    cpu0.load, cpu1.load = sum(loads), 0
    irqs = []
    for n, load in enumerate(loads):
        info = _irq(n, IrqClass.ETHERNET, BalanceLevel.CORE, topo.nodes[1])
        info.load = load
        _attach(info, cpu0)
        irqs.append(info)
    return topo, irqs


def test_a_move_that_only_swaps_the_two_loads_is_not_made():
    # irqbalance irqlist.c move_candidate_irqs: an IRQ is taken only if
    # min_load + load < delta + (adjustment_load - load), strictly. CPU0 = 50 + 50, CPU1 = 0:
    # 0 + 50 < 0 + (100 - 50) is false for both (moving one gives 50 / 50 -> 50 / 50 again).
    topo, irqs = _two_cpus_holding([50, 50])
    rebalance: list[IrqInfo] = []
    find_overloaded_objects(topo.cpus, rebalance, migrateval=0, powerthresh=None)
    assert rebalance == []
    assert all(i.assigned is topo.cpus[0] and not i.moved for i in irqs)
    # one less on one of them and the rule holds: 0 + 49 < 101 - 49
    topo, irqs = _two_cpus_holding([51, 49])
    find_overloaded_objects(topo.cpus, rebalance, migrateval=0, powerthresh=None)
    assert rebalance == [irqs[1]]


def test_an_irq_with_an_exact_hint_is_never_migrated():
    # --hintpolicy=exact (irqbalance 1.0-1.1): the driver's affinity_hint decides where the
    # IRQ goes, so move_candidate_irqs passes it over. In _migration_setup B (30) is the one
    # selected; with an exact hint on B nothing is (A = 60 fails the rule, C = 1 is too light).
    topo, irqs = _migration_setup()
    irqs["B"].hint, irqs["B"].hintpolicy = 1 << 1, HintPolicy.EXACT
    rebalance: list[IrqInfo] = []
    find_overloaded_objects(topo.cpus, rebalance, migrateval=0, powerthresh=None)
    assert rebalance == []
    # the hint alone, or a subset policy, does not keep it
    for policy in (HintPolicy.SUBSET, HintPolicy.IGNORE):
        topo, irqs = _migration_setup()
        irqs["B"].hint, irqs["B"].hintpolicy = 1 << 1, policy
        find_overloaded_objects(topo.cpus, rebalance := [], migrateval=0, powerthresh=None)
        assert rebalance == [irqs["B"]], policy


def test_first_pass_placement_example():
    """placement.c: L2 domains D0={0,2}, D1={1,3}; two ETH, one SCSI, one OTHER IRQ."""
    topo = _tree([[0, 2], [1, 3]])
    node0 = topo.nodes[1]
    e1 = _irq(30, IrqClass.ETHERNET, BalanceLevel.CORE, node0)
    e2 = _irq(31, IrqClass.ETHERNET, BalanceLevel.CORE, node0)
    s = _irq(32, IrqClass.STORAGE, BalanceLevel.CORE, node0)
    o = _irq(33, IrqClass.OTHER, BalanceLevel.PACKAGE, node0)
    rebalance = [o, s, e1, e2]
    calculate_placement(topo, rebalance)
    assert rebalance == []
    d0, d1 = topo.caches
    cpu = {c.number: c for c in topo.cpus}
    # Same class and load: the later-allocated record (e2) goes first.
    assert e2.assigned is cpu[0]
    assert e1.assigned is cpu[1]
    assert s.assigned is cpu[2]
    assert o.assigned is topo.packages[0]
    # +1 per IRQ placed on its own node; no +1 further down (1.9.2).
    assert node0.load == 4
    assert d0.load == d1.load == 0


def test_find_best_object_ties_and_exclusions():
    topo = _tree([[0], [1], [2]])
    a, b, c = topo.cpus
    a.load, b.load, c.load = 5, 5, 5
    _attach(_irq(1, IrqClass.ETHERNET, BalanceLevel.CORE, topo.nodes[1]), a)
    # equal load, b holds fewer IRQs than a -> b; c is not strictly fewer than b -> b
    assert find_best_object(topo.cpus, topo) is b
    b.powersave = True
    assert find_best_object(topo.cpus, topo) is c
    c.slots_left = 0
    assert find_best_object(topo.cpus, topo) is a
    # node -1 is never chosen with NUMA, nor a node without unbanned CPUs
    topo.banned = topo.nodes[1].mask
    assert find_best_object(topo.nodes, topo) is None


def test_numa_node_without_usable_cpu_falls_back_to_least_loaded():
    """placement.c find_best_object: device node has no unbanned CPU -> best node instead."""
    topo = _tree([[0, 1]])
    memory_only = TopoObj(ObjType.NODE, 1, 0)
    topo.nodes.append(memory_only)
    topo.index()
    info = _irq(5, IrqClass.ETHERNET, BalanceLevel.CORE, memory_only)
    rebalance = [info]
    calculate_placement(topo, rebalance)
    assert info.assigned in topo.cpus
    assert memory_only.interrupts == []


def test_banned_cpus_precedence_and_cmdline_fallback():
    """setup_banned_cpus precedence; /proc/cmdline only when the sysfs files do not exist."""
    from pyirqbalance.engine.model import BalancerSettings
    from pyirqbalance.engine.topology import compute_banned_cpus
    from pyirqbalance.kernel.cmdline import parse_cmdline
    from pyirqbalance.kernel.sysfs import CpuFacts, parse_irqbalance_cpulist

    def facts(isolated, nohz):
        return CpuFacts((), 0xFF, parse_irqbalance_cpulist(isolated),
                        parse_irqbalance_cpulist(nohz))

    cmd = parse_cmdline("ro quiet isolcpus=domain,managed_irq,2-3 nohz_full=6\n")
    s = BalancerSettings()
    assert compute_banned_cpus(s, facts("1\n", "\n"), cmd).mask == 0b10
    # C reads the line up to its first NUL: "1\0" + "2\n" bans CPU 1 only
    assert compute_banned_cpus(s, facts("1\x002\n", None), cmd).mask == 0b10
    assert compute_banned_cpus(s, facts(None, None), cmd).mask == 0b1001100
    env = BalancerSettings(banned_cpus_env="f0", banned_cpulist_env="1")
    assert compute_banned_cpus(env, facts("1\n", None)).mask == 0xF0
    settings = BalancerSettings(banned_cpulist_env="-")
    assert compute_banned_cpus(settings, facts("1\n", None)).mask == 0
    sock = BalancerSettings(socket_banned_cpulist="3", banned_cpus_env="f0")
    assert compute_banned_cpus(sock, facts(None, None)).mask == 0b1000
