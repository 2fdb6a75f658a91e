"""Counter arithmetic between two readings: wraps, resets, per-boot deltas.

/proc/interrupts prints each per-CPU count as an ``unsigned int``
(``kstat_irqs_cpu``), so a busy IRQ wraps at 2**32; /proc/stat jiffies are
``u64`` and do not wrap in practice. A counter that goes down is one of:

* a wrap -- the count went past the top: the increase is
  ``current + 2**bits - previous``. Only believable when that increase is
  small (below :data:`WRAP_WINDOW`): a counter that drops from 3.5e9 to 10 in
  a minute wrapped; one that drops from 1e6 to 10 did not.
* a reset -- the IRQ was freed and requested again (module reload, device
  rebind: the kernel allocates a new irq_desc whose counts start at 0), so
  the increase since is ``current``.

A new boot id means every counter restarted at 0; that is handled one level
up (the first reading of a boot is a baseline, see :mod:`.store`).
"""

from __future__ import annotations

import enum

__all__ = ["WRAP_WINDOW", "Change", "counter_delta"]

#: Largest increase a wrap may stand for: 2**30 interrupts in one sample
#: interval is 17 million a second over a minute, beyond any real IRQ.
WRAP_WINDOW = 1 << 30


class Change(enum.Enum):
    """How a counter moved between two readings."""

    UP = "up"
    WRAP = "wrap"
    RESET = "reset"


def counter_delta(previous: int, current: int, bits: int = 32) -> tuple[int, Change]:
    """Increase of a ``bits``-wide counter from ``previous`` to ``current``.

    >>> counter_delta(10, 25)
    (15, <Change.UP: 'up'>)
    >>> counter_delta(2**32 - 5, 10)
    (15, <Change.WRAP: 'wrap'>)
    >>> counter_delta(1_000_000, 10)
    (10, <Change.RESET: 'reset'>)
    """
    if current >= previous:
        return current - previous, Change.UP
    wrapped = current + (1 << bits) - previous
    if wrapped < WRAP_WINDOW:
        return wrapped, Change.WRAP
    return current, Change.RESET
