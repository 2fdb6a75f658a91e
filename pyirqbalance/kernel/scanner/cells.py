"""Kernel-printed cells: summing a row without converting every count.

The kernel prints each count of a /proc/interrupts row as ``" %10u"``
(before 6.x: ``": "`` then ``"%10u "`` -- the same bytes), so a row of a
machine with N online CPUs starts with N cells of 11 bytes after the colon.
On big machines most cells are a blank ``0``. The functions here check that
shape and sum such a row (:func:`cells_total`), remember where its cells are
(:class:`Shape`), and follow the one cell of a row that changes from pass
to pass (an IRQ fires on one CPU until it moves). Anything not in the shape
is left to :func:`~pyirqbalance.kernel.irqcounts_ref.count_columns`.
"""

from __future__ import annotations

import re
from collections.abc import Container
from typing import NamedTuple

from ..cnum import ULONG_MAX
from ..irqcounts_ref import ROW_START, IrqCount, count_columns, irq_number, row_of

__all__ = [
    "CELL",
    "NO_CELL",
    "SEVERAL_CELLS",
    "CellsChanged",
    "Lanes",
    "Shape",
    "cell_at",
    "cells_total",
    "changed_cell",
    "one_cell_to_follow",
    "parse_line",
    "resum",
    "row_again",
]

#: What a scan knows of a row's columns (:meth:`IrqCountScanner.cells`): the one
#: column that changed, or the non-zero columns' counts.
CellsChanged = tuple[int | None, dict[int, int] | None]

#: A file's text: read whole into a reused buffer, or a chunk of it.
Bytes = bytes | bytearray

#: Bytes of one kernel-printed cell: a separator space and ``%10u``.
CELL = 11
#: bytes.translate table: 0 stays 0, anything else becomes 1.
_MARK = bytes([0] + [1] * 255)
#: The most non-zero cells a row may have for its changed cell to be looked for.
FEW_CELLS = 64

#: :attr:`Shape.hot`: no one cell is followed.
NO_CELL = -1
#: :attr:`Shape.hot`: several cells changed last time; do not look this time.
SEVERAL_CELLS = -2


class Shape(NamedTuple):
    """Where a kernel-printed row's cells are, and the one cell that changes."""

    #: Offset of the first cell in the line (just after the colon).
    first: int
    #: Offset just after the last cell.
    last: int
    #: What the numbers after the cells add to the total (mod 2**64).
    rest: int
    #: The cell that alone changed when the row was last summed, or
    #: :data:`NO_CELL` / :data:`SEVERAL_CELLS`.
    hot: int
    #: That cell's count then (0 when no cell is followed).
    hot_count: int


#: A Shape from a tuple of its fields (the C constructor: hot paths build many).
_shape = Shape._make


class Lanes:
    """Per-width constants: one byte per cell, as bytes and as little-endian ints."""

    __slots__ = ("blank_int", "blanks", "n", "zero_int", "zeros")

    def __init__(self, n: int) -> None:
        self.n = n
        self.blanks = b" " * n
        self.blank_int = int.from_bytes(self.blanks, "little")
        self.zero_int = int.from_bytes(b"0" * n, "little")
        #: A row of blank "0" cells (" %10u": separator space first), sliced
        #: without copies.
        self.zeros = memoryview(b"          0" * n)


def cell_flags(line: Bytes, start: int, end: int, lanes: Lanes) -> int:
    """One byte per cell of ``line[start:end]`` (little-endian), non-zero where
    the cell's last two bytes are not " 0": the cells that may hold anything but
    a blank "0" (two strided slices, one integer XOR each)."""
    return (int.from_bytes(line[start + CELL - 1:end:CELL], "little") ^ lanes.zero_int) | (
        int.from_bytes(line[start + CELL - 2:end:CELL], "little") ^ lanes.blank_int
    )


def _dense_total(seg: Bytes, lanes: Lanes) -> int | None:
    """Sum of the cells ``seg`` holds when most are not a blank "0" (split them all)."""
    if seg[0::CELL] != lanes.blanks or not seg[CELL - 1::CELL].isdigit():
        return None
    numbers = seg.split()
    if len(numbers) != lanes.n or not b"".join(numbers).isdigit():
        return None  # a cell with two numbers, or a sign or other byte in one
    return sum(map(int, numbers))


def _sparse_total(
    line: Bytes, start: int, marks: bytes, marked: int, lanes: Lanes
) -> int | None:
    """Sum of the ``marked`` cells; the runs between them must be blank "0" cells."""
    zeros = lanes.zeros
    total = 0
    done = 0  # cells checked so far
    i = -1
    for _ in range(marked):
        i = marks.find(1, i + 1)
        at = CELL * i
        if not line.startswith(zeros[CELL * done:at], start + CELL * done):
            return None  # an unmarked cell or a separator is not what the kernel prints
        number = line[start + at + 1:start + at + CELL].lstrip(b" ")
        if line[start + at] != 32 or not number.isdigit():
            return None
        total += int(number)
        done = i + 1
    if not line.startswith(zeros[CELL * done:], start + CELL * done):
        return None
    return total


