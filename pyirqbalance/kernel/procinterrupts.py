"""/proc/interrupts (kernel/irq/proc.c ``show_interrupts``).

Two readers for two consumers:

* :func:`parse_interrupts` -- every row, per-CPU counts, chip, hwirq, trigger
  and action names, for people, the history store and the API. It handles the
  formats of the real captures under tests/fixtures/proc: pre-4.3
  ``IO-APIC-edge``, ``IO-APIC 2-edge``, 6.x ``PCI-MSIX-0000:00:04.0 1-edge``,
  arm ``GICv3 27 Level``, s390x and old ARM rows with a chip but no hwirq,
  ancient ARM rows with no chip at all, and named rows (``LOC``, ``NMI``,
  ``IPI0:2768808080`` with no space after the colon).
* :func:`parse_irq_counts` / :class:`IrqCountScanner` -- the balancer's hot
  path with irqbalance 1.9's exact rules (procinterrupts.c): the header is
  skipped, reading stops at the first row that does not start with a digit,
  and a count is a column only when followed by a space, a tab or the end of
  the string (a count directly followed by the newline is *not* a column).
  Only each row's total is kept. Files up to 8 MiB are compared with the
  last scan (runs of unchanged rows matched with one memcmp, changed rows
  reported so the balancer touches only those IRQs); bigger ones are
  streamed in chunks, never held whole, and compared by their lines'
  hashes. Kernel-printed rows are summed
  without converting every cell. :func:`reference_irq_counts` is the same
  reading done the plain C way, line by line; the two always agree.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Container, Iterable, Iterator
from functools import cache
from itertools import accumulate
from typing import NamedTuple

from ..errors import ParseError
from .sysroot import KernelReadError, SysRoot

__all__ = [
    "InterruptRow",
    "Interrupts",
    "IrqCount",
    "IrqCountScanner",
    "IrqCounts",
    "ParseError",
    "parse_interrupts",
    "parse_irq_counts",
    "read_interrupts",
    "read_irq_counts",
    "reference_irq_counts",
]

_PATH = "/proc/interrupts"


# --------------------------------------------------------------------------
# full parse
# --------------------------------------------------------------------------


class InterruptRow(NamedTuple):
    """One row: a numbered IRQ or a named per-CPU counter (LOC, NMI, IPI0 ...)."""

    label: str
    irq: int | None
    #: Per-CPU counts in header order. Shorter than the header for ERR/MIS;
    #: longer on old ARM kernels whose IPI rows list every present CPU.
    counts: tuple[int, ...]
    chip: str = ""
    hwirq: str = ""
    trigger: str = ""
    #: Action (device) names of a numbered IRQ, or the description of a named row.
    actions: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts)


class Interrupts(NamedTuple):
    """The whole file: CPU numbers from the header, rows in file order."""

    cpus: tuple[int, ...]
    rows: tuple[InterruptRow, ...]

    def by_irq(self) -> dict[int, InterruptRow]:
        return {r.irq: r for r in self.rows if r.irq is not None}

    def per_cpu(self, row: InterruptRow) -> dict[int, int]:
        """``{cpu number: count}`` for a row (header order, so offline gaps are right)."""
        return dict(zip(self.cpus, row.counts))


#: Flow handler names the kernel appends as ``-name`` (``handle_edge_irq`` ...),
#: and Xen's event-channel chips (``xen-dyn-event``, ``xen-percpu-virq``).
_FLOWS = frozenset(
    ["edge", "level", "fasteoi", "simple", "percpu", "percpu_devid", "untracked", "bad", "event", "virq", "ipi"]
)
_LEVELS = ("Level", "Edge")  # CONFIG_GENERIC_IRQ_SHOW_LEVEL (arm, arm64)


def _is_number(token: str) -> bool:
    return token.isascii() and token.isdigit()


def _split_counts(body: str, limit: int | None) -> tuple[tuple[int, ...], str, int]:
    """Leading counts of a row body, the text after them, and the blank gap between."""
    tokens = body.split(None, limit) if limit is not None else body.split()
    k = len(tokens) if limit is None else min(limit, len(tokens))
    if k and not _is_number("".join(tokens[:k])):  # usually all of them are numbers
        k = 0
        while _is_number(tokens[k]):
            k += 1
    counts = tuple(map(int, tokens[:k]))
    if k == len(tokens):
        return counts, "", 0
    rest = tokens[k] if k == limit else body.split(None, k)[k]
    start = len(body) - len(rest)
    return counts, rest.strip(), start - len(body[:start].rstrip())


def _describe(rest: str, no_chip: bool) -> tuple[str, str, str, str]:
    """Chip, hwirq, trigger and actions from what follows a numbered row's counts."""
    if no_chip:
        return "", "", "", rest
    tokens = rest.split(None, 3)
    if not tokens:
        return "", "", "", ""
    chip = tokens[0]
    if len(tokens) >= 2:
        hw, dash, flow = tokens[1].partition("-")
        if dash and _is_number(hw) and flow:
            # "IO-APIC   2-edge   timer", "PCI-MSIX-0000:00:04.0   1-edge   virtio0-config"
            return chip, hw, flow, _after(rest, 2)
        if _is_number(tokens[1]):
            if len(tokens) >= 3 and tokens[2] in _LEVELS:
                # "GICv3  27 Level     arch_timer"
                return chip, tokens[1], tokens[2], _after(rest, 3)
            # "intel-gpio   87  rt5682s": hwirq without a trigger column
            return chip, tokens[1], "", _after(rest, 2)
    base, dash, flow = chip.rpartition("-")
    if dash and base and flow in _FLOWS:
        # before 4.3: "IO-APIC-edge  timer", "PCI-MSI-edge  eth0", "xen-dyn-event  eth0"
        return base, "", flow, _after(rest, 1)
    return chip, "", "", _after(rest, 1)  # "PCI-MSI  mlx5_async", "-  mtk_disp"


