"""The affinities pyirqbalance found, kept so ``--restore`` can put them back.

``state_dir/original-affinity.json`` holds, for each IRQ pyirqbalance
changed, the mask the kernel printed before pyirqbalance's first write, and
what identifies that IRQ: the boot it was found in (the kernel's boot id),
the IRQ's actions (its handlers' names, the /proc/irq/N/<name>/ directories)
and its PCI device::

    {"format": 2, "boot_id": "...",
     "irqs": {"24": {"mask": "0000000f", "actions": "eth0-TxRx-0", "device": "0000:00:1f.6"}}}

The balancer hands the masks over *before* it writes
(:meth:`OriginalAffinities.record`), and they reach the disk durably first
(temporary file, fsync, rename, fsync of the directory), so a ``kill -9`` at
any moment leaves every changed IRQ restorable. An IRQ whose original cannot
be recorded (state directory full, read-only, ...) is not moved at all.

``--restore`` writes back only the entries of this boot whose IRQ still has
the same actions and device, and says why it skipped the others: a file
from another boot, another machine or an older pyirqbalance (which recorded
masks only) is never restored blindly.

The file is read without blocking (a FIFO or a device in its place is
refused at once), bounded in size, and a file that cannot be read back is
set aside as ``original-affinity.json.corrupt-<UTC time>`` (one warning) and
a fresh record started.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from typing import TYPE_CHECKING, NamedTuple

from ..errors import PyirqbalanceError, StartError
from ..kernel.cpumask import MaskError, format_mask, parse_mask
from ..kernel.procirq import read_action_names, read_smp_affinity, write_smp_affinity
from ..kernel.sysroot import SysRoot
from .exits import EXIT_OK, EXIT_RUNTIME
from .pidfile import InstanceLock
from .statefiles import NotAStateFile, read_small, set_aside

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .config import Options

__all__ = ["FORMAT", "STATE_FILE", "OldFormat", "Original", "OriginalAffinities", "State",
           "current_boot", "format_state", "identify", "irq_key", "parse_state", "restore",
           "write_durably"]

STATE_FILE = "original-affinity.json"
#: The state file's mode: which CPUs IRQs used is nobody else's business.
STATE_MODE = 0o600
#: The file format this pyirqbalance writes and restores.
FORMAT = 2
#: Largest state file read (8192 IRQs take about 1 MiB).
STATE_LIMIT = 8 << 20
#: Characters of a recorded actions or device text kept.
_TEXT_LIMIT = 4096


class Original(NamedTuple):
    """One IRQ as found before pyirqbalance's first write to it."""

    mask: int
    #: The actions column of its /proc/interrupts row.
    actions: str
    #: The PCI device (BDF) the IRQ belongs to, None for none.
    device: str | None


class State(NamedTuple):
    boot_id: str | None
    irqs: dict[int, Original]


class OldFormat(PyirqbalanceError, ValueError):
    """A file of an older pyirqbalance: masks without boot or IRQ identity."""


def irq_key(text: str) -> int:
    """An IRQ number of the state file: ASCII digits only (no sign, blank, ``_``, other scripts)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise ValueError(f"IRQ number {text[:64]!r}: expected ASCII digits")
    return int(text)


def _text(value: object, what: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > _TEXT_LIMIT:
        raise ValueError(f"{what}: expected a string")
    return value


def parse_state(text: str) -> State:
    """The state file; OldFormat for a plain ``{"IRQ": "mask"}`` file, ValueError if damaged."""
    import json  # deferred: only daemons and --restore read it (start-up cost)

    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, found {type(data).__name__}")
    if "format" not in data:
        if all(isinstance(v, str) for v in data.values()):
            raise OldFormat("masks without boot id or IRQ identity (written by an older "
                            "pyirqbalance)")
        raise ValueError("no format key")
    if data["format"] != FORMAT:
        raise ValueError(f"format {str(data['format'])[:16]!r}: this pyirqbalance reads "
                         f"format {FORMAT}")
    boot_id = _text(data.get("boot_id"), "boot_id", optional=True)
    entries = data.get("irqs")
    if not isinstance(entries, dict):
        raise ValueError("irqs: expected an object")
    irqs = {}
    for irq, entry in entries.items():
        key = irq_key(irq)
        if not isinstance(entry, dict):
            raise ValueError(f"IRQ {key}: expected an object")
        try:
            mask = parse_mask(_text(entry.get("mask"), f"IRQ {key} mask") or "")
        except MaskError as err:
            raise ValueError(f"IRQ {key}: {err}") from None
        irqs[key] = Original(mask, _text(entry.get("actions"), f"IRQ {key} actions") or "",
                             _text(entry.get("device"), f"IRQ {key} device", optional=True))
    return State(boot_id, irqs)


def format_state(state: State) -> str:
    import json  # deferred (start-up cost)

    return json.dumps({
        "format": FORMAT,
        "boot_id": state.boot_id,
        "irqs": {str(irq): {"mask": format_mask(o.mask), "actions": o.actions, "device": o.device}
                 for irq, o in sorted(state.irqs.items())},
    }, indent=1) + "\n"


def current_boot(root: SysRoot) -> str | None:
    """The kernel's boot id; where /proc/sys has none, the boot time stands for it."""
    line = root.read_first_line(root.proc("sys", "kernel", "random", "boot_id"))
    if line is not None and line.strip():
        return line.strip()
    from ..kernel.procstat import parse_stat  # deferred (start-up cost)

    text = root.try_read_text(root.proc("stat"))
    try:
        btime = parse_stat(text).btime if text else None
    except ValueError:
        btime = None
    return f"btime:{btime}" if btime is not None else None