def cells_total(line: Bytes, start: int, lanes: Lanes) -> int | None:
    """Sum of ``lanes.n`` kernel-printed cells at ``line[start:]``, or None if not that shape.

    The shape is checked so that the sum is exactly what irqbalance's loop
    gives for those columns: every separator is a space and every cell is
    blanks then digits (so each number is followed by a space), and the byte
    after the last cell is a space, a tab or the end.

    Zero cells are not converted. The last byte of every cell and the byte
    before it are compared to "0" and " " lane by lane (one integer XOR per
    byte-column, taken with strided slices of the line), which marks the
    cells that may hold anything but a blank "0". Few marked cells are
    converted one by one, and the runs of unmarked cells between them are
    compared with a row of blank "0" cells (memcmp). Many marked cells:
    split them all.
    """
    n = lanes.n
    end = start + CELL * n
    if len(line) < end or line[end:end + 1] not in (b" ", b"\t", b""):
        return None
    flags = cell_flags(line, start, end, lanes)
    if not flags:  # every cell ends in " 0"
        return 0 if line.startswith(lanes.zeros, start) else None
    marks = flags.to_bytes(n, "little").translate(_MARK)
    marked = marks.count(1)
    if 8 * marked > n:  # dense row
        return _dense_total(line[start:end], lanes)
    return _sparse_total(line, start, marks, marked, lanes)


def cell_at(line: Bytes, at: int) -> int | None:
    """The count of the kernel-printed cell at ``line[at:]`` (a space, then
    blanks and digits), or None if it is not one."""
    digits = line[at + 1:at + CELL].lstrip(b" ")
    return int(digits) if line[at] == 32 and digits.isdigit() else None


def changed_cell(line: Bytes, start: int, old: memoryview, old_start: int, n: int) -> int:
    """The index of the only cell of ``n`` at ``line[start:]`` that differs
    from the cells at ``old[old_start:]``; :data:`NO_CELL` if none or several do.

    Bisection on the run of equal leading cells (one memcmp per step), then
    one memcmp of the cells after the first difference.
    """
    lo, hi = 0, n + 1  # the first lo cells are equal, the first hi are not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if line.startswith(old[old_start:old_start + CELL * mid], start):
            lo = mid
        else:
            hi = mid
    if lo == n:
        return NO_CELL
    after = CELL * (lo + 1)
    same_after = line.startswith(old[old_start + after:old_start + CELL * n], start + after)
    return lo if same_after else NO_CELL


def _resum_hot(
    data: Bytes, pos: int, old: memoryview, a: int, b: int, shape: Shape, total: int
) -> tuple[int, Shape] | None:
    """:func:`resum` by the followed cell alone: the line as before around it."""
    c = shape.first + CELL * shape.hot
    after = c + CELL
    if data.startswith(old[a:a + c], pos) and data.startswith(old[a + after:b], pos + after):
        now = cell_at(data, pos + c)
        if now is not None:
            return (total - shape.hot_count + now) & ULONG_MAX, _shape((*shape[:4], now))
    return None


def resum(
    data: Bytes,
    pos: int,
    old: memoryview,
    a: int,
    b: int,
    shape: Shape,
    total: int,
    lanes: Lanes,
) -> tuple[int, Shape] | None:
    """(total, shape) of the line at ``data[pos:]`` whose last version,
    kernel-printed, was ``old[a:b]`` with ``total``; None unless only its
    cells changed (same label, same text after them, still one line).

    The cell that changed last time is tried first: the line as before
    around it (two memcmps) and a count in it give the total from the old
    one (an IRQ fires on one CPU until it moves). Otherwise the cells are
    summed and the one that changed, if only one did, is found for next time.
    """
    first, last = shape.first, shape.last
    if len(data) < pos + b - a:
        return None
    if shape.hot >= 0:
        by_hot_cell = _resum_hot(data, pos, old, a, b, shape, total)
        if by_hot_cell is not None:
            return by_hot_cell
    if not (data.startswith(old[a:a + first], pos) and data.startswith(old[a + last:b], pos + last)
            and data.find(b"\n", pos + first, pos + last) < 0):
        return None
    cells = cells_total(data, pos + first, lanes)
    if cells is None:
        return None
    now = None
    if shape.hot == SEVERAL_CELLS:
        hot = NO_CELL  # several cells changed last time: look again next time
    else:
        hot = changed_cell(data, pos + first, old, a + first, lanes.n)
        if hot >= 0:
            # None if the cells hold the right numbers but not one per cell
            now = cell_at(data, pos + first + CELL * hot)
        if now is None:
            hot = SEVERAL_CELLS
    return (cells + shape.rest) & ULONG_MAX, _shape((first, last, shape.rest, hot, now or 0))


