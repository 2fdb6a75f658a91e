"""The daemon shell: composition root, main loop, signals.

Everything is built here from the resolved :class:`~pyirqbalance.cli.Options`
and passed in explicitly; signal handlers only set flags and wake the loop,
which waits on an event with a timeout, so a pass is never interrupted
half-way. SIGTERM/SIGINT finish the pass and exit 0, SIGHUP asks for a rescan
(ignored before the first pass, as irqbalance does), SIGUSR1 logs the state.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

from .balancer import Balancer
from .cli import Options
from .cpumask import format_mask
from .explain import format_text, machine_report
from .procirq import write_smp_affinity
from .sysroot import SysRoot
from .uisocket import ControlSocket, ControlSocketError, SetupState, format_stats

__all__ = ["run", "EXIT_OK", "EXIT_USAGE", "EXIT_CONFIG", "EXIT_RUNTIME"]

EXIT_OK, EXIT_USAGE, EXIT_CONFIG, EXIT_RUNTIME = 0, 1, 2, 3
STATE_FILE = "original-affinity.json"


class _Signals:
    """Flags set by signal handlers; the loop acts on them between passes."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.stop = False
        self.rescan = False
        self.dump = False

    def install(self) -> None:
        def on_stop(signum, frame):
            self.stop = True
            self.wake.set()

        def on_hup(signum, frame):
            self.rescan = True
            self.wake.set()

        def on_usr1(signum, frame):
            self.dump = True
            self.wake.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGUSR2, on_stop)
        signal.signal(signal.SIGHUP, on_hup)
        signal.signal(signal.SIGUSR1, on_usr1)

    def sleep(self, seconds: float) -> bool:
        """Wait up to ``seconds``; False when asked to stop."""
        self.wake.wait(seconds)
        self.wake.clear()
        return not self.stop


class _Control:
    """The daemon side of irqbalance's control socket (irqbalance-ui, scripts).

    Called on the socket's thread. Replies are what the last pass left:
    ``stats`` is formatted by the loop after each pass and handed out as is,
    so a client never waits for a pass; changes only set values the loop
    picks up (interval) or ask the balancer for a rescan, as irqbalance does.
    """

    def __init__(self, balancer: Balancer, interval: int) -> None:
        self.balancer = balancer
        self.interval = interval
        self._lock = threading.Lock()
        self._stats = b""
        self.refresh()

    def refresh(self) -> None:
        """Called by the loop after start-up and after every pass."""
        with self.balancer.lock:
            stats = format_stats(self.balancer.nodes)
        with self._lock:
            self._stats = stats

    def control_stats(self) -> bytes:
        with self._lock:
            return self._stats

    def control_setup(self) -> SetupState:
        b = self.balancer
        return SetupState(self.interval, tuple(b.settings.banned_irqs), b.banned_cpus)

    def control_set_interval(self, seconds: int) -> None:
        self.interval = seconds

    def control_ban_irqs(self, irqs: tuple[int, ...]) -> None:
        b = self.balancer
        b.update_settings(replace(b.settings, banned_irqs=tuple(irqs)))
        b.force_rescan()

    def control_ban_cpus(self, cpulist: str | None) -> None:
        b = self.balancer
        b.update_settings(replace(b.settings, socket_banned_cpulist=cpulist))
        b.force_rescan()


def _run_dir(opts: Options) -> str:
    """irqbalance's /run/irqbalance, inside the sysroot for fake machines."""
    if os.path.realpath(opts.sysroot) == "/":
        return "/run/irqbalance"
    path = os.path.join(opts.sysroot, "run", "irqbalance")
    os.makedirs(path, exist_ok=True)
    return path


class _JournalFormatter(logging.Formatter):
    """``<N>message``: systemd reads the syslog priority from the prefix (sd-daemon(3))."""

    PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
                logging.CRITICAL: 2}

    def format(self, record: logging.LogRecord) -> str:
        prio = self.PRIORITY.get(record.levelno, 6)
        return "".join(f"<{prio}>{line}\n" for line in record.getMessage().split("\n")).rstrip("\n")


