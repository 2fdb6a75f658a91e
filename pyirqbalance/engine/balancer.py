"""The balancing pass: irqbalance's ``scan()``, with its state in one object.

:class:`Balancer` owns everything that survives between passes -- the
topology tree, the IRQ database, the rebalance list, the pass counter -- and
nothing else does: there are no globals. ``run_pass`` reads like irqbalance
1.9.2's ``scan()``::

    clear stats -> parse /proc/interrupts -> (rescan: rebuild, baseline, wait)
    -> parse /proc/stat + loads -> select migrations -> place -> activate

The stages are functions in their own modules (topology, classify, load,
irqlist, placement, activate) that take the state they work on as
arguments. Kernel files are read through :class:`SysRoot` only, and in the
order irqbalance reads them, so a harness that serves /proc through FIFOs
sees the same sequence of opens from both programs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..kernel import procinterrupts, procirq, procstat, sysfs
from ..kernel.cmdline import read_cmdline
from ..kernel.cpumask import format_mask
from ..kernel.sysroot import SysRoot
from .activate import Activation, activate_mappings
from .classify import DbEntry, IrqInfo, IrqType, PolicyHook, heap_ranks, plan_irq_db
from .dump import INDENT, dump_tree
from .irqlist import force_rebalance, update_migration_status
from .load import apply_cpu_times, clear_work_stats, propagate_loads
from .model import BalanceLevel, BalancerSettings, Decision, HintPolicy, PassReport, Snapshot
from .placement import calculate_placement
from .topology import NO_NODE, BannedCpus, Topology, build_topology, compute_banned_cpus

__all__ = ["Balancer", "PolicyHook"]


class Balancer:
    """One machine's IRQ balancer (read through ``root``, written unless dry run)."""

    def __init__(
        self,
        root: SysRoot,
        settings: BalancerSettings | None = None,
        *,
        policy: PolicyHook | None = None,
        write: bool = True,
        log: logging.Logger | None = None,
        sleep: Callable[[float], bool] | None = None,
        interval: float = 10,
        debug_indent: str = INDENT,
        keep_text: bool = False,
        memo_limit: int = procinterrupts.MEMO_LIMIT,
    ) -> None:
        self.root = root
        self.settings = settings or BalancerSettings()
        self.policy = policy
        self.write = write
        self.log = log or logging.getLogger("pyirqbalance")
        #: Waits between the two halves of a rescan pass; returns False to stop.
        self._sleep = sleep or _plain_sleep
        self.interval = interval
        self.debug_indent = debug_indent
        #: Held while a pass changes the tree; readers (API, control socket) take it too.
        self.lock = threading.RLock()

        self.cycle = 0
        self.topo: Topology | None = None
        self.banned_cpu_info: BannedCpus | None = None
        self.irqs: list[IrqInfo] = []  # the database, in insertion order
        self._by_irq: dict[int, IrqInfo] = {}
        self._banned: dict[int, IrqInfo] = {}  # banned IRQs (bare records)
        self._entries: dict[int, DbEntry] = {}
        self.rebalance: list[IrqInfo] = []
        self.need_rescan = False
        #: A rescan pass is waiting for its fresh baseline (the lock is free).
        self.waiting = False
        #: The largest /proc/interrupts kept whole to compare the next pass's
        #: with; bigger ones are streamed and compared by line hashes (0:
        #: always, for a single pass: the baseline read needs no 6 MB copy).
        self._scanner = procinterrupts.IrqCountScanner(memo_limit)
        #: IRQs whose count moved at the last parse (their last_count lags).
        self._stepped: list[IrqInfo] = []
        #: The database was just built: every row must be looked at once.
        self._db_fresh = True
        self._stat_size = 0  # /proc/stat's last size: one read(2) per pass
        self._msi_warned = False
        self._activations: dict[int, Activation] = {}
        self._originals: dict[int, int] = {}
        self._last_snapshot: Snapshot | None = None
        #: IRQ numbers in /proc/interrupts order, as the last scan saw them.
        self._order: tuple[int, ...] = ()
        #: Keep each pass's raw /proc/interrupts in PassReport.snapshot (for
        #: history, the API, metrics and the dry-run report). Off, a big file
        #: is only streamed through: a 1024-CPU machine prints 93 MB per pass.
        self.keep_text = keep_text
        #: Fill PassReport.decisions for the IRQs each pass moved (for listeners
        #: such as the API or history); off by default, it costs per IRQ.
        self.record_decisions = False

    # ------------------------------------------------------------------
    # properties other components read
    # ------------------------------------------------------------------

    @property
    def nodes(self):
        return self.topo.nodes if self.topo is not None else []

    @property
    def online_cpus(self) -> int:
        return self.topo.online if self.topo is not None else 0

    @property
    def banned_cpus(self) -> int:
        return self.topo.banned if self.topo is not None else 0

    @property
    def last_snapshot(self) -> Snapshot | None:
        return self._last_snapshot

    # ------------------------------------------------------------------
    # start-up and rebuilds
    # ------------------------------------------------------------------

    def start(self) -> None:
        """Build tree and database, queue every IRQ, take the baseline (§7.1 steps 8-12)."""
        with self.lock:
            counts = self._build()
            for info in self.irqs:
                force_rebalance(info, self.rebalance)
            self._parse_interrupts(counts)
            self._parse_stat(self._read_stat())

    def _build(self) -> procinterrupts.IrqCounts | None:
        """``build_object_tree``: NUMA nodes, CPU tree, IRQ database.

        Returns the /proc/interrupts scan the database was made from; it
        is also the baseline. irqbalance reads the file a second time right
        after the build, before /proc/stat; the counts of the two reads are
        milliseconds apart (the 93 MB of a 1024-CPU machine take 100 ms to
        scan), and in a pass's 10 s window that is noise.
        """
        s = self.settings
        self._db_fresh, self._stepped = True, []
        cpu_facts = sysfs.read_cpu_facts(self.root, deepestcache=s.deepestcache)
        node_facts = sysfs.read_node_facts(self.root) if s.numa else None
        cmdline = None
        if cpu_facts.isolated_raw is None and cpu_facts.nohz_full_raw is None:
            cmdline = read_cmdline(self.root)
        self.banned_cpu_info = banned = compute_banned_cpus(s, cpu_facts, cmdline)
        if banned.isolated or banned.nohz_full or banned.source.startswith("isolated"):
            self.log.debug("Prevent irq assignment to these isolated CPUs: %s", _m(banned.isolated))
            self.log.debug("Prevent irq assignment to these adaptive-ticks CPUs: %s", _m(banned.nohz_full))
        elif banned.source == "IRQBALANCE_BANNED_CPUS":
            self.log.warning(
                "IRQBALANCE_BANNED_CPUS is discarded, Use IRQBALANCE_BANNED_CPULIST instead"
            )
        self.log.debug("Banned CPUs: %s", _m(banned.mask))
        topo = build_topology(
            cpu_facts, node_facts, banned.mask,
            deepestcache=s.deepestcache, numa=s.numa, warn=self.log.warning,
        )
        self.topo = topo
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("%s", dump_tree(topo, self.debug_indent).rstrip("\n"))

        devices = sysfs.read_pci_devices(self.root)
        # Only IRQs without a PCI device are classified from their text.
        claimed = set()
        for dev in devices:
            claimed.update(dev.msi_irqs if dev.msi_irqs is not None else (dev.legacy_irq,))
        counts = self._scan_interrupts(known=claimed)
        plan = plan_irq_db(
            counts.rows if counts is not None else (),
            devices,
            banned_irqs=s.banned_irqs,
            banmod=s.banmod,
            policy=self.policy,
            device_path=self._device_path,
            irq_node=lambda irq: procirq.read_irq_node(self.root, irq),
            numa=s.numa,
            hintpolicy=s.hintpolicy,
            node_exists=self._node_exists,
        )
        self.irqs, self._by_irq, self._banned, self._entries = [], {}, {}, {}
        self.rebalance = []
        for entry, rank in zip(plan, heap_ranks(plan)):
            self._add_entry(entry).seq = rank
        for node in topo.nodes:
            self.log.debug("NUMA NODE NUMBER: %d", node.number)
            self.log.debug("LOCAL CPU MASK: %s", _m(node.mask))
        return counts

    def _node_exists(self, number: int) -> bool:
        if self.topo.node(number) is not None:
            return True
        self.log.warning("NUMA node %d doesn't exist", number)
        return False

    def _device_path(self, name: str | None) -> str:
        if name is None:
            return self.root.sys()
        return sysfs.pci_device_path(self.root, name)

    def _add_entry(self, entry: DbEntry) -> IrqInfo:
        info = IrqInfo(entry.irq, entry.irq_class, entry.irq_type, entry.level)
        info.device = entry.device
        info.name = entry.name
        info.hintpolicy = entry.hintpolicy
        if entry.hintpolicy is not HintPolicy.IGNORE and not entry.banned:
            # Read once, when the IRQ enters the database (irqbalance 1.0-1.1).
            info.hint = procirq.read_irq_affinity(self.root, entry.irq).affinity_hint or 0
        self._entries[entry.irq] = entry
        if entry.banned:
            self.log.debug("IRQ %d was BANNED.", entry.irq)
            info.node = self.topo.node(NO_NODE)
            self._banned[entry.irq] = info
            return info
        node = self.topo.node(entry.node)
        if node is None:
            self.log.debug("IRQ %d has an unknown node", entry.irq)
            node = self.topo.node(NO_NODE)
        info.node = node
        self.irqs.append(info)
        self._by_irq[entry.irq] = info
        self.log.debug("Adding IRQ %d to database", entry.irq)
        return info

    def _hotplug(self, row) -> IrqInfo | None:
        """An IRQ number the database does not know: add it through the normal path."""
        s = self.settings
        devices = [
            d for d in sysfs.read_pci_devices(self.root)
            if (d.msi_irqs is not None and row.irq in d.msi_irqs)
            or (d.msi_irqs is None and d.legacy_irq == row.irq)
        ][:1]
        if not devices and row.raw is None:
            return None  # its line was not kept (it was known before): rebuild instead
        plan = plan_irq_db(
            [row], devices,
            banned_irqs=s.banned_irqs, banmod=s.banmod, policy=self.policy,
            device_path=self._device_path,
            irq_node=lambda irq: procirq.read_irq_node(self.root, irq),
            numa=s.numa, hintpolicy=s.hintpolicy, node_exists=self._node_exists,
        )
        entry = next((e for e in plan if e.irq == row.irq), None)
        if entry is None:
            return None
        if devices:
            self.log.debug("Hotplug dev irq: %d finished.", row.irq)
        info = self._add_entry(entry)
        if not entry.banned:
            force_rebalance(info, self.rebalance)
        return info

    # ------------------------------------------------------------------
    # the two /proc streams
    # ------------------------------------------------------------------

    def _scan_interrupts(self, known=None) -> procinterrupts.IrqCounts | None:
        """Stream /proc/interrupts through the scanner; None when unreadable.

        ``known``: IRQs whose lines are not needed (default: the database's).
        """
        if known is None:
            known = self._by_irq.keys() | self._banned.keys()  # a set: C-speed lookups
        counts = procinterrupts.read_irq_counts(self.root, self._scanner, known, self.keep_text)
        if counts is not None and self._scanner.changed is None:
            self._order = tuple(row.irq for row in counts.rows)
        return counts

    def _read_stat(self) -> str | None:
        text = self.root.try_read_text(self.root.proc("stat"), self._stat_size)
        self._stat_size = len(text) if text is not None else 0
        return text

    def _parse_interrupts(self, counts: procinterrupts.IrqCounts | None) -> None:
        """``parse_proc_interrupts``: update counts, detect hotplug and rescans."""
        if counts is None:
            return  # unreadable: counts unchanged, like irqbalance
        changed = self._scanner.changed
        if changed is None or self._db_fresh or not self._parse_changed(changed):
            self._parse_rows(counts.rows)
        if counts.has_msi and not self._msi_warned and not self.need_rescan:
            if not any(i.irq_type in (IrqType.MSI, IrqType.MSIX) for i in self.irqs):
                self.log.warning("WARNING: MSI interrupts found in /proc/interrupts")
                self.log.warning("But none found in sysfs, you need to update your kernel")
                self.log.warning("Until then, IRQs will be improperly classified")
            self._msi_warned = True

    def _parse_rows(self, rows) -> None:
        """Every row: counts, hotplugged IRQs, rescan triggers, vanished IRQs."""
        online = self.topo.num_online
        stepped = []
        for row in rows:
            info = self._by_irq.get(row.irq) or self._banned.get(row.irq)
            if info is None:
                info = self._hotplug(row)
                if info is None:
                    self.need_rescan = True
                    break
            info.existing = True
            if not self._count(info, row, online):
                break
            if info.last_count != info.count:
                stepped.append(info)
        self._stepped = stepped
        if not self.need_rescan:
            self._drop_vanished()
            self._db_fresh = False

    def _parse_changed(self, changed) -> bool:
        """:meth:`_parse_rows` when the scanner saw the same IRQs, in the same order.

        Only the ``changed`` rows differ from the last pass; every other row
        has the count it had, so its last count catches up (once: after that
        both are equal). No IRQ appeared or vanished. False (nothing done)
        if an IRQ is not in the database after all.
        """
        infos = [self._by_irq.get(row.irq) or self._banned.get(row.irq) for row in changed]
        if None in infos:
            return False
        for info in self._stepped:
            info.last_count = info.count
        online = self.topo.num_online
        for info, row in zip(infos, changed):
            if not self._count(info, row, online):
                break
        self._stepped = infos
        return True

    def _count(self, info: IrqInfo, row, online: int) -> bool:
        """Take a row's total for an IRQ, or ask for a rescan (False)."""
        if row.ncols != online:
            self.log.debug(
                "IRQ %d has %d CPU columns, %d CPUs online: rescanning", row.irq, row.ncols, online
            )
            self.need_rescan = True
            return False
        if row.total < info.count:
            self.log.debug("IRQ %d count went backwards: rescanning", row.irq)
            self.need_rescan = True
            return False
        info.last_count = info.count
        info.count = row.total
        return True

    def _drop_vanished(self) -> None:
        gone = [i for i in self.irqs if not i.existing]
        gone_banned = [n for n, i in self._banned.items() if not i.existing]
        for info in self.irqs:
            info.existing = False
        for info in self._banned.values():
            info.existing = False
        for info in gone:
            self.log.debug("IRQ %d is removed from interrupts_db.", info.irq)
            self.irqs.remove(info)
            del self._by_irq[info.irq]
            if info in self.rebalance:
                self.rebalance.remove(info)
            if info.assigned is not None:
                info.assigned.interrupts.remove(info)
            self._activations.pop(info.irq, None)
        for irq in gone_banned:
            self.log.debug("IRQ %d is removed from banned_irqs.", irq)
            del self._banned[irq]

    def _parse_stat(self, text: str | None) -> None:
        """``parse_proc_stat``: CPU loads, then loads of every object and IRQ."""
        if text is None:
            self.log.warning("WARNING cant open /proc/stat.  balancing is broken")
            return
        rows = procstat.parse_irq_jiffies(text)
        if rows is None:
            self.log.warning("WARNING read /proc/stat. balancing is broken")
            return
        complete = apply_cpu_times(self.topo, rows, first_pass=self.cycle == 0, hz=self.settings.hz)
        if not complete:
            self.log.warning("WARNING, didn't collect load info for all cpus, balancing is broken")
            return
        propagate_loads(self.topo)

    # ------------------------------------------------------------------
    # the pass
    # ------------------------------------------------------------------

    def request_rescan(self) -> None:
        """SIGHUP: rescan at the next pass, unless no pass has completed yet."""
        if self.cycle:
            self.need_rescan = True

    def force_rescan(self) -> None:
        """A settings change through the control socket or API: rescan next pass."""
        self.need_rescan = True

    def update_settings(self, settings: BalancerSettings) -> None:
        """New settings, used from the next rebuild on."""
        with self.lock:
            self.settings = settings

    def run_pass(self) -> PassReport:
        """One balancing pass (irqbalance 1.9.2 ``scan``)."""
        started, cpu_started = time.perf_counter(), time.thread_time()
        with self.lock:
            self.log.debug("\n\n\n" + "-" * 77)
            clear_work_stats(self.topo)
            counts = self._scan_interrupts()
            self._parse_interrupts(counts)
            rescanned = False
            while self.need_rescan:
                rescanned = True
                self.need_rescan = False
                self.cycle = 0
                self.log.debug("Rescanning cpu topology ")
                clear_work_stats(self.topo)
                counts = self._build()
                for info in self.irqs:
                    force_rebalance(info, self.rebalance)
                self._parse_interrupts(counts)
                self._parse_stat(self._read_stat())
                # irqbalance 1.9.2 waits one interval inside the pass for a fresh
                # baseline, then balances with the new tree (no load data yet).
                # The lock is let go while waiting: readers (API, control
                # socket) are served between the halves of the pass.
                self.waiting = True
                self.lock.release()
                try:
                    keep_going = self._sleep(self.interval)
                finally:
                    self.lock.acquire()
                    self.waiting = False
                if not keep_going:
                    break
                clear_work_stats(self.topo)
                counts = self._scan_interrupts()
                self._parse_interrupts(counts)

            stat = self._read_stat()
            self._parse_stat(stat)
            if self.cycle:
                update_migration_status(
                    self.topo.cpus, self.topo.caches, self.topo.packages, self.topo.nodes,
                    self.rebalance, cycle=self.cycle,
                    migrateval=self.settings.migrateval, powerthresh=self.settings.powerthresh,
                    log=self.log.debug,
                )
            calculate_placement(self.topo, self.rebalance, warn=self.log.debug)
            activations = activate_mappings(
                self.root, self.irqs, self.topo.online, self.rebalance,
                banned=self.topo.banned, write=self.write, log=self.log.debug,
            )
            for act in activations:
                self._activations[act.irq] = act
                if act.write is not None and act.current is not None:
                    self._originals.setdefault(act.irq, act.current)
            if self.log.isEnabledFor(logging.DEBUG):
                self.log.debug("%s", dump_tree(self.topo, self.debug_indent).rstrip("\n"))
            cycle = self.cycle
            self.cycle += 1
            snapshot = None
            if self.keep_text:
                text = counts.text if counts is not None else None
                snapshot = self._last_snapshot = Snapshot(time.time(), text or b"", stat)
            decisions = ()
            if self.record_decisions:
                decisions = tuple(self._decision(self._by_irq[a.irq]) for a in activations
                                  if a.irq in self._by_irq)
            return PassReport(
                cycle=cycle,
                rescanned=rescanned,
                decisions=decisions,
                writes=tuple(a.write for a in activations if a.write is not None),
                snapshot=snapshot,
                duration_s=time.perf_counter() - started,
                cpu_s=time.thread_time() - cpu_started,
            )

    # ------------------------------------------------------------------
    # views
    # ------------------------------------------------------------------

    def dump_tree(self) -> str:
        with self.lock:
            return dump_tree(self.topo, self.debug_indent) if self.topo else ""

    def original_affinities(self) -> dict[int, int]:
        """smp_affinity of each IRQ as found before pyirqbalance first wrote it."""
        return dict(self._originals)

    def irq_info(self, irq: int) -> IrqInfo | None:
        return self._by_irq.get(irq)

    def is_banned(self, irq: int) -> bool:
        return irq in self._banned

    def decisions(self) -> tuple[Decision, ...]:
        """The current decision for every numbered IRQ, in /proc/interrupts order."""
        with self.lock:
            records = {**self._by_irq, **self._banned}
            order = [irq for irq in self._order if irq in records]
            listed = set(order)
            order += [irq for irq in records if irq not in listed]
            return tuple(self._decision(records[irq]) for irq in order)

    def _decision(self, info: IrqInfo) -> Decision:
        entry = self._entries.get(info.irq)
        act = self._activations.get(info.irq)
        banned = info.irq in self._banned
        current = act.current if act is not None else procirq.read_smp_affinity(self.root, info.irq)
        target = None
        why = entry.why if entry is not None else ""
        if banned:
            reason = why
        elif info.unmanaged_reason is not None:
            reason = f"{why}; unmanaged after the kernel refused a write: {info.unmanaged_reason}"
        elif info.level == BalanceLevel.NONE:
            reason = why or "never balanced"
        elif info.assigned is None:
            reason = f"{why}; waiting for placement (no eligible node or CPU)"
        else:
            target = info.assigned.mask & self.topo.online
            reason = (
                f"{why}; class {info.irq_class.label} balances at {info.level.name.lower()} level; "
                f"placed on {_path(info.assigned)} (load {info.assigned.load})"
            )
            if act is not None:
                reason += f"; {act.reason}"
        return Decision(
            irq=info.irq,
            name=info.name,
            irq_class=info.irq_class.label if not banned else "banned",
            level=info.level.name.lower(),
            node=info.node.number if info.node is not None else NO_NODE,
            current_mask=current,
            target_mask=target,
            assigned=info.assigned.label if info.assigned is not None else None,
            reason=reason,
            load=info.load,
            diff=info.diff,
        )


def _path(obj) -> str:
    parts = []
    while obj is not None:
        parts.append(obj.label)
        obj = obj.parent
    return " < ".join(parts)


def _m(mask: int) -> str:
    return format_mask(mask)


def _plain_sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return True

