"""The NUMA node -> package -> cache domain -> CPU tree (irqbalance cputree.c, numa.c).

``build_topology`` is pure: it turns the sysfs facts read by
:mod:`pyirqbalance.kernel.sysfs` and the banned-CPU mask into the tree irqbalance
1.9 builds, object by object and in the same list order (raw readdir order of
``/sys/devices/system/cpu`` and ``/sys/devices/system/node``), because that
order breaks every placement tie and numbers the cache domains.

The tree objects are mutable on purpose: the balancer moves IRQs between their
``interrupts`` lists and bumps their ``load`` exactly as irqbalance does. They
live inside one :class:`Topology`, which lives inside the balancer's state;
nothing here is global.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from ..kernel.cpumask import IRQBALANCE_NR_CPUS, irqbalance_parse_cpulist, irqbalance_parse_mask

if TYPE_CHECKING:
    from ..kernel.cmdline import KernelCmdline
    from ..kernel.sysfs import CpuFacts, NodeFacts
    from .classify import IrqInfo
    from .model import BalancerSettings

__all__ = [
    "ALL_CPUS",
    "NO_NODE",
    "SLOTS_UNKNOWN",
    "BannedCpus",
    "ObjType",
    "TopoObj",
    "Topology",
    "build_topology",
    "compute_banned_cpus",
]

#: irqbalance's NUMA_NO_NODE pseudo node.
NO_NODE = -1
#: Every bit of irqbalance's 4096-CPU bitmap (node -1's mask).
ALL_CPUS = (1 << IRQBALANCE_NR_CPUS) - 1
#: ``slots_left`` value meaning "vector space not known to be short" (INT_MAX).
SLOTS_UNKNOWN = 2**31 - 1


class ObjType(enum.IntEnum):
    """Topology object types, numbered as in irqbalance's socket protocol."""

    CPU = 0
    CACHE = 1
    PACKAGE = 2
    NODE = 3


class TopoObj:
    """One node, package, cache domain or CPU (irqbalance ``struct topo_obj``)."""

    __slots__ = (
        "children",
        "interrupts",
        "irq_count",
        "last_load",
        "load",
        "mask",
        "numa_nodes",
        "number",
        "obj_type",
        "parent",
        "powersave",
        "slots_left",
    )

    def __init__(self, obj_type: ObjType, number: int, mask: int) -> None:
        self.obj_type = obj_type
        self.number = number
        self.mask = mask
        #: ns of irq+softirq time over the last interval (sum of children above CPUs).
        self.load = 0
        #: CPUs only: irq+softirq jiffies at the last /proc/stat read.
        self.last_load = 0
        #: Interrupts over the last interval of the IRQs attached directly here.
        self.irq_count = 0
        self.interrupts: list[IrqInfo] = []
        self.children: list[TopoObj] = []
        self.parent: TopoObj | None = None
        self.numa_nodes: list[TopoObj] = []
        self.powersave = False
        self.slots_left = SLOTS_UNKNOWN

    def __repr__(self) -> str:
        return f"<{self.label} load={self.load} irqs={len(self.interrupts)}>"

    @property
    def label(self) -> str:
        """``cpu 3``, ``cache 1``, ``package 0``, ``node -1``."""
        return f"{self.obj_type.name.lower()} {self.number}"


