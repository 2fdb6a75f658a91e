"""The affinities pyirqbalance found, kept so ``--restore`` can put them back.

``state_dir/original-affinity.json`` maps IRQ -> mask text as the kernel
printed it before pyirqbalance's first write to that IRQ.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from typing import TYPE_CHECKING

from ..kernel.cpumask import MaskError, format_mask, parse_mask
from ..kernel.procirq import write_smp_affinity
from ..kernel.sysroot import SysRoot
from .cli import EXIT_OK, EXIT_RUNTIME

if TYPE_CHECKING:
    from ..engine.balancer import Balancer
    from ..engine.model import PassReport
    from .config import Options

__all__ = ["STATE_FILE", "OriginalAffinities", "irq_key", "restore"]

STATE_FILE = "original-affinity.json"


class OriginalAffinities:
    """Per-pass listener: keep each IRQ's affinity from before our first write.

    ``state_dir/original-affinity.json`` maps IRQ -> mask text; the first value
    recorded for an IRQ wins across restarts, so a restart never records our
    own masks as "original".
    """

    def __init__(self, state_dir: str, balancer: Balancer, log: logging.Logger) -> None:
        self.path = os.path.join(state_dir, STATE_FILE)
        self.balancer = balancer
        self.log = log
        self._saved = 0

    def __call__(self, report: PassReport) -> None:
        originals = self.balancer.original_affinities()
        if len(originals) == self._saved:
            return
        import json  # deferred: dry runs never record (start-up cost)

        try:
            known = {}
            if os.path.exists(self.path):
                with open(self.path) as f:
                    known = json.loads(f.read())
            for irq, mask in originals.items():
                known.setdefault(str(irq), format_mask(mask))
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            tmp = os.path.splitext(self.path)[0] + ".tmp"
            with open(tmp, "w") as f:
                f.write(json.dumps(known, sort_keys=True, indent=1) + "\n")
            os.replace(tmp, self.path)
            self._saved = len(originals)
        except (OSError, ValueError) as err:
            self.log.warning("cannot record original affinities in %s: %s", self.path, err)


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
    import json  # deferred: only --restore and --format=json read or write JSON (start-up cost)

    path = os.path.join(opts.state_dir, STATE_FILE)
    try:
        with open(path) as f:
            saved = json.loads(f.read())
        masks = {irq_key(irq): parse_mask(text) for irq, text in saved.items()}
    except FileNotFoundError:
        sys.stderr.write(f"pyirqbalance: nothing to restore ({path} does not exist)\n")
        return EXIT_OK
    except (OSError, ValueError, AttributeError, MaskError) as err:
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