def identify(root: SysRoot, irqs: Iterable[int]) -> tuple[dict[int, str], dict[int, str]]:
    """(actions, PCI device) of ``irqs``, as /proc/irq and /sys say now.

    The actions are the names of the IRQ's handlers, its ``/proc/irq/N/<name>/``
    directories (kernel/irq/proc.c ``register_handler_proc``), sorted and joined
    by commas: per IRQ, so recording an original never reads /proc/interrupts
    again (the balancer reads it once a pass).
    """
    from ..kernel.sysfs import read_pci_devices

    actions = {irq: ",".join(read_action_names(root, irq))[:_TEXT_LIMIT] for irq in irqs}
    devices: dict[int, str] = {}
    # The first device that claims an IRQ owns it, as the IRQ database is built.
    for dev in read_pci_devices(root):
        if dev.msi_irqs is not None:
            for irq in dev.msi_irqs:
                if irq:
                    devices.setdefault(irq, dev.name)
        elif dev.legacy_irq and dev.legacy_irq != 255:
            devices.setdefault(dev.legacy_irq, dev.name)
    return actions, devices


def write_durably(path: str, text: str, mode: int = STATE_MODE) -> None:
    """Replace ``path`` by ``text`` so that a crash leaves the old or the new file, on disk."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        data = text.encode()
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    except OSError:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        os.unlink(tmp)
        raise
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class OriginalAffinities:
    """The balancer's ``before_first_write`` hook: store masks before they are changed.

    The first value recorded for an IRQ wins across restarts, so a restart
    never records our own masks as "original". :meth:`record` returns the
    IRQs whose original is on disk: the balancer moves only those.
    """

    def __init__(self, state_dir: str, log: logging.Logger, root: SysRoot) -> None:
        self.path = os.path.join(state_dir, STATE_FILE)
        self.log = log
        self.root = root
        #: Why IRQs are left alone (None while every original could be recorded).
        self.problem: str | None = None
        #: This boot's id, read once: it does not change while the daemon runs.
        self._boot: str | None = None

    def boot(self) -> str | None:
        if self._boot is None:
            self._boot = current_boot(self.root)
        return self._boot

    def _set_aside(self, why: str, kind: str, err: object) -> None:
        aside = set_aside(self.path, kind)
        self.log.warning("%s %s (%s): kept as %s; recording original affinities afresh",
                         self.path, why, str(err)[:80], aside)

    def _load(self, boot: str | None) -> State:
        """The file's record for this boot (a damaged or foreign file is set aside)."""
        try:
            data = read_small(self.path, STATE_LIMIT)
            if data is None:
                return State(boot, {})
            state = parse_state(data.decode("utf-8"))
        except OldFormat as err:
            self._set_aside("is of an older format", "old-format", err)
            return State(boot, {})
        except ValueError as err:  # NotAStateFile, UnicodeDecodeError included
            self._set_aside("is damaged", "corrupt", err)
            return State(boot, {})
        if state.boot_id != boot:
            self._set_aside("is from another boot", "other-boot",
                            f"boot {state.boot_id}, this is {boot}")
            return State(boot, {})
        return state

    def record(self, found: dict[int, int]) -> set[int]:
        """Add ``found`` (IRQ -> mask, before our write) to the file, durably; never raises.

        Returns the IRQs of ``found`` whose original is recorded.
        """
        known: dict[int, Original] = {}
        try:
            state = self._load(self.boot())
            known = state.irqs
            new = [irq for irq in found if irq not in known]
            if new:
                actions, devices = identify(self.root, new)
                merged = dict(known)
                for irq in new:
                    merged[irq] = Original(found[irq], actions.get(irq, ""), devices.get(irq))
                write_durably(self.path, format_state(State(state.boot_id, merged)))
        except OSError as err:
            left = sorted(irq for irq in found if irq not in known)
            problem = (f"{len(left)} IRQs not moved: their original affinity cannot be "
                       f"recorded in {self.path} ({err.strerror or err})")
            if self.problem is None:
                self.log.error("%s; they are tried again at each pass", problem)
            self.problem = problem
            return set(found) - set(left)
        if self.problem is not None:
            self.log.warning("original affinities are recorded again in %s", self.path)
            self.problem = None
        return set(found)