def _after(text: str, n: int) -> str:
    parts = text.split(None, n)
    return parts[n].strip() if len(parts) > n else ""


def _has_chip_column(samples: list[tuple[str, int]]) -> bool:
    """Whether rows whose description has no hwirq start with a chip name.

    ``samples`` are (first description token, blanks before it). The kernel
    prints the chip right-aligned (``" %8s"`` after the counts' blank, so
    1 or 2 blanks plus the padding), while ancient ARM kernels print only
    ``"  %s"`` action names (always 3 blanks). A majority vote over the rows
    tells the two apart (``eth0`` after 3 blanks cannot be a chip).
    """
    fits = sum(1 for tok, gap in samples if gap - max(0, 8 - len(tok)) in (1, 2))
    return 2 * fits >= len(samples)


def _parse_header(line: str) -> tuple[int, ...]:
    cpus = []
    for token in line.split():
        if not token.startswith("CPU") or not _is_number(token[3:]):
            raise ParseError("header must list CPUn columns", path=_PATH, lineno=1, line=line)
        cpus.append(int(token[3:]))
    if not cpus:
        raise ParseError("header lists no CPU", path=_PATH, lineno=1, line=line)
    return tuple(cpus)


def parse_interrupts(text: str) -> Interrupts:
    """Parse the whole file. Raises :class:`ParseError` for text of another shape."""
    lines = text.split("\n")
    if not lines[0].strip():
        raise ParseError("empty file or no header line", path=_PATH)
    cpus = _parse_header(lines[0])
    ncpu = len(cpus)
    parsed: list[tuple[str, int | None, tuple[int, ...], str, int]] = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue  # blank and whitespace-only lines occur in real captures
        label, colon, body = line.partition(":")
        label = label.strip()
        if not colon or not label or len(label.split()) != 1:
            raise ParseError("expected 'LABEL: counts'", path=_PATH, lineno=lineno, line=line)
        irq = int(label) if _is_number(label) else None
        # Named rows take every leading number: old ARM kernels print IPI counts
        # for all present CPUs under a header of online CPUs only.
        counts, rest, gap = _split_counts(body, ncpu if irq is not None else None)
        parsed.append((label, irq, counts, rest, gap))

    samples = [
        (rest.split(None, 1)[0], gap)
        for _, irq, _, rest, gap in parsed
        if irq is not None and rest and not _hwirq_follows(rest)
    ]
    no_chip = bool(samples) and not _has_chip_column(samples)
    rows = []
    for label, irq, counts, rest, _ in parsed:
        if irq is None:
            rows.append(InterruptRow(label, None, counts, actions=rest))
        else:
            rows.append(InterruptRow(label, irq, counts, *_describe(rest, no_chip)))
    return Interrupts(cpus, tuple(rows))


