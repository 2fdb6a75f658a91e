"""The affinities pyirqbalance found, kept so ``--restore`` can put them back.

``state_dir/original-affinity.json`` maps IRQ -> mask text as the kernel
printed it before pyirqbalance's first write to that IRQ. The balancer hands
the masks over *before* it writes (:meth:`OriginalAffinities.record`), and
they reach the disk durably first (temporary file, fsync, rename, fsync of
the directory), so a ``kill -9`` at any moment leaves every changed IRQ
restorable. A file that cannot be read back is set aside as
``original-affinity.json.corrupt-<UTC time>`` and a fresh record started.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import time
from typing import TYPE_CHECKING

from ..kernel.cpumask import MaskError, format_mask, parse_mask
from ..kernel.procirq import write_smp_affinity
from ..kernel.sysroot import SysRoot
from .cli import EXIT_OK, EXIT_RUNTIME

if TYPE_CHECKING:
    from .config import Options

__all__ = ["STATE_FILE", "OriginalAffinities", "irq_key", "parse_state", "restore",
           "write_durably"]

STATE_FILE = "original-affinity.json"
#: The state file's mode: which CPUs IRQs used is nobody else's business.
STATE_MODE = 0o600


def parse_state(text: str) -> dict[int, int]:
    """The state file's ``{"IRQ": "mask"}`` object; ValueError if it is anything else."""
    import json  # deferred: only daemons and --restore read it (start-up cost)

    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, found {type(data).__name__}")
    masks = {}
    for irq, mask in data.items():
        if not isinstance(mask, str):
            raise ValueError(f"IRQ {irq[:16]!r}: the mask is not a string")
        try:
            masks[irq_key(irq)] = parse_mask(mask)
        except MaskError as err:
            raise ValueError(f"IRQ {irq}: {err}") from None
    return masks


def write_durably(path: str, text: str, mode: int = STATE_MODE) -> None:
    """Replace ``path`` by ``text`` so that a crash leaves the old or the new file, on disk."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        data = text.encode()
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
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
    never records our own masks as "original".
    """

    def __init__(self, state_dir: str, log: logging.Logger) -> None:
        self.path = os.path.join(state_dir, STATE_FILE)
        self.log = log
        self._warned = False

    def _load(self) -> dict[int, int]:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return {}
        try:
            return parse_state(data.decode("utf-8"))
        except ValueError as err:  # UnicodeDecodeError included
            self._set_aside(err)
            return {}

    def _set_aside(self, err: Exception) -> None:
        aside = f"{self.path}.corrupt-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        os.replace(self.path, aside)
        self.log.warning("%s is damaged (%s): kept as %s; recording original affinities "
                         "afresh (IRQs changed before cannot be restored)",
                         self.path, str(err)[:80], aside)

    def record(self, found: dict[int, int]) -> None:
        """Add ``found`` (IRQ -> mask, before our write) to the file, durably; never raises."""
        import json  # deferred: dry runs never record (start-up cost)

        try:
            known = self._load()
            if all(irq in known for irq in found):
                return
            merged = {**found, **known}
            text = json.dumps({str(irq): format_mask(mask) for irq, mask in sorted(merged.items())},
                              indent=1) + "\n"
            write_durably(self.path, text)
        except OSError as err:
            if not self._warned:
                self._warned = True
                self.log.error("cannot record original affinities in %s: %s; --restore will not "
                               "cover IRQs changed from now on", self.path, err)


def irq_key(text: str) -> int:
    """An IRQ number of the state file: ASCII digits only (no sign, blank, ``_``, other scripts)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise ValueError(f"IRQ number {text[:64]!r}: expected ASCII digits")
    return int(text)


def restore(opts: Options, root: SysRoot, log: logging.Logger) -> int:
    """``--restore``: write back every recorded affinity, then forget them.

    IRQs that no longer exist are skipped; the file is kept if a write fails,
    so the restore can be tried again. With ``--dry-run`` only prints.
    """
    path = os.path.join(opts.state_dir, STATE_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            masks = parse_state(f.read())
    except FileNotFoundError:
        sys.stderr.write(f"pyirqbalance: nothing to restore ({path} does not exist)\n")
        return EXIT_OK
    except (OSError, ValueError) as err:
        sys.stderr.write(f"pyirqbalance: cannot read {path}: {err}\n")
        return EXIT_RUNTIME
    failed = 0
    for irq in sorted(masks):
        if opts.dry_run:
            sys.stdout.write(f"IRQ {irq}: would restore {format_mask(masks[irq])}\n")
            continue
        result = write_smp_affinity(root, irq, masks[irq])
        if result.errno == errno.ENOENT:
            log.info("IRQ %d is gone: nothing to restore", irq)
        elif result.errno:
            failed += 1
            log.warning("IRQ %d: cannot restore %s: %s", irq, result.text, result.reason)
    if opts.dry_run:
        return EXIT_OK
    if failed:
        sys.stderr.write(f"pyirqbalance: {failed} IRQs not restored; {path} kept\n")
        return EXIT_RUNTIME
    os.unlink(path)
    return EXIT_OK
