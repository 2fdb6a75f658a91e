"""Kept mode: a file small enough to hold whole, compared with the last one in place.

Runs of unchanged lines are matched with one ``startswith`` each (a memcmp
against a slice of the last file: no copy, no hash) and their rows reused. A
run reaches to the next line that changed last time (the IRQs that fire keep
firing), which is then compared alone; a run that turns out to hold a change
is cut down and grows again (gallops). A changed line whose label and tail
are as before only has its cells summed, or only its one changed cell read
(:func:`~.cells.resum`); other lines are parsed anew, and the comparison
resynchronises on their IRQ number (:func:`~.memo.resync`), so an IRQ that
appears or vanishes costs one line, not the rest of the file.
"""

from __future__ import annotations

from collections.abc import Container
from itertools import accumulate

from ..irqcounts_ref import IrqCount
from .cells import Lanes, Shape, parse_line, resum, row_again
from .memo import Memo, resync

__all__ = ["KeptScan"]


class KeptScan:
    """One scan of a whole file against the memo of the last one."""

    __slots__ = (
        "changed",
        "data",
        "has_msi",
        "known",
        "lanes",
        "memo",
        "n_old",
        "offsets",
        "old",
        "old_shapes",
        "prev",
        "rows",
        "same",
        "where",
    )

    def __init__(
        self,
        prev: Memo,
        where: dict[int, int],
        data: bytes | bytearray,
        head: int,
        known: Container[int] | None,
    ) -> None:
        ncells = data.count(b"CPU", 0, head)  # a hint: a wrong one only costs time
        self.lanes = Lanes(ncells) if ncells else None
        self.prev, self.where, self.data, self.known = prev, where, data, known
        # cell positions are known only for rows of the same width as before
        same_width = self.lanes is not None and self.lanes.n == prev.ncells
        self.old_shapes = prev.shapes if same_width else [None] * len(prev.lens)
        self.n_old = len(prev.lens) if prev.hashes is None else 0  # hashes: nothing to compare
        #: Where each old line starts (and, last, where the old lines end).
        self.offsets = list(accumulate(prev.lens, initial=prev.head))
        self.old = memoryview(prev.data)
        self.memo = Memo(data, head, self.lanes.n if self.lanes else 0)
        self.rows: list[IrqCount] = []
        self.changed: list[IrqCount] = []
        self.same = self.n_old > 0  # same IRQs in the same order as the last scan
        self.has_msi = False

    def run(self) -> int:
        """Scan the file; returns the old line the comparison ended at."""
        data, old, offsets, n_old = self.data, self.old, self.offsets, self.n_old
        prev, memo, rows = self.prev, self.memo, self.rows
        hints = prev.fresh  # lines that changed last time
        h, n_hints = 0, len(hints)
        pos, n, k, step = self.memo.head, len(data), 0, 1
        while pos < n:
            if k < n_old:
                while h < n_hints and hints[h] < k:
                    h += 1
                shape = self.old_shapes[k]
                hinted = h < n_hints and hints[h] == k
                # a line that changed last time likely changed again: straight to its cells
                if not hinted or shape is None:
                    limit = n_old if h == n_hints else max(hints[h], k + 1)
                    j = min(k + step, limit)
                    if data.startswith(old[offsets[k]:offsets[j]], pos):  # k..j-1 unchanged
                        memo.take(prev, k, j)
                        rows.extend(filter(None, prev.rows[k:j]))
                        self.has_msi = self.has_msi or True in prev.msi[k:j]
                        pos += offsets[j] - offsets[k]
                        k, step = j, (n_old if j == limit else step * 2)
                        continue
                    if j > k + 1:
                        step = max((j - k) // 4, 1)
                        continue
                step = n_old if h < n_hints else 1  # on to the next line that changed last time
                if shape is not None:
                    end = self._resum(k, pos, shape)
                    if end is not None:
                        pos, k = end, k + 1
                        continue
            parsed = self._parse(pos, n, k)
            if parsed is None:
                break  # irqbalance stops at the first row not starting with a digit
            pos, k = parsed
        if k != n_old:
            self.same = False  # old lines left over: IRQs vanished
        if not n_old:
            memo.fresh.clear()  # nothing was compared: no hint for the next scan
        return k

    def _resum(self, k: int, pos: int, shape: Shape) -> int | None:
        """Old line k changed (or changed last time): if only its cells did, the
        rest adds what it added before. Returns the end of the line, or None."""
        a, b = self.offsets[k], self.offsets[k + 1]
        old_row = self.prev.rows[k]
        assert old_row is not None and self.lanes is not None  # a shape: a kernel-printed row
        resummed = resum(self.data, pos, self.old, a, b, shape, old_row.total, self.lanes)
        if resummed is None:
            return None
        total, shape = resummed
        msi = self.prev.msi[k]
        self.has_msi = self.has_msi or msi
        end = pos + b - a
        row = row_again(old_row, total, self.data, pos, end, self.known)
        if row is not old_row:
            self.changed.append(row)
        self.rows.append(row)
        # a row as it was is no longer a hint
        self.memo.add(b - a, row, msi, shape, fresh=row is not old_row)
        return end

    def _parse(self, pos: int, n: int, k: int) -> tuple[int, int] | None:
        """The line at ``pos`` parsed anew: (where the next starts, old line to
        compare it with); None at the stop row."""
        data = self.data
        end = data.find(b"\n", pos) + 1 or n
        line = bytes(data[pos:end]) if isinstance(data, bytearray) else data[pos:end]
        parsed = parse_line(line, self.lanes, self.known)
        if parsed is None:
            self.has_msi = self.has_msi or b"MSI" in line.partition(b"\0")[0]
            return None
        row, msi, shape = parsed
        if row is not None:
            k, in_place = resync(self.where, row.irq, k)
            self.same = self.same and in_place  # else a new IRQ, or old lines skipped
            self.changed.append(row)
            self.rows.append(row)
        self.has_msi = self.has_msi or msi
        if line[-1] == 10:  # an unterminated last line may grow: not kept
            self.memo.add(len(line), row, msi, shape)
        return end, k