def _hwirq_follows(rest: str) -> bool:
    tokens = rest.split(None, 2)
    return len(tokens) >= 2 and _is_number(tokens[1].partition("-")[0])


def read_interrupts(root: SysRoot) -> Interrupts:
    """Read and parse /proc/interrupts (raises KernelReadError or ParseError)."""
    return parse_interrupts(root.read_text(root.proc("interrupts")))


# --------------------------------------------------------------------------
# the balancer's per-IRQ totals
# --------------------------------------------------------------------------


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


_U64 = (1 << 64) - 1
#: A row irqbalance reads: blanks, then a digit (``isblank`` / ``isdigit``).
_ROW_START = re.compile(rb"[ \t]*([0-9]+)")
#: What one ``strtoull(c, &c2, 10)`` consumes: C ``isspace``, a sign, digits.
_STRTOULL = re.compile(rb"[ \t\n\v\f\r]*([+-]?)([0-9]+)")


def _c_irq_number(digits: bytes) -> int:
    """``int number = strtoul(line, NULL, 10)``: saturate at ULONG_MAX, keep 32 bits."""
    value = _c_ulong(b"", digits) & 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


def _c_ulong(sign: bytes, digits: bytes) -> int:
    """glibc ``strtoull``: overflow gives ULLONG_MAX, a minus sign negates modulo 2**64."""
    digits = digits.lstrip(b"0")
    if len(digits) > 20:  # also keeps int() below its 4300-digit limit
        return _U64
    value = int(digits or b"0")
    if value > _U64:
        return _U64
    return -value & _U64 if sign == b"-" else value


def _count_columns(line: bytes, pos: int) -> tuple[int, int, int]:
    """irqbalance's column loop from ``pos``: total mod 2**64, columns, where it stopped."""
    total = ncols = 0
    end = len(line)
    while True:
        m = _STRTOULL.match(line, pos)
        if m is None:
            break  # no number: end of the counts
        pos = m.end()
        if pos < end and line[pos] not in b" \t":
            break  # "123\n", "48059000.gpio": not a column
        total = (total + _c_ulong(m[1], m[2])) & _U64
        ncols += 1
    return total, ncols, pos


def _row(line: bytes) -> IrqCount | None:
    """One line after the header, the plain way; None if irqbalance skips it (no ':')."""
    colon = line.find(b":")
    if colon < 0:
        return None
    total, ncols, _ = _count_columns(line, colon + 1)
    number = _c_irq_number(_ROW_START.match(line)[1])
    return IrqCount(number, total, ncols, line)


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
        if _ROW_START.match(line) is None:
            break  # NMI:, LOC:, ... and every line after them are never seen
        row = _row(line)
        if row is not None:
            rows.append(row)
    return IrqCounts(tuple(rows), has_msi)


# The kernel prints each count as " %10u" (before 6.x: ": " then "%10u " -- the
# same bytes), so a row of a machine with N online CPUs starts with N cells of
# 11 bytes after the colon. On big machines most cells are zero.
_CELL = 11
#: bytes.translate table: 0 stays 0, anything else becomes 1.
_MARK = bytes([0] + [1] * 255)


class _Lanes:
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


def _cell_flags(line: bytes, start: int, end: int, lanes: _Lanes) -> int:
    """One byte per cell of ``line[start:end]`` (little-endian), non-zero where
    the cell's last two bytes are not " 0": the cells that may hold anything but
    a blank "0" (two strided slices, one integer XOR each)."""
    return (int.from_bytes(line[start + _CELL - 1:end:_CELL], "little") ^ lanes.zero_int) | (
        int.from_bytes(line[start + _CELL - 2:end:_CELL], "little") ^ lanes.blank_int
    )