def _logger(opts: Options) -> logging.Logger:
    log = logging.getLogger("pyirqbalance")
    log.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JournalFormatter() if opts.journal else logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if opts.debug else logging.WARNING)
    log.propagate = False
    return log


def state_dir(opts: Options) -> Path:
    """Where the original affinities are kept (inside the sysroot for fake machines)."""
    base = Path(opts.sysroot)
    return base / "var" / "lib" / "pyirqbalance"


def _save_originals(opts: Options, originals: dict[int, int], log: logging.Logger) -> None:
    if not originals:
        return
    path = state_dir(opts) / STATE_FILE
    try:
        known = json.loads(path.read_text()) if path.exists() else {}
        for irq, mask in originals.items():
            known.setdefault(str(irq), format_mask(mask))  # the first recorded value wins
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(known, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except (OSError, ValueError) as err:
        log.warning("cannot record original affinities in %s: %s", path, err)


def restore(opts: Options, root: SysRoot, log: logging.Logger) -> int:
    """``--restore``: write back every affinity recorded before the first change."""
    path = state_dir(opts) / STATE_FILE
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        sys.stderr.write(f"pyirqbalance: nothing to restore ({path} does not exist)\n")
        return EXIT_OK
    except (OSError, ValueError) as err:
        sys.stderr.write(f"pyirqbalance: cannot read {path}: {err}\n")
        return EXIT_RUNTIME
    failed = 0
    for irq, text in sorted(saved.items(), key=lambda kv: int(kv[0])):
        result = write_smp_affinity(root, int(irq), int(text.replace(",", ""), 16))
        if result.errno:
            failed += 1
            log.warning("IRQ %s: cannot restore %s: %s", irq, text, result.reason)
    if not failed:
        path.unlink()
    return EXIT_OK if not failed else EXIT_RUNTIME


def run(opts: Options) -> int:
    """Run pyirqbalance as the options say; returns the exit status."""
    log = _logger(opts)
    root = SysRoot(opts.sysroot)
    if not os.path.isdir(root.proc()) or not os.path.isdir(root.sys()):
        sys.stderr.write(f"pyirqbalance: --sysroot {opts.sysroot}: no proc/ and sys/ directories there\n")
        return EXIT_USAGE
    if opts.restore:
        return restore(opts, root, log)
    if os.geteuid() != 0 and root.is_live and not opts.dry_run:
        log.warning("Irqbalance hasn't been executed under root privileges, "
                    "thus it won't in fact balance interrupts.")

    signals = _Signals()
    signals.install()
    balancer = Balancer(
        root, opts.settings, write=not opts.dry_run, log=log,
        sleep=signals.sleep, interval=opts.interval,
        debug_indent="...." if opts.journal else "    ",
    )
    balancer.start()
    if balancer.topo.num_online <= 1:
        log.warning("Balancing is ineffective on systems with a single cpu.  Shutting down")
        return EXIT_OK

    if opts.dry_run:
        balancer.run_pass()
        report = machine_report(balancer)
        if opts.output_format == "json":
            sys.stdout.write(json.dumps(report, indent=1) + "\n")
        else:
            sys.stdout.write(format_text(report))
        return EXIT_OK

    control = _Control(balancer, opts.interval)
    sock = None
    if not opts.oneshot:
        try:
            sock = ControlSocket(control, run_dir=_run_dir(opts), log=log)
            sock.start()
        except (ControlSocketError, OSError) as err:
            sys.stderr.write(f"pyirqbalance: {err}\n")
            return EXIT_USAGE
    try:
        return _loop(opts, balancer, signals, control, log)
    finally:
        if sock is not None:
            sock.stop()


def _loop(opts: Options, balancer: Balancer, signals: _Signals, control: _Control,
          log: logging.Logger) -> int:
    while not signals.stop:
        if not signals.sleep(control.interval):
            break
        if signals.rescan:
            signals.rescan = False
            balancer.request_rescan()
        if signals.dump:
            signals.dump = False
            log.warning("%s", balancer.dump_tree().rstrip("\n"))
        balancer.run_pass()
        control.refresh()
        _save_originals(opts, balancer.original_affinities(), log)
        if opts.oneshot:
            break
    return EXIT_OK
