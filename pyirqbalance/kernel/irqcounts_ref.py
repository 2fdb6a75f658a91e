"""irqbalance's reading of /proc/interrupts, done the plain C way (procinterrupts.c).

The balancer needs one number per IRQ: the total over the row's counted
columns. irqbalance 1.9.2 gets it with C string functions, and these rules
follow from them:

* the header line is skipped; each following line is cut at its first NUL;
* reading stops at the first line that does not start with blanks and a
  digit (``NMI:``, ``LOC:``, ... and everything after them are never seen);
* a line without a colon is skipped; the IRQ number is ``strtoul`` of the
  line, stored in an ``int``;
* after the colon, ``strtoull`` reads numbers one after the other; a number
  is a column only when a space, a tab or the end of the string follows it
  (a count directly followed by the newline is *not* a column); the total
  is their sum modulo 2**64;
* "MSI" anywhere on a line after the header feeds irqbalance's warning about
  kernels too old to list MSI IRQs in sysfs.

:func:`reference_irq_counts` is that reading, line by line; the fast
scanner (:mod:`pyirqbalance.kernel.scanner`) always agrees with it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .cnum import ULONG_MAX, c_int, magnitude, number_pattern, strtoul, unsigned_value

__all__ = ["ROW_START", "IrqCount", "IrqCounts", "count_columns", "reference_irq_counts", "row_of"]


class IrqCount(NamedTuple):
    """A numbered row as irqbalance sees it: total over its counted columns."""

    irq: int
    total: int
    ncols: int
    #: The line (cut at a NUL byte, newline kept) for classifying IRQs without
    #: a PCI device; None when the scanner was told the caller knows the IRQ.
    raw: bytes | None = None

    @property
    def line(self) -> str:
        """The line as irqbalance's string functions see it ("" if not kept)."""
        return "" if self.raw is None else self.raw.decode("utf-8", "surrogateescape")


class IrqCounts(NamedTuple):
    rows: tuple[IrqCount, ...]
    #: "MSI" seen on a line after the header (irqbalance's kernel-too-old warning).
    has_msi: bool
    #: The whole file, when the scan was asked to keep it (history, API, report).
    text: bytes | None = None


#: A row irqbalance reads: blanks, then a digit (``isblank`` / ``isdigit``).
ROW_START = re.compile(rb"[ \t]*([0-9]+)")


#: One ``strtoull`` (C ``isspace``, a sign, digits), matched in place.
_NUMBER = number_pattern(bytes)


def irq_number(digits: bytes) -> int:
    """``int number = strtoul(line, NULL, 10)`` of a row's leading digits."""
    if len(digits) < 10:
        return int(digits)  # below 2**31: the int holds it as it is
    return c_int(strtoul(digits)[0])


def count_columns(line: bytes, pos: int) -> tuple[int, int, int]:
    """irqbalance's column loop from ``pos``: total mod 2**64, columns, where it stopped."""
    total = ncols = 0
    end = len(line)
    while True:
        m = _NUMBER.match(line, pos)
        if m is None:
            break  # no number: end of the counts
        pos = m.end()
        if pos < end and line[pos] not in b" \t":
            break  # "123\n", "48059000.gpio": not a column
        total = (total + unsigned_value(m[1] == b"-", magnitude(m[2]))) & ULONG_MAX
        ncols += 1
    return total, ncols, pos


def row_of(line: bytes) -> IrqCount | None:
    """One NUL-free line after the header; None if irqbalance skips it (no ':')."""
    colon = line.find(b":")
    if colon < 0:
        return None
    total, ncols, _ = count_columns(line, colon + 1)
    start = ROW_START.match(line)
    assert start is not None  # the caller read only rows that start so
    return IrqCount(irq_number(start[1]), total, ncols, line)


def _lines(data: bytes) -> list[bytes]:
    """``getline`` results: each line with its newline, the last one maybe without."""
    lines = data.split(b"\n")
    last = lines.pop()
    lines = [line + b"\n" for line in lines]
    if last:
        lines.append(last)
    return lines


def reference_irq_counts(data: bytes) -> IrqCounts:
    """irqbalance's reading of /proc/interrupts, line by line as the C code does.

    Each line is cut at its first NUL byte, because everything irqbalance does
    with it is a C string function.
    """
    rows = []
    has_msi = False
    for raw in _lines(data)[1:]:
        line = raw.partition(b"\0")[0]
        has_msi = has_msi or b"MSI" in line
        if ROW_START.match(line) is None:
            break  # NMI:, LOC:, ... and every line after them are never seen
        row = row_of(line)
        if row is not None:
            rows.append(row)
    return IrqCounts(tuple(rows), has_msi)