def _cells_total(line: bytes, start: int, lanes: _Lanes) -> int | None:
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
    end = start + _CELL * n
    if len(line) < end or line[end:end + 1] not in (b" ", b"\t", b""):
        return None
    flags = _cell_flags(line, start, end, lanes)
    zeros = lanes.zeros
    if not flags:  # every cell ends in " 0"
        return 0 if line.startswith(zeros, start) else None
    marks = flags.to_bytes(n, "little").translate(_MARK)
    marked = marks.count(1)
    if 8 * marked > n:  # dense row
        seg = line[start:end]
        if seg[0::_CELL] != lanes.blanks or not seg[_CELL - 1::_CELL].isdigit():
            return None
        numbers = seg.split()
        if len(numbers) != n or not b"".join(numbers).isdigit():
            return None  # a cell with two numbers, or a sign or other byte in one
        return sum(map(int, numbers))
    total = 0
    done = 0  # cells checked so far
    i = -1
    for _ in range(marked):
        i = marks.find(1, i + 1)
        at = _CELL * i
        if not line.startswith(zeros[_CELL * done:at], start + _CELL * done):
            return None  # an unmarked cell or a separator is not what the kernel prints
        number = line[start + at + 1:start + at + _CELL].lstrip(b" ")
        if line[start + at] != 32 or not number.isdigit():
            return None
        total += int(number)
        done = i + 1
    if not line.startswith(zeros[_CELL * done:], start + _CELL * done):
        return None
    return total


def _cell(line: bytes, at: int) -> int | None:
    """The count of the kernel-printed cell at ``line[at:]`` (a space, then
    blanks and digits), or None if it is not one."""
    digits = line[at + 1:at + _CELL].lstrip(b" ")
    return int(digits) if line[at] == 32 and digits.isdigit() else None


def _changed_cell(line: bytes, start: int, old: memoryview, ostart: int, n: int) -> int:
    """The index of the only cell of ``n`` at ``line[start:]`` that differs
    from the cells at ``old[ostart:]``; -1 if none or several do.

    Bisection on the run of equal leading cells (one memcmp per step), then
    one memcmp of the cells after the first difference.
    """
    lo, hi = 0, n + 1  # the first lo cells are equal, the first hi are not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if line.startswith(old[ostart:ostart + _CELL * mid], start):
            lo = mid
        else:
            hi = mid
    if lo == n:
        return -1
    after = _CELL * (lo + 1)
    return lo if line.startswith(old[ostart + after:ostart + _CELL * n], start + after) else -1


#: Where a kernel-printed row's cells are and what the rest adds to them:
#: (cells start, cells end, total minus the cells' sum mod 2**64, the one
#: cell that changed when the row was last summed or -1 (-2: several did,
#: do not look this time), that cell's count then).
_Shape = tuple[int, int, int, int, int]


def _resum(
    data: bytes, pos: int, old: memoryview, a: int, b: int, shape: _Shape, total: int, lanes: _Lanes
) -> tuple[int, _Shape] | None:
    """(total, shape) of the line at ``data[pos:]`` whose last version,
    kernel-printed, was ``old[a:b]`` with ``total``; None unless only its
    cells changed (same label, same text after them, still one line).

    The cell that changed last time is tried first: the line as before
    around it (two memcmps) and a count in it give the total from the old
    one (an IRQ fires on one CPU until it moves). Otherwise the cells are
    summed and the one that changed, if only one did, is found for next time.
    """
    first, last, base, hot, was = shape
    if len(data) < pos + b - a:
        return None
    if hot >= 0:
        c = first + _CELL * hot
        after = c + _CELL
        if data.startswith(old[a:a + c], pos) and data.startswith(old[a + after:b], pos + after):
            now = _cell(data, pos + c)
            if now is not None:
                return (total - was + now) & _U64, (first, last, base, hot, now)
    if not (data.startswith(old[a:a + first], pos) and data.startswith(old[a + last:b], pos + last)
            and data.find(b"\n", pos + first, pos + last) < 0):
        return None
    cells = _cells_total(data, pos + first, lanes)
    if cells is None:
        return None
    now = None
    if hot == -2:
        hot = -1  # several cells changed last time: look again next time
    else:
        hot = _changed_cell(data, pos + first, old, a + first, lanes.n)
        if hot >= 0:
            # None if the cells hold the right numbers but not one per cell
            now = _cell(data, pos + first + _CELL * hot)
        if now is None:
            hot = -2
    return (cells + base) & _U64, (first, last, base, hot, now or 0)


def _nonzero_cells(line: bytes, start: int, lanes: _Lanes) -> dict[int, bytes] | None:
    """Cell index -> cell bytes of the cells of a kernel-printed row (checked
    by :func:`_cells_total`) that are not a blank "0"; None for more than a
    few (many CPUs counted this IRQ: no one cell to follow)."""
    n = lanes.n
    flags = _cell_flags(line, start, start + _CELL * n, lanes)
    marks = flags.to_bytes(n, "little").translate(_MARK)
    if marks.count(1) > _FEW_CELLS:
        return None
    out = {}
    i = marks.find(1)
    while i >= 0:
        at = start + _CELL * i
        out[i] = line[at:at + _CELL]
        i = marks.find(1, i + 1)
    return out


