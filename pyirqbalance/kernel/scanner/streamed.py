"""Streamed mode: a file read in chunks, never whole, compared by its lines' hashes.

Each line is hashed (:func:`line_hash`: 64 bits, keyed) straight from the
read buffer, and a line as long as the one in its place last time with the
same hash is taken as unchanged without being searched for its newline,
copied or parsed (a false match is a 2**-64 chance per changed row). A row
whose one changed cell is the one that changed last time is read from that
cell alone, the rest of the line checked by the hashes of the bytes before
and after it (the cell is found by comparing the non-zero cells of the
row's last two parses). Other lines are parsed anew.

A file that turns out small (up to the scanner's memo limit) is kept whole
for the next scan instead of hashed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Container, Generator, Iterable
from functools import cache

from ..cnum import ULONG_MAX
from ..irqcounts_ref import IrqCount
from .cells import CELL, Lanes, Shape, cell_at, one_cell_to_follow, parse_line, row_again
from .memo import Memo, resync

__all__ = ["StreamScan", "complete_lines", "line_hash"]


@cache
def line_hash() -> Callable[[memoryview], int]:
    """The 64-bit keyed hash the streamed mode compares lines by.

    XXH3 (the xxhash package) hashes a 1024-CPU row (11 KB) in 0.3 us, straight
    from the read buffer; without the package, the interpreter's SipHash of a
    copy takes 2.7 us. Both are keyed per process (a seed drawn here; Python's
    hash seed), so no file is made to collide on purpose.
    """
    try:
        from xxhash import xxh3_64_intdigest
    except ImportError:
        return lambda view: hash(view.tobytes())
    seed = int.from_bytes(os.urandom(8), "little")
    return lambda view: xxh3_64_intdigest(view, seed)


def complete_lines(chunks: Iterable[bytes]) -> Generator[tuple[bytes, int, int], None, None]:
    """(buffer, start, stop): runs of whole lines as they arrive in ``chunks``.

    A line split over two chunks comes as its own small buffer; the last
    line may lack its newline. Nothing is joined but the split lines.
    """
    tail = b""
    for chunk in chunks:
        first = chunk.find(b"\n")
        if first < 0:
            tail += chunk  # a line longer than a chunk
            continue
        if tail:
            line = tail + chunk[:first + 1]
            yield line, 0, len(line)
            start = first + 1
        else:
            start = 0
        stop = chunk.rfind(b"\n") + 1
        if start < stop:
            yield chunk, start, stop
        tail = chunk[stop:]
    if tail:
        yield tail, 0, len(tail)


class StreamScan:
    """One scan of a file arriving in chunks, against the last scan's hashes.

    ``hashed``: hash the lines (the last file was not small); ``keep``: the
    file may still turn out small enough to be kept whole.
    """

    __slots__ = (
        "changed",
        "has_msi",
        "hash",
        "keep",
        "known",
        "lanes",
        "memo",
        "n_old",
        "old_cells",
        "old_hashes",
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
        known: Container[int] | None,
        *,
        hashed: bool,
        keep: bool,
    ) -> None:
        self.prev, self.where, self.known, self.keep = prev, where, known, keep
        self.old_hashes: list[int] = prev.hashes or []
        self.n_old = len(self.old_hashes)
        self.old_shapes: list[Shape | None] = prev.shapes
        self.old_cells = prev.cells
        self.memo = Memo()
        if hashed:
            self.memo.hashes = []
        self.hash = line_hash() if hashed else None
        self.rows: list[IrqCount] = []
        self.changed: list[IrqCount] = []
        self.same = self.n_old > 0  # same IRQs in the same order as the last scan
        self.has_msi = False
        self.lanes: Lanes | None = None

    def header(self, buf: bytes, pos: int, stop: int) -> int:
        """Take the header line at ``buf[pos:]``; returns where the rows start."""
        head = buf.find(b"\n", pos) + 1 or stop
        ncells = buf.count(b"CPU", 0, head)
        self.lanes = Lanes(ncells) if ncells else None
        self.memo.head = head
        if ncells != self.prev.ncells:  # cell positions and indices were for another width
            self.old_shapes, self.old_cells = [None] * len(self.prev.lens), {}
        return head

    def lines(self, buf: bytes, pos: int, stop: int, k: int) -> tuple[int, bool]:
        """The lines of ``buf[pos:stop]`` from old line ``k``: (the old line
        reached, whether reading stopped at the stop row)."""
        hash_of, n_old, prev = self.hash, self.n_old, self.prev
        old_lens, old_rows, old_msi = prev.lens, prev.rows, prev.msi
        old_hashes, old_shapes = self.old_hashes, self.old_shapes
        memo, rows = self.memo, self.rows
        hashes = memo.hashes if memo.hashes is not None else []  # used when hashed only
        view = memoryview(buf)
        h = 0
        while pos < stop:
            if hash_of is not None:
                # As last time but for the one cell that changed then, or all
                # of it: as long, a newline at its end and the same hash (so no
                # newline before it either). Not searched for its newline, not
                # copied, not parsed.
                end = pos + old_lens[k] if k < n_old else stop + 1
                if end <= stop and buf[end - 1] == 10:
                    shape = old_shapes[k]
                    if shape is not None and shape.hot >= 0:
                        if self._followed_cell(buf, view, pos, end, k, shape):
                            pos, k = end, k + 1
                            continue
                    elif hash_of(view[pos:end]) == old_hashes[k]:  # as before: its row as it was
                        row = old_rows[k]
                        if row is not None:
                            rows.append(row)
                        self.has_msi = self.has_msi or old_msi[k]
                        memo.add(end - pos, row, old_msi[k], shape, fresh=False)
                        hashes.append(old_hashes[k])
                        pos, k = end, k + 1
                        continue
                end = buf.find(b"\n", pos, stop) + 1 or stop
                h = hash_of(view[pos:end])
            else:
                end = buf.find(b"\n", pos, stop) + 1 or stop
            next_k = self._parse(buf[pos:end], h, k)
            if next_k is None:
                return k, True
            pos, k = end, next_k
        return k, False

    def _followed_cell(
        self, buf: bytes, view: memoryview, pos: int, end: int, k: int, shape: Shape
    ) -> bool:
        """Old line k as before around its followed cell (two hashes): take the
        total from that cell alone. False: not so, parse the line."""
        assert self.hash is not None and self.memo.hashes is not None
        c = pos + shape.first + CELL * shape.hot
        h = self.hash(view[pos:c]) ^ self.hash(view[c + CELL:end])
        now = cell_at(buf, c) if h == self.old_hashes[k] else None
        if now is None:
            return False
        old_row, msi = self.prev.rows[k], self.prev.msi[k]
        assert old_row is not None  # a shape: a kernel-printed row
        self.has_msi = self.has_msi or msi
        total = (old_row.total - shape.hot_count + now) & ULONG_MAX
        row = row_again(old_row, total, buf, pos, end, self.known)
        if row is not old_row:
            shape = Shape._make((*shape[:4], now))
            self.changed.append(row)
        self.rows.append(row)
        self.memo.add(end - pos, row, msi, shape, fresh=row is not old_row)
        self.memo.hashes.append(h)
        return True

    def _parse(self, line: bytes, h: int, k: int) -> int | None:
        """A line parsed anew (``h``: its hash when hashed); returns the old line
        to compare the next line with, or None at the stop row."""
        parsed = parse_line(line, self.lanes, self.known)
        if parsed is None:
            self.has_msi = self.has_msi or b"MSI" in line.partition(b"\0")[0]
            return None
        row, msi, shape = parsed
        self.has_msi = self.has_msi or msi
        if row is None:
            k += 1
        else:
            k, in_place = resync(self.where, row.irq, k)
            self.same = self.same and in_place  # else a new IRQ, or old lines skipped
            self.rows.append(row)
            self.changed.append(row)
            if self.n_old and self.hash is not None and shape is not None and line[-1] == 10:
                shape, h = self._follow_next_time(line, shape, k - 1, h)
        if line[-1] == 10:
            if not self.keep and shape is not None and shape.hot < 0:
                shape = None  # in a hashed memo, a shape only serves to follow a cell
            self.memo.add(len(line), row, msi, shape)
            if self.memo.hashes is not None:
                self.memo.hashes.append(h)
        return k

    def _follow_next_time(self, line: bytes, shape: Shape, k: int, h: int) -> tuple[Shape, int]:
        """A row changed since the last scan (old line k): the one cell that
        changed, if one did, to follow next time; (its shape, its line hash)."""
        assert self.lanes is not None and self.hash is not None
        shape, cells, split = one_cell_to_follow(line, shape, self.lanes, self.old_cells.get(k))
        if split is None:
            if cells is not None:
                self.memo.cells[len(self.memo.lens)] = cells  # found next time, maybe
            return shape, h
        view = memoryview(line)
        return shape, self.hash(view[:split]) ^ self.hash(view[split + CELL:])
