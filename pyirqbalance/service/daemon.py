"""The daemon: composition root, main loop, signals, life cycle.

:func:`run` builds everything from the resolved :class:`~pyirqbalance.service.config.Options`
and passes it in explicitly -- the SysRoot, the Balancer with its policy
hook, the systemd notifier, the services (control socket; the API and
history plug in the same way) and the per-pass listeners (the original
affinities; metrics and history likewise) -- then runs :class:`Daemon`.

Signal handlers only set flags and wake the loop, which waits on a pipe
with a timeout, so a pass is never interrupted half-way. A handler takes
no lock: Python runs it on the main thread between two bytecodes, possibly
while that thread holds the very lock (a ``threading.Event``'s, say) the
handler would wait for, and the daemon would then never see SIGTERM.

* SIGTERM, SIGINT, SIGUSR2: finish the pass, exit 0;
* SIGHUP: read the configuration again, hand the balancer its new settings
  and ask for a rescan (ignored before the first pass, as irqbalance does);
* SIGUSR1: log the topology tree with its IRQs once.

Under systemd (``Type=notify``): READY=1 after the first pass, STATUS= after
every pass, WATCHDOG=1 from the loop (so a stuck loop trips the watchdog),
RELOADING=1/READY=1 around a reload, STOPPING=1 at the end.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..engine.balancer import Balancer, RescanWait
from ..engine.model import PassReport
from ..errors import StartError
from ..kernel.cpumask import format_cpulist
from ..kernel.procinterrupts import MEMO_LIMIT
from ..kernel.sysroot import SysRoot
from ..supervise import StatusBoard
from .config import ConfigError, Options
from .detach import daemonize
from .exits import EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, UsageError
from .logsetup import setup_logging
from .originals import OriginalAffinities, restore
from .passlog import PassLog
from .pidfile import InstanceLock, remove_pidfile, write_pidfile
from .rivals import find_irqbalance

# Everything a oneshot run does not need is imported where it is used, not here:
# start-up time is most of a oneshot's CPU (docs/architecture.md).
if TYPE_CHECKING:
    from ..engine.classify import PolicyHook
    from .notify import Notifier

__all__ = ["Attach", "Daemon", "PassListener", "Service", "run"]

#: umask of a daemon (not of a oneshot run, which creates nothing but the state file).
DAEMON_UMASK = 0o027

#: The loop counts as stuck once no pass ended for this many intervals plus
#: :data:`STALL_GRACE` seconds (``/api/v1/health``: ``pass_stalled``).
STALL_INTERVALS = 3
STALL_GRACE = 10.0

#: Called with every pass's report, on the loop's thread; must not block.
PassListener = Callable[[PassReport], None]


class Attach(Protocol):
    """Adds services and pass listeners to a daemon before its loop starts; returns an
    exit status to stop with (a configuration that cannot be served), or None."""

    def __call__(self, opts: Options, root: SysRoot, daemon: Daemon,
                 log: logging.Logger) -> int | None: ...


class Service(Protocol):
    """Something that runs beside the loop (control socket, API, history writer)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


# --------------------------------------------------------------------------
# signals
# --------------------------------------------------------------------------


class _Signals:
    """Flags set by signal handlers; the loop acts on them.

    The loop waits in :meth:`wait` on the read end of a pipe. The C-level
    handler writes the signal number to the write end (``signal.set_wakeup_fd``:
    whichever thread the kernel interrupts), and the Python handler, once it has
    set its flag, writes a byte too, so the loop never checks the flags before
    the handler has run. Neither takes a lock.
    """

    def __init__(self) -> None:
        self.stop = False
        self.reload = False
        self.dump = False
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def install(self) -> None:
        import signal  # deferred: dry runs install no handlers (start-up cost)

        def flag(name: str) -> Callable:
            def handler(signum, frame) -> None:
                setattr(self, name, True)
                self.wake()

            return handler

        signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2):
            signal.signal(sig, flag("stop"))
        signal.signal(signal.SIGHUP, flag("reload"))
        signal.signal(signal.SIGUSR1, flag("dump"))

    def wake(self) -> None:
        """Make :meth:`wait` return (safe in a signal handler: no lock, never blocks)."""
        try:
            os.write(self._w, b"\0")
        except OSError:  # full (the loop is woken already) or closed: the flag is set
            pass

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a wake; True if woken (the wakes are consumed)."""
        import select  # deferred with the rest of the daemon's waiting

        if not select.select([self._r], [], [], max(timeout, 0))[0]:
            return False
        try:
            while os.read(self._r, 4096):
                pass
        except OSError:  # drained (BlockingIOError)
            pass
        return True

    def close(self) -> None:
        """Stop waking the pipe and close it (a late signal only sets its flag)."""
        import signal

        old = signal.set_wakeup_fd(-1)
        if old != self._w:  # someone else's: leave it in place
            signal.set_wakeup_fd(old)
        os.close(self._r)
        os.close(self._w)
        self._r = self._w = -1


def peak_rss_kib() -> int:
    """The process's peak resident set size so far, KiB (``ru_maxrss``)."""
    import resource  # deferred: --debug only

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# --------------------------------------------------------------------------
# the daemon
# --------------------------------------------------------------------------