#: The most non-zero cells a row may have for its changed cell to be looked for.
_FEW_CELLS = 64


def _one_cell_to_follow(
    line: bytes, shape: _Shape, lanes: _Lanes, before: dict[int, bytes] | None
) -> tuple[_Shape, dict[int, bytes] | None, int | None]:
    """For a row of the hashed mode parsed anew: (its shape, naming the one
    cell that changed since ``before`` when one did; its non-zero cells, to
    compare next time when none is named; where the named cell starts)."""
    cells = _nonzero_cells(line, shape[0], lanes)
    if cells is None or before is None:
        return shape, cells, None
    hot = _one_changed_cell(before, cells)
    at = shape[0] + _CELL * hot
    now = _cell(line, at) if hot >= 0 else None
    if now is None:
        return shape, cells, None
    return (shape[0], shape[1], shape[2], hot, now), None, at


def _one_changed_cell(old: dict[int, bytes], new: dict[int, bytes]) -> int:
    """The index of the only cell that differs between two :func:`_nonzero_cells`; -1 if not one."""
    diff = [i for i, cell in new.items() if old.get(i) != cell]
    diff += [i for i in old if i not in new]
    return diff[0] if len(diff) == 1 else -1


def _row_again(
    orow: IrqCount, total: int, data: bytes, pos: int, end: int, known: Container[int] | None
) -> IrqCount:
    """The row of ``data[pos:end]``, a line in place of ``orow``'s with ``total``:
    ``orow`` itself when the line is as it was (same total, a kept line the same
    to the byte), else a new row keeping the line if the caller may need it."""
    if total == orow.total and (orow.raw is None or data.startswith(orow.raw, pos)):
        return orow
    raw = bytes(data[pos:end]) if known is None or orow.irq not in known else None
    return IrqCount(orow.irq, total, orow.ncols, raw)


def _fast_row(
    line: bytes, label: re.Match[bytes], lanes: _Lanes | None
) -> tuple[int, int, int, bool, _Shape | None] | None:
    """:func:`_row` for a NUL-free line, trying the fixed-stride cells first.

    Returns (irq, total, columns, "MSI" in the line, shape), or None for a
    line without a colon; shape is None unless the cells were kernel-printed.
    The counted columns hold only blanks, signs and digits, so only the
    label and what follows the counts are searched for "MSI".
    """
    colon = line.find(b":")
    if colon < 0:
        return None
    cells = None if lanes is None else _cells_total(line, colon + 1, lanes)
    shape = None
    if cells is None:
        total, ncols, stop = _count_columns(line, colon + 1)
    else:
        # irqbalance goes on reading numbers after the cells; on a real row
        # the chip name comes next and this stops at once.
        end = colon + 1 + _CELL * lanes.n
        more, extra, stop = _count_columns(line, end)
        total, ncols = (cells + more) & _U64, lanes.n + extra
        shape = (colon + 1, end, more & _U64, -1, 0)
    msi = line.find(b"MSI", stop) >= 0 or line.find(b"MSI", 0, colon) >= 0
    return _c_irq_number(label[1]), total, ncols, msi, shape


#: The largest file whose lines the scanner keeps to skip unchanged rows
#: (a 256-CPU machine with 2048 IRQs prints 6 MB; 1024 CPUs, 8192 IRQs: 93 MB).
MEMO_LIMIT = 8 << 20


@cache
def _line_hash() -> Callable[[memoryview], int]:
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


def _complete_lines(chunks: Iterable[bytes]) -> Iterator[tuple[bytes, int, int]]:
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


