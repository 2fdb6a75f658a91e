"""The balancer's per-IRQ totals of /proc/interrupts, across passes, doing as little as it can.

:class:`IrqCountScanner` gives what :func:`~pyirqbalance.kernel.irqcounts_ref.reference_irq_counts`
gives, with irqbalance's rules, and remembers each scan for the next:

* files up to ``memo_limit`` bytes are read whole and compared with the
  last one in place (:mod:`.kept`);
* bigger ones are streamed in chunks and compared by their lines' hashes
  (:mod:`.streamed`);
* kernel-printed rows are summed without converting every cell, and a row
  whose one changing cell is known is read from that cell (:mod:`.cells`).

After a scan, :attr:`IrqCountScanner.changed` lists the rows parsed anew
when every other row is as it was, so the balancer touches only those IRQs.
A row keeps its line only when the caller may need its text: IRQs not in
``known``, or every row when ``known`` is None.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator
from itertools import accumulate

from ..irqcounts_ref import IrqCount, IrqCounts
from ..sysroot import KernelReadError, SysRoot
from .cells import CELL, CellsChanged
from .kept import KeptScan
from .memo import Memo
from .streamed import StreamScan, complete_lines

__all__ = ["MEMO_LIMIT", "IrqCountScanner", "parse_irq_counts", "read_irq_counts"]

#: The largest file whose lines the scanner keeps to skip unchanged rows
#: (a 256-CPU machine with 2048 IRQs prints 6 MB; 1024 CPUs, 8192 IRQs: 93 MB).
MEMO_LIMIT = 8 << 20

#: ``(cell, None)`` per followed cell, made once: :meth:`IrqCountScanner.cells` answers for
#: thousands of IRQs a pass, and allocates nothing for these.
_HOT_CELLS: dict[int, CellsChanged] = {}


class IrqCountScanner:
    """:func:`~pyirqbalance.kernel.irqcounts_ref.reference_irq_counts` across passes.

    :meth:`scan` takes a whole file (kept mode up to ``memo_limit`` bytes),
    :meth:`scan_chunks` a file arriving in pieces (streamed mode, or kept if
    it turns out small). Reading stops where irqbalance stops, at the first
    row that does not start with a digit.
    """

    __slots__ = ("_memo", "_size", "_spare", "_where", "changed", "memo_limit")

    def __init__(self, memo_limit: int = MEMO_LIMIT) -> None:
        self.memo_limit = memo_limit
        #: After a scan: the rows it parsed anew, in file order, when every
        #: other row is byte-identical to the last scan's and the IRQs are
        #: the same, in the same order; None when that is not known.
        self.changed: tuple[IrqCount, ...] | None = None
        #: Bytes the last scan went through (0: no scan yet).
        self._size = 0
        self._memo = Memo()
        #: IRQ number -> line index in the memo.
        self._where: dict[int, int] = {}
        #: The buffer the next whole file is read into (the memo holds the other).
        self._spare: bytearray | None = None

    @property
    def wants_whole(self) -> bool:
        """Whether the next file is best read whole (it was small last time)."""
        return 0 < self._size <= self.memo_limit

    def buffer(self) -> bytearray:
        """Where to read the next whole file: the last file's size, and not the memo's.

        Two buffers take turns (one is read into, the other holds the last
        file), so after the first passes a read allocates nothing.
        """
        if self._spare is None:
            self._spare = bytearray(self._size)
        return self._spare

    def cells(self, irqs: Iterable[int], whole: bool = False) -> dict[int, CellsChanged]:
        """What the last scan knows of each IRQ's per-column counts (its row's cells).

        Per IRQ of ``irqs`` that the last scan read: ``(cell, None)`` when that
        column alone changed since the scan before (the row was summed from
        it), else ``(None, counts)`` with the non-zero columns' counts when
        the row's line is at hand (a kept file, or a streamed row whose
        non-zero cells were noted), else nothing. Columns are indexes into
        the header's CPUs. Rows not printed in the kernel's fixed-width form
        are left out. ``whole``: every row's non-zero columns where its line is
        at hand, even when one column alone changed.
        """
        memo, where = self._memo, self._where
        out: dict[int, CellsChanged] = {}
        offsets: list[int] | None = None
        data = memo.data if memo.hashes is None else None
        for irq in irqs:
            i = where.get(irq)
            if i is None or i >= len(memo.shapes):
                continue
            shape = memo.shapes[i]
            if shape is not None and shape.hot >= 0 and not whole:
                known = _HOT_CELLS.get(shape.hot)
                if known is None:
                    known = _HOT_CELLS.setdefault(shape.hot, (shape.hot, None))
                out[irq] = known
                continue
            cells = memo.cells.get(i)
            if cells is not None:
                counts = {c: int(v) for c, v in cells.items()}
                out[irq] = (None, {c: v for c, v in counts.items() if v})
                continue
            if data is None or shape is None:
                continue
            if offsets is None:
                offsets = list(accumulate(memo.lens, initial=memo.head))
            at = offsets[i]
            numbers = bytes(data[at + shape.first:at + shape.last]).split()
            if len(numbers) * CELL != shape.last - shape.first:
                continue
            out[irq] = (None, {c: int(v) for c, v in enumerate(numbers) if v != b"0"})
        return out

    def _keep(self, memo: Memo | None, size: int, where: dict[int, int] | None = None) -> None:
        self._size = size
        last = self._memo.data
        self._memo = memo or Memo()
        if memo is None or memo.hashes is not None:
            self._spare = None  # streamed from now on: no buffers held
        elif self._spare is memo.data:
            self._spare = last if type(last) is bytearray else None
        if where is None:
            where = {row.irq: i for i, row in enumerate(self._memo.rows) if row is not None}
        self._where = where

    def scan(
        self, data: bytes | bytearray, known: Container[int] | None = None, keep_text: bool = False
    ) -> IrqCounts:
        """Scan a whole file held in memory (with the memo when it is small).

        ``data`` may be :meth:`buffer` (the memo then holds it until the
        scan after next); rows and the returned text never share it.
        """
        if len(data) > self.memo_limit:
            return self.scan_chunks((bytes(data),), known, keep_text)
        text = bytes(data) if keep_text else None
        head = data.find(b"\n") + 1
        self.changed = None
        if not head:
            self._keep(None, len(data))
            return IrqCounts((), False, text)  # a header at most
        kept = KeptScan(self._memo, self._where, data, head, known)
        kept.run()
        if kept.same:
            self.changed = tuple(kept.changed)
        self._keep(kept.memo, len(data), self._where if kept.same else None)
        return IrqCounts(tuple(kept.rows), kept.has_msi, text)

    def scan_chunks(
        self, chunks: Iterable[bytes], known: Container[int] | None = None, keep_text: bool = False
    ) -> IrqCounts:
        """Scan the file arriving in ``chunks``.

        When the file turns out small (at most ``memo_limit`` bytes up to
        the row where reading stops), it is kept as the memo for the next
        :meth:`scan`; otherwise its lines' hashes are (unless the last file
        was small: no reason to think this one is not). Lines hashed as last
        time are not parsed. ``keep_text``: also return the whole file, read
        to its end.
        """
        kept: list[bytes] = []
        sizes: list[int] = []
        pieces = _keeping(chunks, kept, sizes)
        stream = StreamScan(
            self._memo, self._where, known,
            hashed=not self.wants_whole,
            keep=self._size <= self.memo_limit,  # may still be kept (not: big last time)
        )
        k = self._stream(stream, pieces, kept, keep_text)
        if keep_text:
            for _ in pieces:  # the rest of the file, for the snapshot
                pass
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # done reading (irqbalance closes the file here too)
        text: bytes | None = None
        data: bytes | bytearray
        if keep_text or len(kept) == 1:
            data = text = kept[0] if len(kept) == 1 else b"".join(kept)
        else:
            data = bytearray().join(kept)  # kept as the memo, later a read buffer (:meth:`buffer`)
        same = stream.same and k == stream.n_old  # else old lines left over: IRQs vanished
        self.changed = tuple(stream.changed) if same else None
        self._keep_streamed(stream, data, sum(sizes), same)
        return IrqCounts(tuple(stream.rows), stream.has_msi, text if keep_text else None)

    def _stream(
        self, stream: StreamScan, pieces: Iterator[bytes], kept: list[bytes], keep_text: bool
    ) -> int:
        """Run ``stream`` over the lines of ``pieces``; returns the old line reached."""
        k = 0  # line index in the last scan
        head = -1
        runs = complete_lines(pieces)
        for buf, pos, stop in runs:
            if head < 0:
                pos = head = stream.header(buf, pos, stop)
            k, stopped = stream.lines(buf, pos, stop, k)
            if stopped:
                break
            if stream.keep and sum(map(len, kept)) > self.memo_limit:
                stream.keep = False  # too big to keep: read on without it (at most 9 chunks)
            if not stream.keep and not keep_text:
                kept.clear()
        runs.close()
        return k

    def _keep_streamed(
        self, stream: StreamScan, data: bytes | bytearray, size: int, same: bool
    ) -> None:
        memo = stream.memo
        memo.ncells = stream.lanes.n if stream.lanes else 0
        if stream.keep and size <= self.memo_limit:  # a file that shrank: read whole next time
            memo.data, memo.hashes = data, None
            memo.fresh.clear()  # nothing to compare with: no hint for the next scan
            self._keep(memo, size)
        elif memo.hashes is not None:
            self._keep(memo, size, self._where if same else None)
        else:
            self._keep(None, size)


def _keeping(chunks: Iterable[bytes], kept: list[bytes], sizes: list[int]) -> Iterator[bytes]:
    for chunk in chunks:
        kept.append(chunk)
        sizes.append(len(chunk))
        yield chunk


def parse_irq_counts(data: bytes) -> IrqCounts:
    """One-off scan (the IRQ collector at a database build)."""
    return IrqCountScanner().scan(data)


def read_irq_counts(
    root: SysRoot,
    scanner: IrqCountScanner | None = None,
    known: Container[int] | None = None,
    keep_text: bool = False,
) -> IrqCounts | None:
    """Scan /proc/interrupts, or None when it cannot be read.

    Read whole when the scanner compares with its last scan (into the
    scanner's spare buffer, one read(2) of about the last size: seq_file
    fills it), streamed in chunks otherwise.
    """
    scanner = scanner or IrqCountScanner()
    path = root.proc("interrupts")
    try:
        if scanner.wants_whole:
            return scanner.scan(root.read_into(path, scanner.buffer()), known, keep_text)
        return scanner.scan_chunks(root.read_chunks(path), known, keep_text)
    except KernelReadError:
        return None