def nonzero_cells(line: bytes, start: int, lanes: Lanes) -> dict[int, bytes] | None:
    """Cell index -> cell bytes of the cells of a kernel-printed row (checked
    by :func:`cells_total`) that are not a blank "0"; None for more than a
    few (many CPUs counted this IRQ: no one cell to follow)."""
    n = lanes.n
    flags = cell_flags(line, start, start + CELL * n, lanes)
    marks = flags.to_bytes(n, "little").translate(_MARK)
    if marks.count(1) > FEW_CELLS:
        return None
    out = {}
    i = marks.find(1)
    while i >= 0:
        at = start + CELL * i
        out[i] = line[at:at + CELL]
        i = marks.find(1, i + 1)
    return out


def one_cell_to_follow(
    line: bytes, shape: Shape, lanes: Lanes, before: dict[int, bytes] | None
) -> tuple[Shape, dict[int, bytes] | None, int | None]:
    """For a row of the streamed mode parsed anew: (its shape, naming the one
    cell that changed since ``before`` when one did; its non-zero cells, to
    compare next time when none is named; where the named cell starts)."""
    cells = nonzero_cells(line, shape.first, lanes)
    if cells is None or before is None:
        return shape, cells, None
    hot = _one_changed_cell(before, cells)
    at = shape.first + CELL * hot
    now = cell_at(line, at) if hot >= 0 else None
    if now is None:
        return shape, cells, None
    return _shape((*shape[:3], hot, now)), None, at


def _one_changed_cell(old: dict[int, bytes], new: dict[int, bytes]) -> int:
    """The index of the only cell that differs between two :func:`nonzero_cells`;
    :data:`NO_CELL` if not one."""
    diff = [i for i, cell in new.items() if old.get(i) != cell]
    diff += [i for i in old if i not in new]
    return diff[0] if len(diff) == 1 else NO_CELL


def row_again(
    old_row: IrqCount, total: int, data: Bytes, pos: int, end: int, known: Container[int] | None
) -> IrqCount:
    """The row of ``data[pos:end]``, a line in place of ``old_row``'s with ``total``:
    ``old_row`` itself when the line is as it was (same total, a kept line the
    same to the byte), else a new row keeping the line if the caller may need it."""
    if total == old_row.total and (old_row.raw is None or data.startswith(old_row.raw, pos)):
        return old_row
    raw = bytes(data[pos:end]) if known is None or old_row.irq not in known else None
    return IrqCount(old_row.irq, total, old_row.ncols, raw)


def _fast_row(
    line: bytes, label: re.Match[bytes], lanes: Lanes | None
) -> tuple[int, int, int, bool, Shape | None] | None:
    """:func:`~pyirqbalance.kernel.irqcounts_ref.row_of` for a NUL-free line,
    trying the fixed-stride cells first.

    Returns (irq, total, columns, "MSI" in the line, shape), or None for a
    line without a colon; shape is None unless the cells were kernel-printed.
    The counted columns hold only blanks, signs and digits, so only the
    label and what follows the counts are searched for "MSI".
    """
    colon = line.find(b":")
    if colon < 0:
        return None
    cells = None if lanes is None else cells_total(line, colon + 1, lanes)
    shape = None
    if cells is None or lanes is None:
        total, ncols, stop = count_columns(line, colon + 1)
    else:
        # irqbalance goes on reading numbers after the cells; on a real row
        # the chip name comes next and this stops at once.
        end = colon + 1 + CELL * lanes.n
        more, extra, stop = count_columns(line, end)
        total, ncols = (cells + more) & ULONG_MAX, lanes.n + extra
        shape = _shape((colon + 1, end, more & ULONG_MAX, NO_CELL, 0))
    msi = line.find(b"MSI", stop) >= 0 or line.find(b"MSI", 0, colon) >= 0
    return irq_number(label[1]), total, ncols, msi, shape


def parse_line(
    line: bytes, lanes: Lanes | None, known: Container[int] | None
) -> tuple[IrqCount | None, bool, Shape | None] | None:
    """(row or None if skipped, "MSI" in it, shape) for one line; None for the stop row."""
    if b"\0" in line:
        line = line.partition(b"\0")[0]  # a C string ends there
        if ROW_START.match(line) is None:
            return None
        return row_of(line), b"MSI" in line, None
    label = ROW_START.match(line)
    if label is None:
        return None
    parsed = _fast_row(line, label, lanes)
    if parsed is None:
        return None, b"MSI" in line, None
    irq, total, ncols, msi, shape = parsed
    keep = known is None or irq not in known
    return IrqCount(irq, total, ncols, line if keep else None), msi, shape