class _Memo:
    """A scanned file kept for the next scan: its bytes and, per line after
    the header, the line's length, row (None: no colon), "MSI" flag and shape;
    and which lines were parsed anew (changed since the scan before).

    A file too big to keep has ``hashes`` instead of its bytes: per line,
    the 64-bit keyed hash (:func:`_line_hash`) of its bytes, or, when its
    shape names one changed cell, the hashes of the bytes before and after
    that cell, XORed.
    """

    __slots__ = (
        "cells",
        "data",
        "fresh",
        "hashes",
        "head",
        "lens",
        "msi",
        "ncells",
        "rows",
        "shapes"
    )

    def __init__(self, data: bytes = b"", head: int = 0, ncells: int = 0) -> None:
        self.data, self.head, self.ncells = data, head, ncells
        self.lens: list[int] = []
        self.rows: list[IrqCount | None] = []
        self.msi: list[bool] = []
        self.shapes: list[_Shape | None] = []
        self.fresh: list[int] = []
        self.hashes: list[int] | None = None
        #: Hashed mode: line index -> its non-blank-"0" cells, for rows that
        #: changed with no one changed cell known (:func:`_one_changed_cell`).
        self.cells: dict[int, dict[int, bytes]] = {}

    def add(
        self, size: int, row: IrqCount | None, msi: bool, shape: _Shape | None, fresh: bool = True
    ) -> None:
        if fresh:
            self.fresh.append(len(self.lens))
        self.lens.append(size)
        self.rows.append(row)
        self.msi.append(msi)
        self.shapes.append(shape)

    def take(self, old: _Memo, k: int, j: int) -> None:
        """Lines k..j-1 of ``old``, unchanged."""
        self.lens += old.lens[k:j]
        self.rows += old.rows[k:j]
        self.msi += old.msi[k:j]
        self.shapes += old.shapes[k:j]