class Topology:
    """The whole tree plus the CPU sets irqbalance derives while building it."""

    __slots__ = (
        "_cpu_by_number",
        "_node_by_number",
        "banned",
        "caches",
        "cpus",
        "nodes",
        "numa",
        "online",
        "packages",
    )

    def __init__(
        self,
        nodes: list[TopoObj],
        packages: list[TopoObj] | None = None,
        caches: list[TopoObj] | None = None,
        cpus: list[TopoObj] | None = None,
        online: int = 0,
        banned: int = 0,
        numa: bool = True,
    ) -> None:
        self.nodes = nodes
        self.packages: list[TopoObj] = [] if packages is None else packages
        self.caches: list[TopoObj] = [] if caches is None else caches
        self.cpus: list[TopoObj] = [] if cpus is None else cpus
        #: Every online CPU seen in sysfs, banned ones included (cpu_online_map).
        self.online = online
        self.banned = banned
        self.numa = numa
        self._cpu_by_number: dict[int, TopoObj] = {}
        self._node_by_number: dict[int, TopoObj] = {}

    def __repr__(self) -> str:
        return (f"<Topology {len(self.nodes)} nodes, {len(self.packages)} packages, "
                f"{len(self.caches)} caches, {len(self.cpus)} CPUs>")

    @property
    def unbanned(self) -> int:
        return ALL_CPUS & ~self.banned

    @property
    def num_online(self) -> int:
        return self.online.bit_count()

    def cpu(self, number: int) -> TopoObj | None:
        return self._cpu_by_number.get(number)

    def node(self, number: int) -> TopoObj | None:
        """irqbalance ``get_numa_node``: without NUMA every lookup is node -1."""
        return self._node_by_number.get(number if self.numa else NO_NODE)

    def index(self) -> None:
        """(Re)build the number lookups after the lists were filled."""
        self._cpu_by_number = {c.number: c for c in self.cpus}
        self._node_by_number = {}
        for n in self.nodes:
            self._node_by_number.setdefault(n.number, n)

    def walk(self):
        """Every object reachable from the nodes, depth first, node -1 first."""
        stack = list(reversed(self.nodes))
        while stack:
            obj = stack.pop()
            yield obj
            stack.extend(reversed(obj.children))


# --------------------------------------------------------------------------
# banned CPUs (cputree.c setup_banned_cpus)
# --------------------------------------------------------------------------


class BannedCpus(NamedTuple):
    mask: int
    #: Where the set came from, for logs and ``--dry-run``.
    source: str
    isolated: int = 0
    nohz_full: int = 0


def compute_banned_cpus(
    settings: BalancerSettings, facts: CpuFacts, cmdline: KernelCmdline | None = None
) -> BannedCpus:
    """The banned CPU set with irqbalance 1.9.2's precedence.

    Socket ``settings cpus`` > ``IRQBALANCE_BANNED_CPUS`` (non-empty, hex mask)
    > ``IRQBALANCE_BANNED_CPULIST`` (non-empty, cpulist; ``-`` parses to the
    empty set, which is how CRI-O asks for "ban nothing") > the kernel's
    ``isolated`` and ``nohz_full`` CPUs. A set variable replaces the
    auto-detection, it does not add to it.
    """
    if settings.socket_banned_cpulist is not None:
        mask = irqbalance_parse_cpulist(settings.socket_banned_cpulist)
        return BannedCpus(mask, "control socket 'settings cpus'")
    if settings.banned_cpus_env:
        mask = irqbalance_parse_mask(settings.banned_cpus_env)
        return BannedCpus(mask, "IRQBALANCE_BANNED_CPUS")
    if settings.banned_cpulist_env:
        mask = irqbalance_parse_cpulist(settings.banned_cpulist_env)
        return BannedCpus(mask, "IRQBALANCE_BANNED_CPULIST")
    isolated, nohz_full = facts.isolated or 0, facts.nohz_full or 0
    source = "isolated and nohz_full CPUs"
    if cmdline is not None and facts.isolated is None and facts.nohz_full is None:
        # the sysfs files are missing entirely (not merely empty)
        isolated, nohz_full = cmdline.isolcpus, cmdline.nohz_full
        source = "isolcpus= and nohz_full= on the kernel command line"
    return BannedCpus(isolated | nohz_full, source, isolated, nohz_full)


# --------------------------------------------------------------------------
# tree
# --------------------------------------------------------------------------


def _add_node_to(obj: TopoObj, node: TopoObj | None, topo: Topology) -> None:
    """irqbalance ``add_numa_node_to_topo_obj``."""
    if node is None or (topo.numa and node.number == NO_NODE):
        return
    if node not in obj.numa_nodes:
        obj.numa_nodes.append(node)
    if not topo.numa and obj.obj_type is ObjType.PACKAGE and obj not in node.children:
        node.children.append(obj)
        obj.parent = node


