"""The IRQ database: which IRQs exist, what they are, how deep they balance.

irqbalance classify.c as pure tables plus one builder:

* :data:`PCI_MAJOR_CLASS` / :data:`PCI_SERIAL_SUBCLASS` map a PCI class code
  (PCI Code and ID Assignment Specification v1.5) to an :class:`IrqClass`;
  anything they do not cover is *NODEF*, and such IRQs are never touched.
* :func:`classify_line` guesses the class of an IRQ without a PCI device from
  its /proc/interrupts line (x86 rules: OTHER, or VIRT_EVENT for Xen events).
* :func:`build_irq_db` walks the PCI devices and the /proc/interrupts rows in
  irqbalance's order, applies policy hooks and bans, and returns the records.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from .model import BalanceLevel, HintPolicy, IrqClass, IrqPolicy

if TYPE_CHECKING:
    from .topology import TopoObj

__all__ = [
    "DEFAULT_LEVEL",
    "PCI_MAJOR_CLASS",
    "PCI_SERIAL_SUBCLASS",
    "DbEntry",
    "IrqInfo",
    "IrqType",
    "classify_line",
    "heap_ranks",
    "pci_irq_class",
    "plan_irq_db",
    "sort_key",
]


class IrqType(enum.IntEnum):
    LEGACY = 0
    MSI = 1
    MSIX = 2
    VIRT_EVENT = 3


#: Balance level by class (classify.c ``map_class_to_level``).
DEFAULT_LEVEL = {
    IrqClass.OTHER: BalanceLevel.PACKAGE,
    IrqClass.LEGACY: BalanceLevel.CACHE,
    IrqClass.STORAGE: BalanceLevel.CORE,
    IrqClass.VIDEO: BalanceLevel.CORE,
    IrqClass.ETHERNET: BalanceLevel.CORE,
    IrqClass.GBETH: BalanceLevel.CORE,
    IrqClass.TENGBETH: BalanceLevel.CORE,
    IrqClass.VIRT_EVENT: BalanceLevel.CORE,
}

#: PCI base class (class code >> 16) -> IRQ class; index = base class.
PCI_MAJOR_CLASS: tuple[IrqClass | None, ...] = (
    IrqClass.OTHER,     # 0x00 unclassified
    IrqClass.STORAGE,   # 0x01 mass storage
    IrqClass.ETHERNET,  # 0x02 network
    IrqClass.VIDEO,     # 0x03 display
    IrqClass.OTHER,     # 0x04 multimedia
    IrqClass.OTHER,     # 0x05 memory
    IrqClass.LEGACY,    # 0x06 bridge
    IrqClass.OTHER,     # 0x07 communication
    IrqClass.OTHER,     # 0x08 system peripheral
    IrqClass.LEGACY,    # 0x09 input
    IrqClass.OTHER,     # 0x0a docking station
    IrqClass.OTHER,     # 0x0b processor
    None,               # 0x0c serial bus: decided by sub-class below
    IrqClass.ETHERNET,  # 0x0d wireless
    IrqClass.STORAGE,   # 0x0e intelligent I/O
    IrqClass.OTHER,     # 0x0f satellite
    IrqClass.OTHER,     # 0x10 encryption
    IrqClass.OTHER,     # 0x11 signal processing
    IrqClass.LEGACY,    # 0x12 processing accelerator
    IrqClass.LEGACY,    # 0x13 non-essential instrumentation
)

#: Serial bus (0x0c) sub-classes; 0x0a-0x7f and >= 0x81 are NODEF.
PCI_SERIAL_SUBCLASS: dict[int, IrqClass] = {
    0x00: IrqClass.LEGACY,   # FireWire
    0x01: IrqClass.LEGACY,   # ACCESS.bus
    0x02: IrqClass.LEGACY,   # SSA
    0x03: IrqClass.LEGACY,   # USB
    0x04: IrqClass.STORAGE,  # Fibre Channel
    0x05: IrqClass.LEGACY,   # SMBus
    0x06: IrqClass.STORAGE,  # InfiniBand
    0x07: IrqClass.LEGACY,   # IPMI
    0x08: IrqClass.LEGACY,   # SERCOS
    0x09: IrqClass.LEGACY,   # CANbus
    0x80: IrqClass.LEGACY,   # other serial bus
}

#: Devices that lie about their class (classify.c ``apply_pci_quirks``):
#: (vendor, device, subsystem vendor, subsystem device) -> class.
PCI_QUIRKS: dict[tuple[int, int, int, int], IrqClass] = {
    (0x10B5, 0x8619, 0x1120, 0x055B): IrqClass.STORAGE,  # PLX PEX8619 on EMC boards
    (0x10B5, 0x8619, 0x1120, 0xDD00): IrqClass.STORAGE,
    (0x177D, 0x0093, 0x1120, 0x0568): IrqClass.STORAGE,  # Cavium CN61XX on EMC boards
}

_U32 = 0xFFFFFFFF


def pci_irq_class(
    class_code: int | None,
    vendor: int | None = None,
    device: int | None = None,
    subsystem_vendor: int | None = None,
    subsystem_device: int | None = None,
) -> IrqClass | None:
    """IRQ class of a PCI function, or None (NODEF: never balanced).

    Any unreadable identification file (None) also means NODEF, as
    irqbalance's ``get_pci_info`` fails as a whole.
    """
    if (class_code is None or vendor is None or device is None or subsystem_vendor is None
            or subsystem_device is None):
        return None
    ids = (vendor, device, subsystem_vendor, subsystem_device, class_code)
    if _U32 in ids:
        return None
    major = (class_code >> 16) & _U32
    if major >= len(PCI_MAJOR_CLASS):
        return None
    if major == 0x0C:
        irq_class = PCI_SERIAL_SUBCLASS.get((class_code >> 8) & 0xFF)
    else:
        irq_class = PCI_MAJOR_CLASS[major]
    if irq_class is None:
        return None
    key = (vendor & 0xFFFF, device & 0xFFFF, subsystem_vendor & 0xFFFF, subsystem_device & 0xFFFF)
    return PCI_QUIRKS.get(key, irq_class)


def classify_line(line: str) -> tuple[IrqType, IrqClass, str]:
    """Type, class and name of an IRQ from its /proc/interrupts line (x86 build).

    The line is split on the space character only (irqbalance strtok_r with
    " "), so the name is the last token *including* its newline; that is
    the string ``--banmod`` is matched against. A Xen event channel
    (``xen-dyn`` in an earlier token and ``-event`` in the name) is
    VIRT_EVENT; everything else is OTHER.
    """
    tokens = [t for t in line.split(" ") if t]
    name = tokens[-1] if tokens else ""
    # Every token but the last is checked (the first one even when alone).
    is_xen_dyn = any("xen-dyn" in t for t in tokens[: max(1, len(tokens) - 1)])
    if is_xen_dyn and "-event" in name:
        return IrqType.VIRT_EVENT, IrqClass.VIRT_EVENT, name
    return IrqType.LEGACY, IrqClass.OTHER, name


_alloc_seq = itertools.count()

#: How many irq_info records fit in the hole a freed msi_irqs/ DIR buffer
#: leaves (32 KiB + header over 608-byte chunks), see :func:`heap_ranks`.
_DIR_HOLE_RECORDS = 53


def heap_ranks(entries: list[DbEntry]) -> list[tuple[int, int]]:
    """Model of the heap addresses irqbalance's records get during a build.

    irqbalance breaks IRQ sort ties by record address (descending), so the
    address order decides which of two same-class IRQs is placed first. glibc
    hands out the records from the top of the heap in allocation order, except
    that the first legacy-INTx device (read through stdio, no ``msi_irqs/``)
    makes ``calloc`` start filling the hole left by the last freed
    ``msi_irqs`` directory buffer, which lies below every record allocated so
    far; records keep coming from that hole, in order, until it is full.
    Returns a sortable rank per entry: higher rank = higher address. Checked
    against the recorded irqbalance 1.9.2 runs (tests/golden); see
    docs/differences.md for what the model does not cover.
    """
    ranks = []
    in_hole = 0
    hole_open = False
    for n, entry in enumerate(entries):
        if not hole_open and entry.device is not None and entry.irq_type is IrqType.LEGACY:
            hole_open = True
        if hole_open and in_hole < _DIR_HOLE_RECORDS:
            ranks.append((0, n))
            in_hole += 1
        else:
            ranks.append((1, n))
    return ranks


class IrqInfo:
    """One managed IRQ (irqbalance ``struct irq_info``), mutable balancer state."""

    __slots__ = (
        "assigned",
        "count",
        "default_level",
        "device",
        "existing",
        "hint",
        "hintpolicy",
        "irq",
        "irq_class",
        "irq_type",
        "last_count",
        "level",
        "load",
        "moved",
        "name",
        "node",
        "seq",
        "unmanaged_reason",
    )

    def __init__(
        self, irq: int, irq_class: IrqClass, irq_type: IrqType, level: BalanceLevel
    ) -> None:
        self.irq = irq
        self.irq_class = irq_class
        self.irq_type = irq_type
        self.level = level
        #: Level before an activation error made the IRQ unmanaged.
        self.default_level = level
        self.node: TopoObj | None = None  # its NUMA node
        self.count = 0
        self.last_count = 0
        self.load = 0
        self.moved = False
        self.existing = False
        #: Where it is placed; None: in the rebalance list, or nowhere.
        self.assigned: TopoObj | None = None
        self.name = ""
        self.device: str | None = None
        #: Stand-in for the record's heap address, irqbalance's last sort key
        #: (see :func:`heap_ranks`); by default allocation order.
        self.seq: tuple[int, int] = (1, next(_alloc_seq))
        self.hint = 0
        self.hintpolicy = HintPolicy.IGNORE
        self.unmanaged_reason: str | None = None

    def __repr__(self) -> str:
        return f"<IRQ {self.irq} {self.irq_class.label} {self.level.name} load={self.load}>"

    @property
    def diff(self) -> int:
        return self.count - self.last_count


def sort_key(info: IrqInfo) -> tuple[int, int, int, int]:
    """irqbalance ``sort_irqs``: class, then load, then address, all descending."""
    return (-info.irq_class, -info.load, -info.seq[0], -info.seq[1])


# --------------------------------------------------------------------------
# database plan
# --------------------------------------------------------------------------


class DbEntry(NamedTuple):
    """One IRQ as the database build decided it (before tree objects exist)."""

    irq: int
    banned: bool
    irq_class: IrqClass
    irq_type: IrqType
    level: BalanceLevel
    #: NUMA node number (policy override, device numa_node or /proc/irq/N/node).
    node: int
    #: PCI device name (BDF) or None.
    device: str | None
    name: str
    #: Why: "PCI class 0x020000", "no PCI device", "banned: --banirq" ...
    why: str
    hintpolicy: HintPolicy = HintPolicy.IGNORE


#: (device sysfs path, or the sysfs root for IRQs without a device; irq) -> policy
PolicyHook = Callable[[str, int], IrqPolicy | None]


def _banned_by_module(banmod: Iterable[str], driver: str | None, name: str) -> str | None:
    for mod in banmod:
        if driver and mod in driver:
            return f"banned: --banmod={mod} matches driver {driver}"
        if name and mod in name:
            return f"banned: --banmod={mod} matches name {name.strip()}"
    return None


def plan_irq_db(
    rows,
    devices,
    *,
    banned_irqs: Iterable[int],
    banmod: Iterable[str],
    policy: PolicyHook | None,
    device_path: Callable[[str | None], str],
    irq_node: Callable[[int], int | None],
    numa: bool,
    hintpolicy: HintPolicy = HintPolicy.IGNORE,
    node_exists: Callable[[int], bool] = lambda node: True,
) -> list[DbEntry]:
    """irqbalance ``rebuild_irq_db`` as a plan, in irqbalance's insertion order.

    ``rows`` are the /proc/interrupts rows irqbalance sees (procinterrupts
    ``IrqCount``: ``irq`` and raw ``line``); ``devices`` the PCI functions in
    readdir order. PCI IRQs come first (device order, then ``msi_irqs``
    order, or the legacy ``irq`` file when there is no ``msi_irqs``
    directory); then every remaining row, classified from its text. The first
    device that claims an IRQ number wins. A policy hook runs for every IRQ,
    banned or not.
    """
    planner = _DbPlanner(
        {r.irq: r.line for r in rows}, frozenset(banned_irqs), tuple(banmod), policy,
        device_path, irq_node, numa, hintpolicy, node_exists,
    )
    for dev in devices:
        if dev.msi_irqs is not None:
            for irq in dev.msi_irqs:
                if irq:
                    planner.add(irq, dev, IrqType.MSIX)
        elif dev.legacy_irq and dev.legacy_irq != 255:  # x86: 255 = no line
            planner.add(dev.legacy_irq, dev, IrqType.LEGACY)
    for row in rows:
        planner.add(row.irq, None, IrqType.LEGACY)
    return planner.plan


class _DbPlanner:
    """The state of one :func:`plan_irq_db`: the entries so far and how to make more."""

    def __init__(
        self,
        line_of: dict[int, str | bytes],
        banned_irqs: frozenset[int],
        banmod: tuple[str, ...],
        policy: PolicyHook | None,
        device_path: Callable[[str | None], str],
        irq_node: Callable[[int], int | None],
        numa: bool,
        hintpolicy: HintPolicy,
        node_exists: Callable[[int], bool],
    ) -> None:
        self.line_of, self.banned_irqs, self.banmod = line_of, banned_irqs, banmod
        self.policy, self.device_path, self.irq_node = policy, device_path, irq_node
        self.numa, self.hintpolicy, self.node_exists = numa, hintpolicy, node_exists
        self.seen: set[int] = set()
        self.plan: list[DbEntry] = []

    def add(self, irq: int, dev: Any, irq_type: IrqType) -> None:
        """The entry of ``irq`` (from PCI device ``dev``, or None: from its text)."""
        if irq in self.seen:
            return
        self.seen.add(irq)
        pol = self._policy(irq, dev)
        if dev is None:
            irq_type, irq_class, name = classify_line(self._line(irq))
            driver = None
        else:
            irq_class, name, driver = IrqClass.OTHER, "", dev.driver
        ban_why = self._ban_reason(irq, pol, driver, name)
        if ban_why is not None:
            self.plan.append(
                DbEntry(irq, True, IrqClass.OTHER, irq_type, BalanceLevel.NONE, -1,
                        dev.name if dev else None, name.strip(), ban_why)
            )
        elif dev is not None:
            self.plan.append(self._device_entry(irq, dev, irq_type, pol, name))
        else:
            why = "no PCI device: classified from /proc/interrupts"
            node = _node_of(pol, self.irq_node(irq) if self.numa else None)
            self.plan.append(self._entry(irq, irq_class, irq_type, pol, node, None, name, why))

    def _policy(self, irq: int, dev: Any) -> IrqPolicy:
        pol = None
        if self.policy is not None:
            pol = self.policy(self.device_path(dev.name if dev is not None else None), irq)
        pol = pol or IrqPolicy()
        if pol.numa_node is not None and not self.node_exists(pol.numa_node):
            # irqbalance: "NUMA node %d doesn't exist", the key is ignored
            pol = pol._replace(numa_node=None)
        return pol

    def _line(self, irq: int) -> str:
        line = self.line_of.get(irq, "")
        return line.decode("utf-8", "surrogateescape") if isinstance(line, bytes) else line

    def _ban_reason(self, irq: int, pol: IrqPolicy, driver: str | None, name: str) -> str | None:
        if pol.ban:
            return "banned: policy script said ban=true"
        if irq in self.banned_irqs:
            return "banned: --banirq / control socket"
        return _banned_by_module(self.banmod, driver, name)

    def _device_entry(
        self, irq: int, dev: Any, irq_type: IrqType, pol: IrqPolicy, name: str
    ) -> DbEntry:
        node = _node_of(pol, dev.numa_node if self.numa else None)
        irq_class = pci_irq_class(
            dev.class_code, dev.vendor, dev.device, dev.subsystem_vendor, dev.subsystem_device
        )
        if irq_class is None:
            # Unknown class or unreadable ids: irqbalance skips the level
            # assignment, leaving BALANCE_NONE (and class OTHER).
            why = (
                f"PCI class 0x{dev.class_code:06x} is not one irqbalance knows: never balanced"
                if dev.class_code is not None
                else "PCI identification files unreadable: never balanced"
            )
            return DbEntry(irq, False, IrqClass.OTHER, irq_type, BalanceLevel.NONE,
                           node, dev.name, name, why)
        why = f"PCI class 0x{dev.class_code:06x} ({dev.name})"
        return self._entry(irq, irq_class, irq_type, pol, node, dev.name, name, why)

    def _entry(
        self, irq: int, irq_class: IrqClass, irq_type: IrqType, pol: IrqPolicy, node: int,
        device: str | None, name: str, why: str,
    ) -> DbEntry:
        """A balanced IRQ's entry: the class's level unless the policy sets one."""
        level = pol.balance_level if pol.balance_level is not None else DEFAULT_LEVEL[irq_class]
        if pol.balance_level is not None:
            why += f"; policy balance_level={level.name.lower()}"
        return DbEntry(irq, False, irq_class, irq_type, level, node, device, name.strip(), why,
                       pol.hintpolicy or self.hintpolicy)


def _node_of(pol: IrqPolicy, value: int | None) -> int:
    if pol.numa_node is not None:
        return pol.numa_node
    return -1 if value is None else value