class IrqCountScanner:
    """:func:`reference_irq_counts` across passes, doing as little as it can.

    * Small files (at most ``memo_limit`` bytes, read whole) are compared
      with the last scan in place: runs of unchanged rows are matched with
      one ``startswith`` each (a memcmp against a slice of the last file, no
      copy, no hash), and their rows are reused. A run reaches to the next
      row that changed last time (the IRQs that fire keep firing), which is
      then compared alone; a run that turns out to hold a change is cut
      down and grows again (gallops). Only changed rows are parsed, and a
      changed row whose label and tail are as before only has its cells
      summed, or only one cell read when that cell alone changed last
      time and the rest is as before (:func:`_resum`); after a new or
      moved row the comparison resynchronises on its IRQ number, so an
      IRQ that appears or vanishes costs one row, not the rest of the file.
      :attr:`changed` then lists the rows parsed anew, so the caller can
      skip the others too.
    * Bigger files are streamed (:meth:`scan_chunks`), never whole in
      memory. Each line is hashed (:func:`_line_hash`: 64 bits, keyed) and
      a line as long as the one in its place last time, with the same hash,
      is taken as unchanged without being searched for its newline, copied
      or parsed; other rows are summed (:func:`_cells_total`: a few C-level
      passes over each row). A false match is a 2**-64 chance per changed
      row. Reading stops where irqbalance stops, at the first row that does
      not start with a digit.

    A row keeps its line only when the caller may need its text: IRQs not
    in ``known``, or every row when ``known`` is None.
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
        self._memo = _Memo()
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

    def _keep(self, memo: _Memo | None, size: int, where: dict[int, int] | None = None) -> None:
        self._size = size
        last = self._memo.data
        self._memo = memo or _Memo()
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
        ncells = data.count(b"CPU", 0, head)  # a hint: a wrong one only costs time
        lanes = _Lanes(ncells) if ncells else None
        prev, where = self._memo, self._where
        # cell positions are known only for rows of the same width as before
        same_width = lanes is not None and lanes.n == prev.ncells
        oshapes = prev.shapes if same_width else [None] * len(prev.lens)
        nold = len(prev.lens) if prev.hashes is None else 0  # hashes only: nothing to compare
        ooff = list(accumulate(prev.lens, initial=prev.head))
        old = memoryview(prev.data)
        memo = _Memo(data, head, lanes.n if lanes else 0)
        rows: list[IrqCount] = []
        changed: list[IrqCount] = []
        same = nold > 0  # same IRQs in the same order as the last scan
        has_msi = False
        hints, h, nh = prev.fresh, 0, len(prev.fresh)  # lines that changed last time
        pos, n, k, step = head, len(data), 0, 1
        while pos < n:
            if k < nold:
                while h < nh and hints[h] < k:
                    h += 1
                shape = oshapes[k]
                # a line that changed last time likely changed again: straight to its cells
                if not (h < nh and hints[h] == k and shape is not None):
                    limit = nold if h == nh else hints[h] if hints[h] > k else k + 1
                    j = min(k + step, limit)
                    if data.startswith(old[ooff[k]:ooff[j]], pos):  # lines k..j-1 unchanged
                        memo.take(prev, k, j)
                        rows.extend(filter(None, prev.rows[k:j]))
                        has_msi = has_msi or True in prev.msi[k:j]
                        pos += ooff[j] - ooff[k]
                        k, step = j, (nold if j == limit else step * 2)
                        continue
                    if j > k + 1:
                        step = max((j - k) // 4, 1)
                        continue
                step = nold if h < nh else 1  # on to the next line that changed last time
                if shape is not None:
                    # Line k changed (or changed last time): if only its
                    # cells did, the rest adds what it added before.
                    a, b = ooff[k], ooff[k + 1]
                    orow = prev.rows[k]
                    resummed = _resum(data, pos, old, a, b, shape, orow.total, lanes)
                    if resummed is not None:
                        total, shape = resummed
                        msi = prev.msi[k]
                        has_msi = has_msi or msi
                        end = pos + b - a
                        row = _row_again(orow, total, data, pos, end, known)
                        if row is not orow:
                            changed.append(row)
                        rows.append(row)
                        # a row as it was is no longer a hint
                        memo.add(b - a, row, msi, shape, fresh=row is not orow)
                        pos, k = end, k + 1
                        continue
            end = data.find(b"\n", pos) + 1 or n
            line = bytes(data[pos:end]) if type(data) is bytearray else data[pos:end]
            parsed = _parse_line(line, lanes, known)
            if parsed is None:
                has_msi = has_msi or b"MSI" in line.partition(b"\0")[0]
                break  # irqbalance stops at the first row not starting with a digit
            row, msi, shape = parsed
            if row is not None:
                i = where.get(row.irq)
                if i != k:
                    same = False  # a new IRQ, or old lines skipped
                if i is not None:
                    k = i + 1
                changed.append(row)
                rows.append(row)
            has_msi = has_msi or msi
            if line[-1] == 10:  # an unterminated last line may grow: not kept
                memo.add(len(line), row, msi, shape)
            pos = end
        if k != nold:
            same = False  # old lines left over: IRQs vanished
        if not nold:
            memo.fresh.clear()  # nothing was compared: no hint for the next scan
        if same:
            self.changed = tuple(changed)
        self._keep(memo, len(data), where if same else None)
        return IrqCounts(tuple(rows), has_msi, text)

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
        source = chunks
        kept: list[bytes] = []
        sizes: list[int] = []
        chunks = _keeping(chunks, kept, sizes)
        keep = self._size <= self.memo_limit  # the file may still be kept (not: big last time)
        prev, where = self._memo, self._where
        phashes = prev.hashes or ()
        nold = len(phashes)
        memo = _Memo()
        if not 0 < self._size <= self.memo_limit:
            memo.hashes = []
        hashes = memo.hashes
        rows: list[IrqCount] = []
        changed: list[IrqCount] = []
        same = nold > 0  # same IRQs in the same order as the last scan
        k = 0  # line index in the last scan
        has_msi = False
        lanes: _Lanes | None = None
        head = -1
        runs = _complete_lines(chunks)
        line_hash = _line_hash() if hashes is not None else None
        plens, pshapes, pcells = prev.lens, prev.shapes, prev.cells
        for buf, pos, stop in runs:
            if head < 0:
                head = buf.find(b"\n", pos) + 1 or stop
                ncells = buf.count(b"CPU", 0, head)
                lanes = _Lanes(ncells) if ncells else None
                pos = head
                if ncells != prev.ncells:  # cell positions and indices were for another width
                    pshapes, pcells = [None] * len(plens), {}
            view = memoryview(buf)
            while pos < stop:
                if line_hash is not None:
                    # As last time but for the one cell that changed then, or
                    # all of it: as long, a newline at its end and the same
                    # hash (so no newline before it either). Not searched for
                    # its newline, not copied, not parsed.
                    end = pos + plens[k] if k < nold else stop + 1
                    if end <= stop and buf[end - 1] == 10:
                        shape = pshapes[k]
                        if shape is not None and shape[3] >= 0:
                            first, last, base, hot, was = shape
                            c = pos + first + _CELL * hot
                            h = line_hash(view[pos:c]) ^ line_hash(view[c + _CELL:end])
                            now = _cell(buf, c) if h == phashes[k] else None
                            if now is not None:
                                orow, msi = prev.rows[k], prev.msi[k]
                                has_msi = has_msi or msi
                                total = (orow.total - was + now) & _U64
                                row = _row_again(orow, total, buf, pos, end, known)
                                if row is not orow:
                                    shape = (first, last, base, hot, now)
                                    changed.append(row)
                                rows.append(row)
                                memo.add(end - pos, row, msi, shape, fresh=row is not orow)
                                hashes.append(h)
                                pos, k = end, k + 1
                                continue
                        elif line_hash(view[pos:end]) == phashes[k]:
                            row, msi = prev.rows[k], prev.msi[k]
                            if row is not None:
                                rows.append(row)
                            has_msi = has_msi or msi
                            memo.add(end - pos, row, msi, shape, fresh=False)
                            hashes.append(phashes[k])
                            pos, k = end, k + 1
                            continue
                    end = buf.find(b"\n", pos, stop) + 1 or stop
                    h = line_hash(view[pos:end])
                else:
                    end = buf.find(b"\n", pos, stop) + 1 or stop
                line = buf[pos:end]
                parsed = _parse_line(line, lanes, known)
                if parsed is None:
                    has_msi = has_msi or b"MSI" in line.partition(b"\0")[0]
                    break
                row, msi, shape = parsed
                has_msi = has_msi or msi
                if row is not None:
                    i = where.get(row.irq)
                    if i != k:
                        same = False  # a new IRQ, or old lines skipped
                    if i is not None:
                        k = i
                    rows.append(row)
                    changed.append(row)
                    if nold and hashes is not None and shape is not None and line[-1] == 10:
                        # changed since the last scan: which cell, if one?
                        shape, cells, split = _one_cell_to_follow(line, shape, lanes, pcells.get(k))
                        if split is None:
                            if cells is not None:
                                memo.cells[len(memo.lens)] = cells  # found next time, maybe
                        else:
                            lv = memoryview(line)
                            h = line_hash(lv[:split]) ^ line_hash(lv[split + _CELL:])
                k += 1
                if line[-1] == 10:
                    if not keep and shape is not None and shape[3] < 0:
                        shape = None  # in a hashed memo, a shape only serves to follow a cell
                    memo.add(len(line), row, msi, shape)
                    if hashes is not None:
                        hashes.append(h)
                pos = end
            else:
                if keep and sum(map(len, kept)) > self.memo_limit:
                    keep = False  # too big to keep: read on without it (at most 9 chunks summed)
                if not keep and not keep_text:
                    kept.clear()
                continue
            break  # the stop row
        runs.close()
        if keep_text:
            for _ in chunks:  # the rest of the file, for the snapshot
                pass
        close = getattr(source, "close", None)
        if close is not None:
            close()  # done reading (irqbalance closes the file here too)
        if keep_text or len(kept) == 1:
            data = kept[0] if len(kept) == 1 else b"".join(kept)
        else:
            data = bytearray().join(kept)  # kept as the memo, later a read buffer (:meth:`buffer`)
        if k != nold:
            same = False  # old lines left over: IRQs vanished
        self.changed = tuple(changed) if same else None
        memo.head, memo.ncells = head, lanes.n if lanes else 0
        size = sum(sizes)  # a file that shrank is read whole next time, then kept
        if keep and size <= self.memo_limit:
            memo.data, memo.hashes = data, None
            memo.fresh.clear()  # nothing to compare with: no hint for the next scan
            self._keep(memo, size)
        elif hashes is not None:
            self._keep(memo, size, where if same else None)
        else:
            self._keep(None, size)
        return IrqCounts(tuple(rows), has_msi, data if keep_text else None)


def _parse_line(
    line: bytes, lanes: _Lanes | None, known: Container[int] | None
) -> tuple[IrqCount | None, bool, _Shape | None] | None:
    """(row or None if skipped, "MSI" in it, shape) for one line; None for the stop row."""
    if b"\0" in line:
        line = line.partition(b"\0")[0]  # a C string ends there
        if _ROW_START.match(line) is None:
            return None
        return _row(line), b"MSI" in line, None
    label = _ROW_START.match(line)
    if label is None:
        return None
    parsed = _fast_row(line, label, lanes)
    if parsed is None:
        return None, b"MSI" in line, None
    irq, total, ncols, msi, shape = parsed
    keep = known is None or irq not in known
    return IrqCount(irq, total, ncols, line if keep else None), msi, shape


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
