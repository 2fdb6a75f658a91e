"""The balancing pass: irqbalance's ``scan()``, with its state in one object.

:class:`Balancer` owns everything that survives between passes -- the
topology tree, the IRQ database, the rebalance list, the pass counter -- and
nothing else does: there are no globals. ``run_pass`` reads like irqbalance
1.9.2's ``scan()``::

    clear stats -> parse /proc/interrupts -> (rescan: rebuild, baseline, wait)
    -> parse /proc/stat + loads -> select migrations -> place -> activate

The wait of a rescan is not the balancer's: ``begin_pass`` returns
:class:`RescanWait` once the tree is rebuilt and the baseline taken, the
caller waits (the daemon's loop: one interval, serving signals) and calls
``resume_pass``. ``run_pass`` runs a whole pass without waiting.

The stages are functions in their own modules (topology, classify, irqdb,
load, irqlist, placement, activate, reasons) that take the state they work
on as arguments. Kernel files are read through :class:`SysRoot` only, and in the
order irqbalance reads them, so a harness that serves /proc through FIFOs
sees the same sequence of opens from both programs.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NamedTuple

from ..kernel import procinterrupts, procirq, procstat, sysfs
from ..kernel.cmdline import read_cmdline
from ..kernel.cpumask import format_mask
from ..kernel.procirq import WriteResult, WriteStatus
from ..kernel.scanner.cells import CellsChanged
from ..kernel.sysroot import SysRoot
from .activate import activate_mappings, errno_status
from .balanced import BalancedPlacement, Plan
from .classify import DbEntry, IrqInfo, IrqType, PolicyHook, heap_ranks, plan_irq_db
from .dump import INDENT, dump_tree
from .irqdb import IrqDb
from .irqlist import force_rebalance, update_migration_status
from .load import apply_cpu_times, clear_work_stats, propagate_loads
from .model import BalancerSettings, Decision, HintPolicy, PassReport, Snapshot
from .placement import calculate_placement
from .reasons import explain_irq
from .topology import NO_NODE, BannedCpus, Topology, TopoObj, build_topology, compute_banned_cpus

if TYPE_CHECKING:
    from .foreign import ForeignWrites  # set by the daemon only

__all__ = ["Balancer", "PolicyHook", "RescanWait"]


class RescanWait(NamedTuple):
    """A rescan rebuilt the tree and took a baseline: wait, then ``resume_pass``.

    irqbalance 1.9.2 waits one interval inside the pass for a fresh baseline,
    then balances with the new tree (no load data yet). The balancer's lock
    is free meanwhile: readers (API, control socket) are served between the
    halves of the pass.
    """


class _PassClock(NamedTuple):
    """When the running pass began (a rescan pass spans its wait)."""

    started: float
    cpu_started: float


#: Shortest time between two warnings that sysfs and /proc/interrupts disagree.
MISMATCH_LOG_INTERVAL = 30.0


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
        debug_indent: str = INDENT,
        keep_text: bool = False,
        memo_limit: int = procinterrupts.MEMO_LIMIT,
    ) -> None:
        self.root = root
        self.settings = settings or BalancerSettings()
        #: IRQs pinned by hand (API): banned whatever later settings say.
        self._pinned: set[int] = set()
        self._configured_bans = self.settings.banned_irqs
        self.policy = policy
        self.write = write
        self.log = log or logging.getLogger("pyirqbalance")
        self.debug_indent = debug_indent
        #: Held while a pass changes the tree; readers (API, control socket) take it too.
        self.lock = threading.RLock()

        self.cycle = 0
        self.topo: Topology | None = None
        self.banned_cpu_info: BannedCpus | None = None
        self.db = IrqDb(self.log)
        self.rebalance: list[IrqInfo] = []
        self.need_rescan = False
        #: A rescan pass is waiting for its fresh baseline (the lock is free).
        self.waiting = False
        self._clock = _PassClock(0.0, 0.0)
        self._rescanned = False
        #: The scan of the rescan pass that is waiting (its baseline).
        self._waiting_counts: procinterrupts.IrqCounts | None = None
        #: The largest /proc/interrupts kept whole to compare the next pass's
        #: with; bigger ones are streamed and compared by line hashes (0:
        #: always, for a single pass: the baseline read needs no 6 MB copy).
        self._scanner = procinterrupts.IrqCountScanner(memo_limit)
        self._stat_size = 0  # /proc/stat's last size: one read(2) per pass
        self._msi_warned = False
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
        #: ``--placement=balanced``: its state between passes (None: irqbalance's placement).
        self.balanced: BalancedPlacement | None = None
        #: Called with {IRQ: smp_affinity} of the IRQs about to be written for the
        #: first time, before any of them is (the daemon stores them durably).
        #: Called with the masks of IRQs about to be written for the first time;
        #: returns those it recorded (None: all). The others are not written.
        self.before_first_write: Callable[[dict[int, int]], set[int] | None] | None = None
        #: IRQs left pending because their original could not be recorded.
        self.originals_held: frozenset[int] = frozenset()
        #: Set while rebuilds cannot make sysfs and /proc/interrupts agree on the
        #: CPUs (no balancing meanwhile): what disagrees, in one line.
        self.cpu_mismatch: str | None = None
        self._rebuilds = 0  # rebuilds since the last pass that balanced
        self._mismatch_logged = -MISMATCH_LOG_INTERVAL
        #: smp_affinity changes pyirqbalance did not make (engine/foreign.py);
        #: None: not looked for. Only a writing balancer looks.
        self.foreign: ForeignWrites | None = None

    # ------------------------------------------------------------------
    # properties other components read
    # ------------------------------------------------------------------

    @property
    def irqs(self) -> list[IrqInfo]:
        """The balanced IRQs of the database, in insertion order."""
        return self.db.irqs

    @property
    def nodes(self) -> list[TopoObj]:
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

    @property
    def _tree(self) -> Topology:
        """The topology tree, which :meth:`start` builds before any pass."""
        if self.topo is None:
            raise RuntimeError("Balancer.start() must run before a pass")
        return self.topo

    # ------------------------------------------------------------------
    # start-up and rebuilds
    # ------------------------------------------------------------------

    def start(self) -> None:
        """Build tree and database, queue every IRQ, take the baseline (irqbalance.c ``main``)."""
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
        cpu_facts = sysfs.read_cpu_facts(self.root, deepestcache=s.deepestcache)
        node_facts = sysfs.read_node_facts(self.root) if s.numa else None
        cmdline = None
        if cpu_facts.isolated is None and cpu_facts.nohz_full is None:
            cmdline = read_cmdline(self.root)
        self.banned_cpu_info = banned = compute_banned_cpus(s, cpu_facts, cmdline)
        if banned.isolated or banned.nohz_full or banned.source.startswith("isolated"):
            self.log.debug("Prevent irq assignment to these isolated CPUs: %s", _m(banned.isolated))
            self.log.debug("Prevent irq assignment to these adaptive-ticks CPUs: %s",
                           _m(banned.nohz_full))
        elif banned.source == "IRQBALANCE_BANNED_CPUS":
            self.log.warning(
                "IRQBALANCE_BANNED_CPUS is discarded, Use IRQBALANCE_BANNED_CPULIST instead"
            )
        self.log.debug("Banned CPUs: %s", _m(banned.mask))
        topo = build_topology(
            cpu_facts, node_facts, banned.mask,
            deepestcache=s.deepestcache, numa=s.numa, warn=self.log.warning,
        )
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("%s", dump_tree(topo, self.debug_indent).rstrip("\n"))

        devices = sysfs.read_pci_devices(self.root)
        # Only IRQs without a PCI device are classified from their text.
        claimed: set[int] = set()
        for dev in devices:
            if dev.msi_irqs is not None:
                claimed.update(dev.msi_irqs)
            elif dev.legacy_irq is not None:
                claimed.add(dev.legacy_irq)
        counts = self._scan_interrupts(known=claimed)
        begin = getattr(self.policy, "begin_build", None)
        if begin is not None:
            begin()  # hooks report each problem once per build
        # Policy hooks may take their timeout per IRQ: readers (API, control
        # socket) keep the last complete database meanwhile, unlocked.
        with self._unlocked(self.policy is not None):
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
                node_exists=lambda number: self._node_exists(topo, number),
            )
        self.db.clear()
        self.topo = topo
        self.rebalance = []
        for entry, rank in zip(plan, heap_ranks(plan)):
            self._add_entry(entry).seq = rank
        for node in topo.nodes:
            self.log.debug("NUMA NODE NUMBER: %d", node.number)
            self.log.debug("LOCAL CPU MASK: %s", _m(node.mask))
        return counts

    @contextmanager
    def _unlocked(self, release: bool) -> Iterator[None]:
        """Let go of the pass's lock for a while (held once, by this thread)."""
        if not release:
            yield
            return
        self.lock.release()
        try:
            yield
        finally:
            self.lock.acquire()

    def _node_exists(self, topo: Topology, number: int) -> bool:
        if topo.node(number) is not None:
            return True
        self.log.warning("NUMA node %d doesn't exist", number)
        return False

    def _device_path(self, name: str | None) -> str:
        if name is None:
            return self.root.sys()
        return sysfs.pci_device_path(self.root, name)

    def _add_entry(self, entry: DbEntry) -> IrqInfo:
        topo = self._tree
        info = IrqInfo(entry.irq, entry.irq_class, entry.irq_type, entry.level)
        info.device = entry.device
        info.name = entry.name
        info.hintpolicy = entry.hintpolicy
        if entry.hintpolicy is not HintPolicy.IGNORE and not entry.banned:
            # Read once, when the IRQ enters the database (irqbalance 1.0-1.1).
            info.hint = procirq.read_irq_affinity(self.root, entry.irq).affinity_hint or 0
        if entry.banned:
            self.log.debug("IRQ %d was BANNED.", entry.irq)
            node = topo.node(NO_NODE)
        else:
            node = topo.node(entry.node)
            if node is None:
                self.log.debug("IRQ %d has an unknown node", entry.irq)
                node = topo.node(NO_NODE)
        self.db.add(entry, info, node)
        return info

    def _hotplug(self, row: procinterrupts.IrqCount) -> IrqInfo | None:
        """An IRQ number the database does not know: add it through the normal path."""
        s = self.settings
        devices = [
            d for d in sysfs.read_pci_devices(self.root)
            if (d.msi_irqs is not None and row.irq in d.msi_irqs)
            or (d.msi_irqs is None and d.legacy_irq == row.irq)
        ][:1]
        if not devices and row.raw is None:
            return None  # its line was not kept (it was known before): rebuild instead
        topo = self._tree
        with self._unlocked(self.policy is not None):  # the hook may take its timeout
            plan = plan_irq_db(
                [row], devices,
                banned_irqs=s.banned_irqs, banmod=s.banmod, policy=self.policy,
                device_path=self._device_path,
                irq_node=lambda irq: procirq.read_irq_node(self.root, irq),
                numa=s.numa, hintpolicy=s.hintpolicy,
                node_exists=lambda number: self._node_exists(topo, number),
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

    def _scan_interrupts(self, known: set[int] | None = None) -> procinterrupts.IrqCounts | None:
        """Stream /proc/interrupts through the scanner; None when unreadable.

        ``known``: IRQs whose lines are not needed (default: the database's).
        """
        if known is None:
            known = self.db.known()
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
        online, db = self._tree.num_online, self.db
        db.mismatch = None
        changed = self._scanner.changed
        rescan = None
        if changed is not None and not db.fresh:
            rescan = db.take_changed(changed, online)
        if rescan is None:
            rescan = db.take_rows(counts.rows, online, self._hotplug, self.rebalance,
                                  rescan_pending=self.need_rescan)
        self.need_rescan = self.need_rescan or rescan
        if counts.has_msi and not self._msi_warned and not self.need_rescan:
            if not any(i.irq_type in (IrqType.MSI, IrqType.MSIX) for i in self.irqs):
                self.log.warning("WARNING: MSI interrupts found in /proc/interrupts")
                self.log.warning("But none found in sysfs, you need to update your kernel")
                self.log.warning("Until then, IRQs will be improperly classified")
            self._msi_warned = True

    def _parse_stat(self, text: str | None) -> None:
        """``parse_proc_stat``: CPU loads, then loads of every object and IRQ."""
        if text is None:
            self.log.warning("WARNING cant open /proc/stat.  balancing is broken")
            return
        rows = procstat.parse_irq_jiffies(text)
        if rows is None:
            self.log.warning("WARNING read /proc/stat. balancing is broken")
            return
        complete = apply_cpu_times(self._tree, rows, first_pass=self.cycle == 0,
                                   hz=self.settings.hz)
        if not complete:
            self.log.warning("WARNING, didn't collect load info for all cpus, balancing is broken")
            return
        propagate_loads(self._tree)

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

    def _with_pins(self, settings: BalancerSettings) -> BalancerSettings:
        left_alone = self.foreign.left_alone if self.foreign is not None else ()
        return settings._replace(
            banned_irqs=tuple(sorted({*self._configured_bans, *self._pinned, *left_alone})))

    def pin_irq(self, irq: int) -> None:
        """Leave ``irq`` alone from now on (banned), touching no other IRQ and no tree.

        The pin outlives new settings (a reload) until :meth:`unpin_irq`.
        """
        with self.lock:
            self._pinned.add(irq)
            self.settings = self._with_pins(self.settings)
            self.db.ban(irq, self.rebalance)

    def disown(self, irq: int) -> None:
        """pyirqbalance writes ``irq`` outside a pass (an API pin): not a foreign write."""
        with self.lock:
            if self.foreign is not None:
                self.foreign.disown(irq)

    def _check_foreign(self) -> None:
        """Foreign writes since the last pass; IRQs fought over too often are banned."""
        foreign = self.foreign
        if foreign is None or not self.write:
            return
        if self.cycle == 0:
            foreign.forget()  # a (re)built tree: expectations are learnt again
            return
        left = foreign.check(self.root, self.irqs)
        if left:
            self.settings = self._with_pins(self.settings)
            for irq in left:
                self.db.ban(irq, self.rebalance)

    def unpin_irq(self, irq: int) -> None:
        """Hand a pinned IRQ back: it is placed at the next pass like a new IRQ.

        An IRQ the settings ban too stays banned.
        """
        with self.lock:
            self._pinned.discard(irq)
            self.settings = self._with_pins(self.settings)
            if irq in self._configured_bans:
                return
            info = self.db.unban(irq, self._add_entry)
            if info is None:
                self.need_rescan = True  # banned since the database was built: classify it
                return
            force_rebalance(info, self.rebalance)

    def update_settings(self, settings: BalancerSettings) -> None:
        """New settings, used from the next rebuild on (pinned IRQs stay banned)."""
        with self.lock:
            self._configured_bans = settings.banned_irqs
            self.settings = self._with_pins(settings)

    def run_pass(self) -> PassReport:
        """One whole balancing pass, a rescan's wait taking no time (dry runs, tests)."""
        step = self.begin_pass()
        while isinstance(step, RescanWait):
            step = self.resume_pass()
        return step

    def begin_pass(self) -> PassReport | RescanWait:
        """One balancing pass (irqbalance 1.9.2 ``scan``), or its first half if it rescans."""
        self._clock = _PassClock(time.perf_counter(), time.thread_time())
        self._rescanned, self.waiting, self._waiting_counts = False, False, None
        with self.lock:
            self.log.debug("\n\n\n" + "-" * 77)
            clear_work_stats(self._tree)
            counts = self._scan_interrupts()
            self._parse_interrupts(counts)
            return self._rescan_or_balance(counts)

    def resume_pass(self, fresh: bool = True) -> PassReport | RescanWait:
        """The pass after a :class:`RescanWait`: a fresh baseline, then balance.

        ``fresh=False`` (stopping): balance with the baseline the rescan took.
        """
        with self.lock:
            self.waiting = False
            counts, self._waiting_counts = self._waiting_counts, None
            if not fresh:
                return self._balance(counts)
            clear_work_stats(self._tree)
            counts = self._scan_interrupts()
            self._parse_interrupts(counts)
            return self._rescan_or_balance(counts)

    def _rescan_or_balance(
        self, counts: procinterrupts.IrqCounts | None
    ) -> PassReport | RescanWait:
        """Rebuild if a rescan is due (then wait for a baseline), else balance."""
        if not self.need_rescan:
            if self.cpu_mismatch is not None:
                self.log.warning("sysfs and /proc/interrupts agree on the CPUs again")
                self.cpu_mismatch = None
            self._rebuilds = 0
            return self._balance(counts)
        if self._rebuilds and self.db.mismatch is not None:
            self._columns_disagree(*self.db.mismatch)
        self._rebuilds += 1
        self._rescanned = True
        self.need_rescan = False
        self.cycle = 0
        self.log.debug("Rescanning cpu topology ")
        clear_work_stats(self._tree)
        counts = self._build()
        for info in self.irqs:
            force_rebalance(info, self.rebalance)
        self._parse_interrupts(counts)
        self._parse_stat(self._read_stat())
        self.waiting, self._waiting_counts = True, counts
        return RescanWait()

    def _balance(self, counts: procinterrupts.IrqCounts | None) -> PassReport:
        """The second half of ``scan``: loads, migrations, placement, activation."""
        topo = self._tree
        stat = self._read_stat()
        self._parse_stat(stat)
        self._check_foreign()
        if self.settings.placement == "balanced":
            self._plan_balanced(stat)
        elif self.cycle:
            update_migration_status(
                topo.cpus, topo.caches, topo.packages, topo.nodes,
                self.rebalance, cycle=self.cycle,
                migrateval=self.settings.migrateval, powerthresh=self.settings.powerthresh,
                log=self.log.debug,
            )
        calculate_placement(topo, self.rebalance, warn=self.log.debug)
        if self.write and self.before_first_write is not None:
            self._hand_over_originals(topo.online)
        activations = activate_mappings(
            self.root, self.irqs, topo.online, self.rebalance,
            banned=topo.banned, write=self.write, log=self.log.debug,
        )
        for info in self.irqs:
            if info.irq in self.originals_held:
                info.moved = True
        if self.foreign is not None and self.write:
            self.foreign.learn(self.root, activations)
        for act in activations:
            self.db.activations[act.irq] = act
            written = act.write
            if written is not None and written.errno and (
                    errno_status(written.errno) is WriteStatus.UNMANAGED):
                self._refused(written)
            if act.write is not None and act.current is not None:
                self._originals.setdefault(act.irq, act.current)
        if self.balanced is not None:
            self.balanced.activated(activations)
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("%s", dump_tree(topo, self.debug_indent).rstrip("\n"))
        cycle = self.cycle
        self.cycle += 1
        snapshot = None
        if self.keep_text:
            text = counts.text if counts is not None else None
            snapshot = self._last_snapshot = Snapshot(time.time(), text or b"", stat)
        decisions: tuple[Decision, ...] = ()
        if self.record_decisions:
            by_irq = self.db.by_irq
            decisions = tuple(self._decision(by_irq[a.irq]) for a in activations
                              if a.irq in by_irq)
        clock = self._clock
        return PassReport(
            cycle=cycle,
            rescanned=self._rescanned,
            decisions=decisions,
            writes=tuple(a.write for a in activations if a.write is not None),
            snapshot=snapshot,
            duration_s=time.perf_counter() - clock.started,
            cpu_s=time.thread_time() - clock.cpu_started,
        )

    def _columns_disagree(self, irq: int, ncols: int, online: int) -> None:
        """CPU columns still not the online CPUs after a rebuild: flag, warn (rate-limited).

        Once is CPU hotplug, fixed by the rebuild; persisting, it is a
        disagreement between sysfs and /proc/interrupts, and no pass balances
        until it ends (``cpu_mismatch``, a warning at most every
        :data:`MISMATCH_LOG_INTERVAL` seconds).
        """
        self.cpu_mismatch = (f"IRQ {irq} has {ncols} CPU columns in /proc/interrupts, "
                             f"sysfs has {online} CPUs online")
        now = time.monotonic()
        if now - self._mismatch_logged >= MISMATCH_LOG_INTERVAL:
            self._mismatch_logged = now
            self.log.warning("%s: rescanning again (attempt %d); no balancing until they agree",
                             self.cpu_mismatch, self._rebuilds + 1)

    def _refused(self, result: WriteResult) -> None:
        """A write the kernel refused for good, at the default level (EIO, a
        kernel-managed IRQ, is expected: info)."""
        level = logging.INFO if result.errno == errno.EIO else logging.WARNING
        self.log.log(level, "IRQ %d: the kernel refused smp_affinity %s (%s); "
                     "not managed until the next rescan", result.irq, result.text, result.reason)

    def _hand_over_originals(self, online: int) -> None:
        """Masks of IRQs this pass is about to write for the first time, before it does."""
        found: dict[int, int] = {}
        for info in self.irqs:
            if not info.moved or info.assigned is None or info.irq in self._originals:
                continue
            current = procirq.read_smp_affinity(self.root, info.irq)
            if current is not None and current != info.assigned.mask & online:
                found[info.irq] = current
        hook = self.before_first_write
        held: set[int] = set()
        if found and hook is not None:
            recorded = hook(found)
            if recorded is not None:
                held = set(found) - recorded
            self._originals.update((irq, m) for irq, m in found.items() if irq not in held)
        for info in self.irqs:
            # Not written this pass, tried again at the next one (still pending).
            if info.irq in held:
                info.moved = False
        self.originals_held = frozenset(held)

    # ------------------------------------------------------------------
    # --placement=balanced (engine/balanced.py)
    # ------------------------------------------------------------------

    def _plan_balanced(self, stat: str | None) -> None:
        """Load-aware placement of the heavy IRQs; the rest go through the default."""
        if self.balanced is None:
            self.balanced = BalancedPlacement(self.root, self.log)
        self.balanced.plan_pass(self, stat)

    def interrupt_columns(
        self, irqs: Iterable[int], whole: bool = False
    ) -> dict[int, CellsChanged]:
        """What the last /proc/interrupts scan knows of each IRQ's per-CPU columns
        (:meth:`~pyirqbalance.kernel.scanner.IrqCountScanner.cells`)."""
        return self._scanner.cells(irqs, whole)

    @property
    def placement_plan(self) -> Plan | None:
        """The last balanced pass's plan (None: irqbalance's placement, or no pass yet)."""
        return self.balanced.last_plan if self.balanced is not None else None

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
        return self.db.by_irq.get(irq)

    def is_banned(self, irq: int) -> bool:
        return irq in self.db.banned

    def decisions(self) -> tuple[Decision, ...]:
        """The current decision for every numbered IRQ, in /proc/interrupts order."""
        with self.lock:
            records = {**self.db.by_irq, **self.db.banned}
            order = [irq for irq in self._order if irq in records]
            listed = set(order)
            order += [irq for irq in records if irq not in listed]
            return tuple(self._decision(records[irq]) for irq in order)

    def decision(self, irq: int) -> Decision | None:
        """The current decision for one IRQ (None: not in the database)."""
        with self.lock:
            info = self.db.by_irq.get(irq) or self.db.banned.get(irq)
            return self._decision(info) if info is not None else None

    def _decision(self, info: IrqInfo) -> Decision:
        act = self.db.activations.get(info.irq)
        current = act.current if act is not None else procirq.read_smp_affinity(self.root, info.irq)
        return explain_irq(
            info, self.db.entries.get(info.irq), act,
            banned=info.irq in self.db.banned, current=current,
            online=self.topo.online if self.topo is not None else 0,
            banned_cpus=self.topo.banned if self.topo is not None else 0,
        )


def _m(mask: int) -> str:
    return format_mask(mask)
