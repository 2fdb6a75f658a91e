"""Facts from /sys: CPUs, caches, NUMA nodes and PCI devices.

What irqbalance 1.9 reads in ``cputree.c``, ``numa.c`` and ``classify.c``,
read once per topology rebuild and returned as immutable records (NamedTuples):

* :func:`read_cpu_facts` -- ``/sys/devices/system/cpu`` (list files, and per
  ``cpuN`` its ``online``, ``topology/*``, ``cache/indexK/*`` and ``nodeK``
  entry);
* :func:`read_node_facts` -- ``/sys/devices/system/node``;
* :func:`read_pci_devices` / :func:`read_pci_device` -- ``/sys/bus/pci/devices``.

Every directory listing keeps the raw readdir order (kernfs name-hash order on
a real machine): irqbalance breaks placement ties and numbers cache domains by
it. Single-value files are read as irqbalance does: the first line only, an
empty file counting as unreadable. The values irqbalance itself consumes are
parsed with its own (lenient) rules -- ``strtoul`` for numbers, its bitmap
parsers for masks and lists -- so the engine sees what irqbalance sees; the
other fields are parsed strictly. Nothing here raises on a missing or garbled
file: the field is ``None`` (or irqbalance's documented default).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple, TypeVar

from .cnum import atoi, c_int, scan_number, strtol, unsigned_value
from .cpumask import (
    irqbalance_parse_cpulist,
    irqbalance_parse_mask,
    parse_cpulist,
    parse_mask,
)
from .sysroot import SysRoot

__all__ = [
    "PCI_INVALID",
    "CacheIndex",
    "CpuDir",
    "CpuFacts",
    "NodeDir",
    "NodeFacts",
    "PciDevice",
    "cpu_dir_number",
    "cpu_node_entry_number",
    "msi_irq_number",
    "node_dir_number",
    "parse_hex",
    "parse_int",
    "parse_irqbalance_cpulist",
    "parse_irqbalance_mask",
    "parse_online_flag",
    "parse_strict_cpulist",
    "parse_strict_mask",
    "parse_strtoul",
    "pci_device_path",
    "read_cpu_dir",
    "read_cpu_facts",
    "read_node_facts",
    "read_pci_device",
    "read_pci_devices",
]

_T = TypeVar("_T")

#: What irqbalance's ``read_pci_data`` treats as "no value" (``PCI_INVAL_DATA``).
PCI_INVALID = 0xFFFFFFFF

_CPU_NAME_RE = re.compile(r"cpu([0-9]+)")
_INDEX_NAME_RE = re.compile(r"index([0-9]+)")
_LEADING_DIGITS_RE = re.compile(r"[0-9]+")
#: Mask texts repeat across CPUs (siblings share core_siblings, cache maps, ...):
#: the mask parsers remember recent results (a third off a 1024-CPU rebuild).
_MASK_CACHE = 4096

# --------------------------------------------------------------------------
# pure parsers
# --------------------------------------------------------------------------


def parse_strtoul(text: str, base: int = 10) -> int | None:
    """C ``strtoul(text, NULL, base)`` for base 10 or 16, as an unsigned 64-bit value.

    Leading white space, a sign and (base 16) a ``0x`` prefix are accepted,
    parsing stops at the first non-digit, a minus sign negates modulo 2**64
    and overflow saturates at ULONG_MAX. Text without any digit gives
    ``None`` (C would return 0: garbled sysfs content is reported, not guessed).

    >>> parse_strtoul("0x10de\\n", 16), parse_strtoul("-1")
    (4318, 18446744073709551615)
    >>> parse_strtoul("12abc"), parse_strtoul("abc")
    (12, None)
    """
    n = scan_number(text, 0, base)
    return unsigned_value(n.negative, n.magnitude) if n.found else None


def parse_int(text: str) -> int | None:
    """irqbalance ``get_int``: ``(int)strtoul(line, NULL, 10)``; ``"-1"`` is -1.

    >>> parse_int("-1\\n"), parse_int("4294967295"), parse_int("x")
    (-1, -1, None)
    """
    value = parse_strtoul(text, 10)
    return None if value is None else c_int(value)


def parse_hex(text: str) -> int | None:
    """irqbalance ``get_hex`` into an ``unsigned int``; 0xffffffff counts as unreadable.

    >>> hex(parse_hex("0x010802\\n")), parse_hex("0xffffffff"), parse_hex("-1")
    ('0x10802', None, None)
    """
    value = parse_strtoul(text, 16)
    if value is None:
        return None
    value &= 0xFFFFFFFF
    return None if value == PCI_INVALID else value


@lru_cache(maxsize=_MASK_CACHE)
def parse_irqbalance_mask(line: str | None) -> int | None:
    """A mask file as irqbalance reads it (``cpumask_parse_user`` of the first line).

    ``None`` (missing or empty file) stays ``None``; anything else gives
    irqbalance's possibly partial result, never an error.
    """
    if line is None:
        return None
    # irqbalance passes strlen(line): C string functions stop at a NUL byte.
    return irqbalance_parse_mask(line.partition("\0")[0])


def parse_irqbalance_cpulist(line: str | None) -> int | None:
    """A CPU list file as irqbalance's ``get_mask_from_cpulist`` reads it.

    A first line that is empty or just ``"\\n"`` is the empty set -- the
    guard matters because irqbalance's list parser turns ``"\\n"`` into CPU 0.
    ``"(null)"`` (printed by some kernels for an unset ``nohz_full``) is empty
    too, since parsing stops at the ``(``.

    >>> parse_irqbalance_cpulist("\\n"), parse_irqbalance_cpulist("(null)\\n")
    (0, 0)
    >>> parse_irqbalance_cpulist("0-3\\n"), parse_irqbalance_cpulist("\\0\\n")
    (15, 0)
    """
    if line is None:
        return None
    # C sees the line up to the first NUL (a captured "\0\n" is an empty line).
    line = line.partition("\0")[0]
    if not line or line[0] == "\n":
        return 0
    return irqbalance_parse_cpulist(line)


@lru_cache(maxsize=_MASK_CACHE)
def parse_strict_mask(line: str | None) -> int | None:
    """A mask irqbalance does not read: strict parse, ``None`` if missing or garbled."""
    if line is None:
        return None
    try:
        return parse_mask(line)
    except ValueError:  # MaskError, or a number too long for int()
        return None


def parse_strict_cpulist(line: str | None) -> int | None:
    """A list irqbalance does not read: strict parse, ``None`` if missing or garbled."""
    if line is None:
        return None
    try:
        return parse_cpulist(line)
    except ValueError:  # MaskError, or a number too long for int()
        return None


def parse_online_flag(line: str | None) -> bool | None:
    """``cpuN/online``: ``"1"`` -> True, ``"0"`` -> False, anything else ``None``."""
    if line is None:
        return None
    value = line.strip()
    return True if value == "1" else False if value == "0" else None


def cpu_dir_number(name: str) -> int | None:
    """N for a ``cpu<N>`` entry of /sys/devices/system/cpu, else ``None``.

    Exactly ``cpu`` plus decimal digits: ``cpufreq``, ``cpuidle`` and
    ``cpu0 `` are not CPUs (irqbalance: ``sscanf("cpu%d%c") == 1``, no space).
    """
    m = _CPU_NAME_RE.fullmatch(name)
    return int(m.group(1)) if m else None


def cpu_node_entry_number(name: str) -> int | None:
    """k for a ``node<k>`` entry of ``cpuN/``, as irqbalance 1.9 tests it.

    ``strtol(name + 4, &end, 10)`` must consume the whole rest and give a
    non-negative C int. Like strtol, leading white space and a ``+`` sign are
    accepted, and a bare ``node`` is node 0; kernels only ever make ``node<k>``.
    """
    if not name.startswith("node"):
        return None
    rest = name[4:]
    if not rest:
        return 0
    num, end = strtol(rest)
    if end == 0 or end != len(rest):
        return None
    num = c_int(num)
    return num if num >= 0 else None


def node_dir_number(name: str) -> int | None:
    """k for a ``node<k>`` directory of /sys/devices/system/node.

    irqbalance: the name starts with ``node``, the 5th character is a digit,
    and the number is ``strtoul(name + 4)`` -- its leading digits.
    """
    if not name.startswith("node"):
        return None
    m = _LEADING_DIGITS_RE.match(name, 4)
    return int(m.group()) if m else None


def msi_irq_number(name: str) -> int:
    """``(int)strtol(name, NULL, 10)`` of an ``msi_irqs/`` entry; 0 = not an IRQ."""
    return atoi(name)


# --------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------


class CacheIndex(NamedTuple):
    """One ``cpuN/cache/indexK`` directory."""

    #: K of ``indexK`` (irqbalance compares this, not ``level``).
    index: int  # type: ignore[assignment]  # the field shadows tuple.index on purpose
    level: int | None
    #: ``Data``, ``Instruction`` or ``Unified``.
    type: str | None
    #: ``shared_cpu_map`` as irqbalance parses it; ``None`` if missing or empty.
    shared_cpu_map: int | None
    shared_cpu_list: int | None
    #: As printed (``32K``).
    size: str | None


class CpuDir(NamedTuple):
    """One ``/sys/devices/system/cpu/cpuN`` directory."""

    cpu: int
    #: ``cpuN/online``; ``None`` when absent (cpu0 often has none).
    online_file: bool | None
    #: ``topology/physical_package_id`` (``-1`` stays -1).
    package_id: int | None
    die_id: int | None
    core_id: int | None
    cluster_id: int | None
    #: ``topology/core_siblings``: irqbalance's package mask.
    core_siblings: int | None
    thread_siblings: int | None
    package_cpus: int | None
    core_cpus: int | None
    cluster_cpus: int | None
    #: Every ``cache/indexK`` present, by K ascending.
    caches: tuple[CacheIndex, ...]
    #: k of the first ``node<k>`` entry in readdir order; ``None`` if none.
    node: int | None


class CpuFacts(NamedTuple):
    """Everything read from /sys/devices/system/cpu."""

    #: The ``cpuN`` directories in raw readdir order (never sorted).
    dirs: tuple[CpuDir, ...]
    #: The ``online`` list (the CPUs irqbalance puts in its tree).
    online: int | None
    #: ``isolated`` / ``nohz_full`` as irqbalance's banned-CPU default reads
    #: them; None: the file does not exist.
    isolated: int | None
    nohz_full: int | None


class NodeDir(NamedTuple):
    """One ``/sys/devices/system/node/nodeK`` directory."""

    node: int
    #: ``cpumap`` as irqbalance parses it; a missing file is the empty set.
    cpumap: int


class NodeFacts(NamedTuple):
    """Everything read from /sys/devices/system/node."""

    #: ``nodeK`` directories (d_type DT_DIR, links excluded) in raw readdir order.
    nodes: tuple[NodeDir, ...]
    #: The node directory exists (a non-NUMA kernel has none).
    present: bool


class PciDevice(NamedTuple):
    """One ``/sys/bus/pci/devices/<BDF>`` entry."""

    #: The entry name (the BDF, ``0000:00:1f.2``).
    name: str
    #: ``class`` (``0x010802``); ``None`` if unreadable or 0xffffffff.
    class_code: int | None
    vendor: int | None
    device: int | None
    subsystem_vendor: int | None
    subsystem_device: int | None
    #: ``numa_node`` (``-1`` = none); ``None`` if missing.
    numa_node: int | None
    #: ``local_cpus`` as irqbalance parses it.
    local_cpus: int | None
    #: The legacy ``irq`` file; ``None`` if missing.
    legacy_irq: int | None
    #: ``msi_irqs/`` entries in readdir order; ``None`` when the directory
    #: cannot be opened (irqbalance then falls back to ``irq``).
    msi_irqs: tuple[int, ...] | None
    #: Basename of the ``driver`` link target (the module, for ``--banmod``).
    driver: str | None


# --------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------


def _read_cache_index(root: SysRoot, path: str, index: int) -> CacheIndex:
    line = root.read_first_line
    return CacheIndex(
        index=index,
        level=_maybe(parse_int, line(f"{path}/level")),
        type=_stripped(line(f"{path}/type")),
        shared_cpu_map=parse_irqbalance_mask(line(f"{path}/shared_cpu_map")),
        shared_cpu_list=parse_strict_cpulist(line(f"{path}/shared_cpu_list")),
        size=_stripped(line(f"{path}/size")),
    )


def _maybe(parse: Callable[[str], _T | None], line: str | None) -> _T | None:
    return None if line is None else parse(line)


def _stripped(line: str | None) -> str | None:
    if line is None:
        return None
    return line.strip() or None


def _read_cpu_dir_lean(root: SysRoot, path: str, cpu: int, node: int | None,
                       present: set[str], deepestcache: int) -> CpuDir:
    """Only what irqbalance's ``do_one_cpu`` reads: package mask and id, and the
    ``shared_cpu_map`` of the deepest cache index up to ``deepestcache``."""
    line = root.read_first_line
    package_id = core_siblings = None
    if "topology" in present:
        package_id = _maybe(parse_int, line(f"{path}/topology/physical_package_id"))
        core_siblings = parse_irqbalance_mask(line(f"{path}/topology/core_siblings"))
    caches = []
    index = 1
    while "cache" in present and index <= deepestcache:
        shared = line(f"{path}/cache/index{index}/shared_cpu_map")
        if shared is None:
            break
        caches.append(CacheIndex(index, None, None, parse_irqbalance_mask(shared), None, None))
        index += 1
    return CpuDir(cpu, None, package_id, None, None, None, core_siblings, None, None, None, None,
                  tuple(caches), node)


def read_cpu_dir(root: SysRoot, name: str, cpu: int, deepestcache: int | None = None) -> CpuDir:
    """Read one ``/sys/devices/system/cpu/cpuN`` (``name`` = ``cpuN``).

    With ``deepestcache`` only the files the balancer uses are read (a
    quarter of the opens on a rebuild); the other fields stay None.
    """
    path = root.sys("devices", "system", "cpu", name)
    line = root.read_first_line
    # One listing answers three questions: is there an online file, a
    # topology/cache directory (offline CPUs often have neither), and which
    # nodeK entry comes first in readdir order (irqbalance's node choice).
    entries = root.listdir(path) or []
    node = None
    for entry in entries:
        if entry.startswith("node"):
            node = cpu_node_entry_number(entry)
            if node is not None:
                break
    present = set(entries)
    if deepestcache is not None:
        return _read_cpu_dir_lean(root, path, cpu, node, present, deepestcache)

    online_file = parse_online_flag(line(f"{path}/online")) if "online" in present else None

    package_id = die_id = core_id = cluster_id = None
    core_siblings = thread_siblings = package_cpus = core_cpus = cluster_cpus = None
    if "topology" in present:
        topo = f"{path}/topology"
        package_id = _maybe(parse_int, line(f"{topo}/physical_package_id"))
        die_id = _maybe(parse_int, line(f"{topo}/die_id"))
        core_id = _maybe(parse_int, line(f"{topo}/core_id"))
        cluster_id = _maybe(parse_int, line(f"{topo}/cluster_id"))
        core_siblings = parse_irqbalance_mask(line(f"{topo}/core_siblings"))
        thread_siblings = parse_strict_mask(line(f"{topo}/thread_siblings"))
        package_cpus = parse_strict_mask(line(f"{topo}/package_cpus"))
        core_cpus = parse_strict_mask(line(f"{topo}/core_cpus"))
        cluster_cpus = parse_strict_mask(line(f"{topo}/cluster_cpus"))

    caches: tuple[CacheIndex, ...] = ()
    if "cache" in present:
        cache_path = f"{path}/cache"
        indexes = []
        for entry in root.listdir(cache_path) or ():
            m = _INDEX_NAME_RE.fullmatch(entry)
            if m:
                indexes.append((int(m.group(1)), entry))
        indexes.sort()
        caches = tuple(_read_cache_index(root, f"{cache_path}/{e}", k) for k, e in indexes)

    return CpuDir(
        cpu=cpu,
        online_file=online_file,
        package_id=package_id,
        die_id=die_id,
        core_id=core_id,
        cluster_id=cluster_id,
        core_siblings=core_siblings,
        thread_siblings=thread_siblings,
        package_cpus=package_cpus,
        core_cpus=core_cpus,
        cluster_cpus=cluster_cpus,
        caches=caches,
        node=node,
    )


def read_cpu_facts(root: SysRoot, deepestcache: int | None = None) -> CpuFacts:
    """Read /sys/devices/system/cpu: the list files and every ``cpuN`` in readdir order.

    ``deepestcache``: read per CPU only what the balancer needs (see read_cpu_dir).
    """
    base = root.sys("devices", "system", "cpu")
    line = root.read_first_line
    dirs = []
    for name in root.listdir(base) or ():
        cpu = cpu_dir_number(name)
        if cpu is not None:
            dirs.append(read_cpu_dir(root, name, cpu, deepestcache))
    return CpuFacts(
        dirs=tuple(dirs),
        online=parse_irqbalance_cpulist(line(f"{base}/online")),
        isolated=parse_irqbalance_cpulist(line(f"{base}/isolated")),
        nohz_full=parse_irqbalance_cpulist(line(f"{base}/nohz_full")),
    )


def read_node_facts(root: SysRoot) -> NodeFacts:
    """Read /sys/devices/system/node: ``nodeK`` directories in readdir order."""
    base = root.sys("devices", "system", "node")
    line = root.read_first_line
    names = root.scandir_dirs(base)
    nodes = []
    for name in names or ():
        k = node_dir_number(name)
        if k is None:
            continue
        # irqbalance re-formats the path from the number: "node01" reads node1/.
        path = f"{base}/node{k}"
        cpumap = parse_irqbalance_mask(line(f"{path}/cpumap"))
        nodes.append(
            NodeDir(node=k, cpumap=0 if cpumap is None else cpumap)
        )
    return NodeFacts(
        nodes=tuple(nodes),
        present=names is not None,
    )


def pci_device_path(root: SysRoot, name: str) -> str:
    """``/sys/bus/pci/devices/<name>`` (the link itself, not its target)."""
    return root.sys("bus", "pci", "devices", name)


def _read_pci_entry(root: SysRoot, name: str) -> PciDevice:
    path = pci_device_path(root, name)
    line = root.read_first_line
    # Opening through the bus/pci/devices link follows it, as irqbalance's fopen does.
    msi_names = root.listdir(f"{path}/msi_irqs")
    msi_irqs = None
    if msi_names is not None:
        msi_irqs = tuple(n for n in map(msi_irq_number, msi_names) if n)
    target = root.readlink(f"{path}/driver")
    return PciDevice(
        name=name,
        class_code=_maybe(parse_hex, line(f"{path}/class")),
        vendor=_maybe(parse_hex, line(f"{path}/vendor")),
        device=_maybe(parse_hex, line(f"{path}/device")),
        subsystem_vendor=_maybe(parse_hex, line(f"{path}/subsystem_vendor")),
        subsystem_device=_maybe(parse_hex, line(f"{path}/subsystem_device")),
        numa_node=_maybe(parse_int, line(f"{path}/numa_node")),
        local_cpus=parse_irqbalance_mask(line(f"{path}/local_cpus")),
        legacy_irq=_maybe(parse_int, line(f"{path}/irq")),
        msi_irqs=msi_irqs,
        driver=target.rsplit("/", 1)[-1] or None if target else None,
    )


def read_pci_devices(root: SysRoot) -> tuple[PciDevice, ...]:
    """Every entry of /sys/bus/pci/devices, in readdir order (none if it is missing)."""
    return tuple(
        _read_pci_entry(root, name)
        for name in root.listdir(root.sys("bus", "pci", "devices")) or ()
    )


def read_pci_device(root: SysRoot, name: str) -> PciDevice | None:
    """One PCI device by entry name; ``None`` if there is no such device directory."""
    if "/" in name or name in ("", ".", "..") or not root.isdir(pci_device_path(root, name)):
        return None
    return _read_pci_entry(root, name)