class Daemon:
    """The main loop around one Balancer, with its services and listeners."""

    def __init__(
        self,
        opts: Options,
        balancer: Balancer,
        *,
        log: logging.Logger,
        signals: _Signals,
        notifier: Notifier,
        reload: Callable[[], Options] | None = None,
        watchdog: float | None = None,
    ) -> None:
        self.opts = opts
        self.balancer = balancer
        self.log = log
        self.signals = signals
        self.notifier = notifier
        self._reload = reload
        self.watchdog = watchdog
        self.interval = opts.interval
        self.services: list[Service] = []
        self.listeners: list[PassListener] = []
        self._listener_failed: set[int] = set()
        self._last_ping = time.monotonic()
        self.passes = 0
        #: What health and metrics show of the daemon (threads, last pass, reloads).
        self.board = StatusBoard()
        self.board.interval = self.interval
        #: When the daemon started (the pass age counts from it before the first pass).
        self.started_at = time.monotonic()

    # -- waiting -------------------------------------------------------

    def set_interval(self, seconds: int) -> None:
        self.interval = seconds
        self.board.interval = seconds

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` (also a rescan pass's wait); False once asked to stop.

        Reloads and dumps are handled as they arrive, without restarting the
        wait; the watchdog is fed from here, so it stops being fed if the loop
        hangs.
        """
        deadline = time.monotonic() + seconds
        while not self.signals.stop:
            self._feed_watchdog()
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            step = left if self.watchdog is None else min(left, self.watchdog)
            if self.signals.wait(step):
                self._handle_signals()
        return False

    def _feed_watchdog(self) -> None:
        if self.watchdog is not None and time.monotonic() - self._last_ping >= self.watchdog:
            self.notifier.notify("WATCHDOG=1")
            self._last_ping = time.monotonic()

    def _handle_signals(self) -> None:
        if self.signals.reload:
            self.signals.reload = False
            self.reload()
        if self.signals.dump:
            self.signals.dump = False
            self.log.warning("pyirqbalance state after %d passes:\n%s", self.passes,
                             self.balancer.dump_tree().rstrip("\n"))

    def reload(self) -> None:
        """SIGHUP: configuration again, new settings, rescan at the next pass."""
        self.notifier.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
        self.board.reloads += 1
        if self._reload is not None:
            try:
                opts = self._reload()
            except (ConfigError, UsageError) as err:
                self.board.reload_failures += 1
                self.board.last_reload_ok = False
                self.log.error("reload failed, keeping the running configuration: %s", err)
                self.notifier.notify("READY=1", self._status())
                return
            except Exception as err:  # noqa: BLE001 - a reload never ends the daemon
                self.board.reload_failures += 1
                self.board.last_reload_ok = False
                self.log.error("reload failed, keeping the running configuration: %s: %s",
                               type(err).__name__, str(err)[:200])
                self.notifier.notify("READY=1", self._status())
                return
            self.opts = opts
            self.board.last_reload_ok = True
            _watch_foreign_writes(self.balancer, opts, self.log)
            # What the control socket set (irqbalance-ui "settings cpus") outlives a reload.
            self.balancer.update_settings(opts.settings._replace(
                socket_banned_cpulist=self.balancer.settings.socket_banned_cpulist))
            self.balancer.policy = _policy_hook(opts, self.balancer.root, self.log)
            self.set_interval(opts.interval)
        self.balancer.request_rescan()
        self.log.info("SIGHUP: configuration reloaded, topology rescan requested")
        self.notifier.notify("READY=1", self._status())

    # -- passes --------------------------------------------------------

    def pass_age(self) -> float:
        """Seconds since the last pass ended (since the start, before the first)."""
        last = self.board.last_pass
        return round(time.monotonic() - (self.started_at if last is None else last), 3)

    def stall_limit(self) -> float:
        """A pass age beyond this means the loop is stuck: a few intervals and a margin."""
        return float(STALL_INTERVALS * self.interval + STALL_GRACE)

    def stalled(self) -> str | None:
        """The ``pass_stalled`` condition: None while passes come in time."""
        age = self.pass_age()
        if age <= self.stall_limit():
            return None
        return (f"no balancing pass for {age:.0f} s (interval {self.interval} s): "
                "the main loop is stuck")

    def _status(self) -> str:
        b = self.balancer
        managed = len(b.irqs)
        return (f"STATUS=pass {self.passes}: {managed} IRQs balanced on CPUs "
                f"{format_cpulist(b.online_cpus & ~b.banned_cpus) or 'none'}"
                + (f" (banned {format_cpulist(b.banned_cpus)})" if b.banned_cpus else ""))

    def run_pass(self) -> PassReport | None:
        """One pass, never raising: a failure is logged and forces a rescan."""
        try:
            report = self._balance()
        except Exception as err:
            self.log.error("balancing pass failed (%s: %s); rescanning at the next pass",
                           type(err).__name__, err)
            self.log.debug("pass failure details", exc_info=True)
            self.balancer.force_rescan()
            return None
        self.passes += 1
        self.board.last_pass = time.monotonic()
        if report.cycle == 0 and not self.opts.oneshot:
            _settle_collector()  # a (re)built tree and database: kept until the next rebuild
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("pass %d: %.1f ms, %.1f ms CPU, peak RSS %d KiB", report.cycle,
                           report.duration_s * 1e3, report.cpu_s * 1e3, peak_rss_kib())
        for listener in self.listeners:
            try:
                listener(report)
            except Exception as err:  # noqa: BLE001
                if id(listener) not in self._listener_failed:
                    self._listener_failed.add(id(listener))
                    self.log.error("pass listener %r failed: %s", listener, err)
        return report

    def _balance(self) -> PassReport:
        """One pass; a rescan pass waits here one interval for a fresh baseline."""
        step = self.balancer.begin_pass()
        while isinstance(step, RescanWait):
            step = self.balancer.resume_pass(fresh=self.sleep(self.interval))
        return step

    def run(self) -> int:
        """Wait, pass, repeat; returns the exit status."""
        self.notifier.notify(
            f"EXTEND_TIMEOUT_USEC={int((2 * self.interval + 30) * 1e6)}",
            f"STATUS=started; first pass in {self.interval} s",
        )
        if self.opts.oneshot:
            self.log.info("--oneshot: one balancing pass in %d s (placed by NUMA node, class "
                          "and interrupt count: a first pass has no load data), then exit",
                          self.interval)
        started: list[Service] = []
        try:
            for service in self.services:
                try:
                    service.start()
                except Exception as err:  # noqa: BLE001 - a socket in use, a missing directory
                    self.log.error("cannot start %s: %s", _name(service), err)
                    return EXIT_RUNTIME
                started.append(service)
            ready = False
            while self.sleep(self.interval):
                report = self.run_pass()
                state = [self._status()]
                if report is not None and not ready:
                    state.insert(0, "READY=1")
                    ready = True
                if self.watchdog is not None:
                    state.append("WATCHDOG=1")
                    self._last_ping = time.monotonic()
                self.notifier.notify(*state)
                if self.opts.oneshot:
                    break
            return EXIT_OK
        finally:
            self.notifier.notify("STOPPING=1")
            for service in reversed(started):
                try:
                    service.stop()
                except Exception as err:  # noqa: BLE001
                    self.log.error("stopping %r failed: %s", service, err)


def _name(service: Service) -> str:
    """A service's name for a log line (its ``label``: never an internal class name)."""
    return str(getattr(service, "label", "a background service"))


def _watch_foreign_writes(balancer: Balancer, opts: Options, log: logging.Logger) -> None:
    """Look for foreign smp_affinity writes as ``foreign_writes:`` says (a reload
    hands back the IRQs left alone)."""
    cfg = opts.config.foreign_writes
    if not cfg.enabled or opts.oneshot:
        balancer.foreign = None
        return
    from ..engine.foreign import ForeignSettings, ForeignWrites  # deferred: daemons only

    settings = ForeignSettings(cfg.max_changes, cfg.window_s)
    if balancer.foreign is None:
        balancer.foreign = ForeignWrites(settings, log=log)
    else:
        balancer.foreign.settings = settings
        balancer.foreign.reset()


def _left_alone(balancer: Balancer) -> str | None:
    """The problem flag of IRQs left alone after foreign writes (None: none)."""
    foreign = balancer.foreign
    if foreign is None or not foreign.left_alone:
        return None
    irqs = ", ".join(str(irq) for irq in sorted(foreign.left_alone))
    return f"IRQ {irqs} left alone: something else keeps changing their smp_affinity"


def _settle_collector() -> None:
    """After a (re)build: collect once, then leave what is alive out of full collections.

    The tree, the IRQ database and the modules live until the next rebuild,
    yet every full collection walked them (at 1024 CPUs: 40-80 ms, every few
    passes), though only a pass's new objects can become garbage. Frozen
    objects are never collected, so the old ones are thawed first: the last
    tree is freed here, not kept.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


# --------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------


def _absolute(opts: Options) -> Options:
    """Paths made absolute before a daemon's chdir("/")."""
    return opts._replace(
        sysroot=os.path.abspath(opts.sysroot),
        pidfile=os.path.abspath(opts.pidfile) if opts.pidfile else None,
        state_dir=os.path.abspath(opts.state_dir),
        run_dir=os.path.abspath(opts.run_dir),
    )


def _policy_hook(opts: Options, root: SysRoot, log: logging.Logger) -> PolicyHook | None:
    """The policy script / banscript runner, or None when neither is configured."""
    if not opts.policyscript and not opts.banscript:
        return None
    from .policy import make_policy_hook  # deferred: it needs subprocess (start-up cost)

    return make_policy_hook(opts.policyscript, opts.banscript, opts.hook_timeout, log,
                            sysfs_root=root.sys())


def _dry_run(opts: Options, root: SysRoot, log: logging.Logger) -> int:
    """Read everything, write nothing, wait for nothing; print the report."""
    from .explain import format_text, machine_report  # deferred: dry runs only

    balancer = Balancer(root, opts.settings, write=False, log=log,
                        policy=_policy_hook(opts, root, log),
                        keep_text=True,  # the report names IRQs from the full rows
                        memo_limit=0)  # one pass
    balancer.start()
    balancer.run_pass()
    report = machine_report(balancer)
    if opts.output_format == "json":
        import json  # deferred (start-up cost)

        sys.stdout.write(json.dumps(report, indent=1) + "\n")
    else:
        sys.stdout.write(format_text(report))
    return EXIT_OK


def _fail(code: int, message: str) -> int:
    sys.stderr.write(f"pyirqbalance: {message}\n")
    return code


def run(opts: Options, *, reload: Callable[[], Options] | None = None,
        environ: dict[str, str] | None = None, attach: Attach | None = None) -> int:
    """Run pyirqbalance as ``opts`` say; returns the exit status.

    ``attach`` adds what the configuration asks for around a daemon's loop (history, API,
    metrics, control socket: :func:`pyirqbalance.api.wiring.attach`, passed in by the
    composition root :mod:`pyirqbalance.app`); without it a daemon only balances."""
    env = os.environ if environ is None else environ
    opts = _absolute(opts)
    root = SysRoot(opts.sysroot)
    if not os.path.isdir(root.proc()) or not os.path.isdir(root.sys()):
        return _fail(EXIT_USAGE, f"--sysroot {opts.sysroot}: no proc/ and sys/ directories there")
    detached = not (opts.foreground or opts.oneshot or opts.dry_run or opts.restore)
    log = setup_logging(debug=opts.debug, journal=opts.journal, detached=False, environ=env)
    try:
        if opts.restore:
            return restore(opts, root, log)
        if opts.dry_run:
            return _dry_run(opts, root, log)
    except Exception as err:  # noqa: BLE001 - unreadable kernel files and the like
        return _fail(EXIT_RUNTIME, f"{type(err).__name__}: {err}")
    if os.geteuid() != 0 and root.is_live:
        log.warning("Irqbalance hasn't been executed under root privileges, "
                    "thus it won't in fact balance interrupts.")

    if not opts.oneshot:
        # The daemon's own umask, whatever it was started with: its files are
        # private unless created with a mode of their own (the pid file's 0644).
        os.umask(DAEMON_UMASK)
    lock = InstanceLock(opts.run_dir)
    pid_written = False
    try:
        if root.is_live and not opts.force:
            other = find_irqbalance(root, os.getpid())
            if other is not None:
                raise StartError(
                    f"irqbalance is running (pid {other}); two balancers would fight over "
                    "/proc/irq: stop it (systemctl disable --now irqbalance) or use --force"
                )
        try:
            lock.acquire()
        except OSError as err:  # not root, read-only /run: run, but say so
            log.warning("cannot take the instance lock %s: %s", lock.path, err.strerror)
        for irq in opts.settings.banned_irqs:
            sys.stdout.write(f"IRQ {irq} was BANNED.\n")  # irqbalance echoes -i at start
        if detached:
            daemonize()
            log = setup_logging(debug=opts.debug, journal=opts.journal, detached=True,
                                environ=env)
        lock.write_pid(os.getpid())
        if opts.pidfile:
            pid_written = write_pidfile(opts.pidfile, os.getpid(), log)
        return _serve(opts, root, log, reload, env, attach)
    except StartError as err:
        return _fail(EXIT_RUNTIME, str(err))
    finally:
        if pid_written and opts.pidfile:
            remove_pidfile(opts.pidfile, os.getpid())
        lock.release()


def _serve(opts: Options, root: SysRoot, log: logging.Logger,
           reload: Callable[[], Options] | None, env, attach: Attach | None) -> int:
    from .notify import Notifier, watchdog_interval  # deferred: dry runs never notify

    signals = _Signals()
    signals.install()
    if not opts.oneshot and (opts.policyscript or opts.banscript):
        from .policy import become_subreaper  # deferred: hooks only

        become_subreaper()  # a hook's descendants that call setsid are ended with it
    notifier = Notifier(env)
    balancer = Balancer(
        root, opts.settings, write=True, log=log,
        policy=_policy_hook(opts, root, log),
        debug_indent="...." if opts.journal else "    ",
        memo_limit=0 if opts.oneshot else MEMO_LIMIT,  # one pass: nothing to compare it with
    )
    daemon = Daemon(opts, balancer, log=log, signals=signals, notifier=notifier,
                    reload=reload, watchdog=watchdog_interval(env))
    daemon.listeners.append(PassLog(balancer, log, oneshot=opts.oneshot))
    try:
        balancer.start()
    except Exception as err:  # noqa: BLE001
        log.error("cannot build the topology: %s: %s", type(err).__name__, err)
        return EXIT_RUNTIME
    topo = balancer.topo
    if topo is not None and topo.num_online <= 1:
        log.warning("Balancing is ineffective on systems with a single cpu.  Shutting down")
        return EXIT_OK
    originals = OriginalAffinities(opts.state_dir, log, root)
    balancer.before_first_write = originals.record
    _watch_foreign_writes(balancer, opts, log)
    board = daemon.board
    board.flags["cpu_mismatch"] = lambda: balancer.cpu_mismatch
    board.flags["irqs_left_alone"] = lambda: _left_alone(balancer)
    board.flags["pass_stalled"] = daemon.stalled
    board.flags["originals_unrecorded"] = lambda: originals.problem
    board.facts["last_pass_age_s"] = daemon.pass_age
    board.facts["stalled_after_s"] = daemon.stall_limit
    if attach is not None and not opts.oneshot:
        code = attach(opts, root, daemon, log)
        if code is not None:
            return code
    try:
        return daemon.run()
    finally:
        notifier.close()
        signals.close()