# --------------------------------------------------------------------------
# --restore
# --------------------------------------------------------------------------


def _mismatch(irq: int, o: Original, state: State, boot: str | None, root: SysRoot,
              actions: dict[int, str], devices: dict[int, str]) -> str | None:
    """Why the entry must not be written back now (None: it matches this boot and IRQ)."""
    if state.boot_id is None or boot is None:
        return f"boot id unknown (recorded in boot {state.boot_id}, this is {boot})"
    if state.boot_id != boot:
        return f"another boot (recorded in boot {state.boot_id}, this is {boot})"
    if not root.isdir(root.proc("irq", str(irq))):
        return f"gone (no /proc/irq/{irq})"
    now = actions.get(irq, "")
    if now != o.actions:
        return f"actions changed (recorded {o.actions!r}, now {now!r})"
    device = devices.get(irq)
    if device != o.device:
        return f"device changed (recorded {o.device}, now {device})"
    return None


def restore(opts: Options, root: SysRoot, log: logging.Logger) -> int:
    """``--restore``: write back every recorded affinity that is still this IRQ's, then forget.

    Holds the instance lock for its whole run, so it never races a daemon
    (which would move the IRQs again); with ``--dry-run`` it only lists, the
    same list, and warns when a daemon runs. The file is removed once every
    entry was written back or its IRQ is gone; it is kept when an entry was
    skipped for another reason or a write failed, so nothing is lost.
    """
    path = os.path.join(opts.state_dir, STATE_FILE)
    err = sys.stderr.write
    lock = InstanceLock(opts.run_dir)
    try:
        try:
            lock.acquire()
        except StartError as running:
            if not opts.dry_run:
                err(f"pyirqbalance: {running}: stop it before --restore (it would move the "
                    "IRQs again)\n")
                return EXIT_RUNTIME
            err(f"pyirqbalance: warning: {running}: it changes these IRQs again\n")
        except OSError as why:
            err(f"pyirqbalance: warning: cannot take the instance lock {lock.path} "
                f"({why.strerror}): a running daemon would not be noticed\n")
        return _restore(opts, root, path)
    finally:
        lock.release()


def _restore(opts: Options, root: SysRoot, path: str) -> int:
    err, out = sys.stderr.write, sys.stdout.write
    try:
        data = read_small(path, STATE_LIMIT)
        if data is None:
            err(f"pyirqbalance: nothing to restore ({path} does not exist)\n")
            return EXIT_OK
        state = parse_state(data.decode("utf-8"))
    except OldFormat as why:
        err(f"pyirqbalance: {path}: {why}: not restored, since it may come from another boot "
            "or machine; write the masks it lists by hand where they still apply, then "
            "remove it\n")
        return EXIT_RUNTIME
    except (NotAStateFile, OSError, ValueError) as why:
        err(f"pyirqbalance: cannot read {path}: {why}\n")
        return EXIT_RUNTIME
    boot = current_boot(root)
    actions, devices = identify(root, state.irqs)
    restored = failed = kept = gone = 0
    for irq, o in sorted(state.irqs.items()):
        reason = _mismatch(irq, o, state, boot, root, actions, devices)
        if reason is not None:
            err(f"pyirqbalance: IRQ {irq}: skipped: {reason}\n")
            if reason.startswith("gone"):
                gone += 1
            else:
                kept += 1
            continue
        now = read_smp_affinity(root, irq)
        was = format_mask(now) if now is not None else "?"
        if now == o.mask:  # nothing to write (a kernel-managed IRQ refused our write)
            out(f"IRQ {irq}: {was} already\n")
            restored += 1
            continue
        if opts.dry_run:
            out(f"IRQ {irq}: would restore {was} -> {format_mask(o.mask)}\n")
            restored += 1
            continue
        result = write_smp_affinity(root, irq, o.mask)
        if result.errno == errno.ENOENT:
            err(f"pyirqbalance: IRQ {irq}: skipped: gone (no /proc/irq/{irq})\n")
            gone += 1
        elif result.errno:
            failed += 1
            err(f"pyirqbalance: IRQ {irq}: cannot restore {result.text}: {result.reason}\n")
        else:
            restored += 1
            out(f"IRQ {irq}: {was} -> {result.text}\n")
    total = len(state.irqs)
    skipped = kept + gone
    if opts.dry_run:
        out(f"{restored} of {total} IRQs would be restored ({skipped} skipped)\n")
    else:
        out(f"restored {restored} of {total} IRQs ({skipped} skipped)\n")
    if opts.dry_run:
        return EXIT_OK
    if failed:
        err(f"pyirqbalance: {failed} IRQs not restored; {path} kept\n")
        return EXIT_RUNTIME
    if kept:
        err(f"pyirqbalance: {kept} entries do not match this boot and IRQ; {path} kept\n")
        return EXIT_OK
    os.unlink(path)
    return EXIT_OK