def _connect_to_nodes(obj: TopoObj) -> None:
    """irqbalance ``connect_cpu_mem_topo``: hang single-node objects under their node.

    A package spanning several nodes is not attached itself; its cache domains
    are, one level down (their ``parent`` stays the package). An object with
    no node at all stays an orphan and never receives IRQs.
    """
    if not obj.numa_nodes:
        return
    if len(obj.numa_nodes) > 1:
        for child in obj.children:
            _connect_to_nodes(child)
        return
    node = obj.numa_nodes[0]
    if obj.obj_type is ObjType.PACKAGE and obj.parent is None:
        obj.parent = node
    if obj not in node.children:
        node.children.append(obj)


def _cache_mask(cpu_dir, deepestcache: int) -> int:
    """Mask of the deepest cache index <= deepestcache, probing from index1.

    irqbalance compares *index* numbers, not the ``level`` file: x86 index1 is
    L1i, index2 L2, index3 L3, so the default ``--deepestcache=2`` gives L2
    domains. No index1 means the CPU is its own domain.
    """
    present = {c.index: c for c in cpu_dir.caches if c.shared_cpu_map is not None}
    best = 0
    index = 1
    while index in present:
        best = index
        if index == deepestcache:
            break
        index += 1
    if best:
        return present[best].shared_cpu_map
    return 1 << cpu_dir.cpu


def _cpu_node(topo: Topology, node_id: int | None, package_mask: int) -> tuple[int, int]:
    """A CPU's NUMA node number and its package mask cut to that node's CPUs
    when several nodes share one package (AMD NPS, Intel SNC)."""
    if node_id is None:
        node_id = NO_NODE
    node = topo.node(node_id)
    if node is not None and package_mask.bit_count() > node.mask.bit_count():
        package_mask &= node.mask
    return node_id, package_mask


def build_topology(
    cpu_facts: CpuFacts,
    node_facts: NodeFacts | None,
    banned: int,
    *,
    deepestcache: int = 2,
    numa: bool = True,
    warn: Callable[[str], None] | None = None,
) -> Topology:
    """Build the tree as irqbalance's ``build_numa_node_list`` + ``parse_cpu_tree``."""
    nodes = [TopoObj(ObjType.NODE, NO_NODE, ALL_CPUS)]
    if numa and node_facts is not None:
        nodes += [TopoObj(ObjType.NODE, nd.node, nd.cpumap) for nd in node_facts.nodes]
    topo = Topology(nodes=nodes, banned=banned, numa=numa)
    topo.index()
    unbanned = topo.unbanned
    online_list = cpu_facts.online or 0

    for cd in cpu_facts.dirs:
        n = cd.cpu
        if not (online_list >> n) & 1:
            continue  # not in /sys/devices/system/cpu/online: not online, not in the tree
        topo.online |= 1 << n
        if (banned >> n) & 1:
            continue  # banned CPUs are counted online but never get IRQs
        cpu = TopoObj(ObjType.CPU, n, 1 << n)
        package_mask = cd.core_siblings if cd.core_siblings is not None else 1 << n
        package_id = cd.package_id if cd.package_id is not None else 0
        cache_mask = _cache_mask(cd, deepestcache)

        node_id = NO_NODE
        if numa:
            node_id, package_mask = _cpu_node(topo, cd.node, package_mask)
        node_obj = topo.node(node_id)

        cache_mask &= unbanned
        package_mask &= unbanned

        cache = next((c for c in topo.caches if c.mask == cache_mask), None)
        if cache is None:
            cache = TopoObj(ObjType.CACHE, len(topo.caches), cache_mask)
            topo.caches.append(cache)
        cache.children.append(cpu)
        cpu.parent = cache
        if not numa or node_id > NO_NODE:
            _add_node_to(cache, node_obj, topo)

        package = next((p for p in topo.packages if p.mask == package_mask), None)
        if package is None:
            package = TopoObj(ObjType.PACKAGE, package_id, package_mask)
            topo.packages.append(package)
        elif package.number != package_id and warn is not None:
            warn("package_mask with different physical_package_id found!")
        if cache not in package.children:
            package.children.append(cache)
            cache.parent = package
        if not numa or node_id > NO_NODE:
            _add_node_to(package, node_obj, topo)

        topo.cpus.append(cpu)

    for package in topo.packages:
        _connect_to_nodes(package)
    topo.index()
    return topo
