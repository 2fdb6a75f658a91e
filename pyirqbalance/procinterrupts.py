"""/proc/interrupts (kernel/irq/proc.c ``show_interrupts``).

Two readers for two consumers:

* :func:`parse_interrupts` -- every row, per-CPU counts, chip, hwirq, trigger
  and action names, for people, the history store and the API. It handles
  every format seen in the captures under tests/fixtures/proc: old
  ``IO-APIC-edge``, ``IO-APIC 2-edge``, 6.x ``PCI-MSIX-0000:00:04.0 1-edge``,
  arm64 ``GICv3 27 Level``, s390x rows without chip columns, and named rows
  (``LOC``, ``NMI``, ``IPI0:2768808080`` with no space after the colon).
* :func:`parse_irq_counts` / :class:`IrqCountScanner` -- the balancer's hot
  path with irqbalance's exact rules: the header is skipped, reading stops at
  the first row that does not start with a digit, and a count is a column only
  when followed by a space, a tab or the end of the string (a count directly
  followed by the newline is *not* a column). Only each row's total is kept,
  and the scanner re-parses only rows whose bytes changed since its last scan.
"""

from __future__ import annotations

from dataclasses import dataclass

from .sysroot import SysRoot

__all__ = [
    "ParseError",
    "InterruptRow",
    "Interrupts",
    "parse_interrupts",
    "read_interrupts",
    "IrqCount",
    "IrqCounts",
    "parse_irq_counts",
    "IrqCountScanner",
    "read_irq_counts",
]

_U64 = (1 << 64) - 1
_TRIGGERS = ("edge", "fasteoi", "level", "simple", "percpu", "Level", "Edge")


class ParseError(ValueError):
    """Text that is not /proc/interrupts; carries the line number and line."""

    def __init__(self, message: str, lineno: int = 0, line: str = "") -> None:
        super().__init__(f"/proc/interrupts line {lineno}: {message}: {line.rstrip()!r}"
                         if lineno else f"/proc/interrupts: {message}")
        self.lineno = lineno
        self.line = line


# --------------------------------------------------------------------------
# full parse
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InterruptRow:
    """One row: a numbered IRQ or a named per-CPU counter (LOC, NMI, IPI0 ...)."""

    label: str
    irq: int | None
    counts: tuple[int, ...]
    chip: str = ""
    hwirq: str = ""
    trigger: str = ""
    #: Action (device) names of a numbered IRQ, or the description of a named row.
    actions: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True, slots=True)
class Interrupts:
    """The whole file: CPU numbers from the header, rows in file order."""

    cpus: tuple[int, ...]
    rows: tuple[InterruptRow, ...]

    def by_irq(self) -> dict[int, InterruptRow]:
        return {r.irq: r for r in self.rows if r.irq is not None}

    def per_cpu(self, row: InterruptRow) -> dict[int, int]:
        """``{cpu number: count}`` for a row (header order, so offline gaps are right)."""
        return dict(zip(self.cpus, row.counts))


def _split_description(rest: str) -> tuple[str, str, str, str]:
    """Chip, hwirq, trigger and actions from what follows a numbered row's counts."""
    tokens = rest.split(None, 3)
    if not tokens:
        return "", "", "", ""
    chip = tokens[0]
    if len(tokens) >= 2:
        hw, dash, trig = tokens[1].partition("-")
        if dash and hw.isdigit() and trig:
            # "IO-APIC   2-edge   timer", "PCI-MSIX-0000:00:04.0   1-edge   virtio"
            return chip, hw, trig, rest.split(None, 2)[2].strip() if len(tokens) > 2 else ""
        if tokens[1].isdigit() and len(tokens) >= 3 and tokens[2] in ("Level", "Edge"):
            # arm64 CONFIG_GENERIC_IRQ_SHOW_LEVEL: "GICv3   27 Level   arch_timer"
            return chip, tokens[1], tokens[2], tokens[3].strip() if len(tokens) > 3 else ""
        if tokens[1].isdigit():
            # "GIC 29 twd" (no trigger column) or "intel-gpio 87 rt5682s"
            return chip, tokens[1], "", rest.split(None, 2)[2].strip() if len(tokens) > 2 else ""
    base, dash, trig = chip.rpartition("-")
    if dash and trig in _TRIGGERS:
        # pre-4.3 kernels: "IO-APIC-edge   timer", "PCI-MSI-edge   eth0"
        return base, "", trig, rest.split(None, 1)[1].strip() if len(tokens) > 1 else ""
    return chip, "", "", rest.split(None, 1)[1].strip() if len(tokens) > 1 else ""


def _parse_header(line: str, lineno: int) -> tuple[int, ...]:
    cpus = []
    for token in line.split():
        if not token.startswith("CPU") or not token[3:].isdigit():
            raise ParseError("header must list CPUn columns", lineno, line)
        cpus.append(int(token[3:]))
    return tuple(cpus)


def parse_interrupts(text: str) -> Interrupts:
    """Parse the whole file. Raises :class:`ParseError` for text of another shape."""
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ParseError("empty file or no header line")
    cpus = _parse_header(lines[0], 1)
    ncpu = len(cpus)
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue  # blank and whitespace-only lines occur in real captures
        label, colon, body = line.partition(":")
        label = label.strip()
        if not colon or not label or " " in label:
            raise ParseError("expected 'LABEL: counts'", lineno, line)
        tokens = body.split()
        n = 0
        while n < len(tokens) and n < ncpu and tokens[n].isdigit():
            n += 1
        counts = tuple(int(t) for t in tokens[:n])
        rest = body
        for _ in range(n):  # cut the counts off, keep the description's spacing
            rest = rest.lstrip()
            rest = rest[rest.find(" ") if " " in rest else len(rest):]
        rest = rest.strip()
        if label.isdigit():
            chip, hwirq, trigger, actions = _split_description(rest)
            rows.append(InterruptRow(label, int(label), counts, chip, hwirq, trigger, actions))
        else:
            rows.append(InterruptRow(label, None, counts, actions=rest))
    return Interrupts(cpus, tuple(rows))


def read_interrupts(root: SysRoot) -> Interrupts:
    """Read and parse /proc/interrupts (raises KernelReadError or ParseError)."""
    return parse_interrupts(root.read_text(root.proc("interrupts")))


# --------------------------------------------------------------------------
# the balancer's per-IRQ totals
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IrqCount:
    """A numbered row as irqbalance sees it: total over its counted columns."""

    irq: int
    total: int
    ncols: int
    #: The raw line including its newline (classification of non-PCI IRQs).
    line: bytes


@dataclass(frozen=True, slots=True)
class IrqCounts:
    rows: tuple[IrqCount, ...]
    #: "MSI" seen on a line after the header (irqbalance's kernel-too-old warning).
    has_msi: bool


_WS = b" \t\n\v\f\r"
_DIGITS = b"0123456789"


def _strtoull_columns(body: bytes) -> tuple[int, int]:
    """irqbalance's column loop, exactly: ``strtoull`` then "followed by ' ', '\\t' or end"."""
    total = ncols = 0
    i, n = 0, len(body)
    while True:
        j = i
        while j < n and body[j] in _WS:
            j += 1
        neg = False
        if j < n and body[j] in b"+-":
            neg = body[j] == 0x2D
            j += 1
        k = j
        while k < n and body[k] in _DIGITS:
            k += 1
        if k == j:
            break  # no number: end of the counts
        if k < n and body[k] not in b" \t":
            break  # "123\n", "48059000.gpio": not a column
        value = min(int(body[j:k]), _U64)  # strtoull saturates at ULLONG_MAX
        total = (total + ((-value) & _U64 if neg else value)) & _U64
        ncols += 1
        i = k
    return total, ncols


_CELL = 11  # the kernel prints each count as " %10u"
#: digits -> "d", space -> " ", anything else -> "x"
_SHAPE = bytes(100 if 48 <= c <= 57 else 32 if c == 32 else 120 for c in range(256))
#: a digit in the tens place means the cell is at least 10
_TENS = bytes(1 if 48 <= c <= 57 else 0 for c in range(256))
#: a units digit other than 0 means the cell is not 0
_UNITS = bytes(1 if 49 <= c <= 57 else 0 for c in range(256))


def _fixed_stride_total(body: bytes, n: int) -> int | None:
    """Sum of ``n`` kernel-printed cells at the start of ``body``, or None.

    None means "not exactly that shape": a separator that is not a space, a
    character that is neither digit nor space, a count that is not
    right-aligned (a digit followed by a space inside a cell), an empty cell,
    or a last count not followed by a space, a tab or the end. The caller
    then uses the exact tokenizing loop.

    A valid row is checked and summed with a few C-level operations on whole
    columns of cells; only the non-zero cells -- a handful per row on big
    machines -- are converted one by one.
    """
    end = _CELL * n
    if n == 0 or len(body) < end or body[end:end + 1] not in (b" ", b"\t", b""):
        return None
    seg = body[:end]
    shape = seg.translate(_SHAPE)
    if (
        shape[0::_CELL] != _blank(n)                 # separators
        or b"x" in shape                             # only digits and spaces
        or b" " in shape[_CELL - 1::_CELL]           # every cell ends in a digit
        or shape.count(b"d ") != n - 1               # ... and has no inner gap
    ):
        return None
    nonzero = int.from_bytes(seg[_CELL - 2::_CELL].translate(_TENS), "big") | int.from_bytes(
        seg[_CELL - 1::_CELL].translate(_UNITS), "big")
    total = 0
    while nonzero:
        top = nonzero.bit_length() - 1
        nonzero ^= 1 << top
        cell = n - 1 - top // 8
        total += int(seg[_CELL * cell + 1:_CELL * cell + _CELL])
    return total


_BLANKS: dict[int, bytes] = {}


def _blank(n: int) -> bytes:
    blank = _BLANKS.get(n)
    if blank is None:
        blank = _BLANKS[n] = b" " * n
    return blank


def _row_counts(body: bytes, ncols_hint: int = 0) -> tuple[int, int]:
    """Total and column count of one row body (what follows the colon)."""
    if ncols_hint:
        total = _fixed_stride_total(body, ncols_hint)
        if total is not None:
            # irqbalance keeps reading numbers after the cells (an unusual row
            # may have more); the remainder normally starts with the chip name.
            more, extra = _strtoull_columns(body[_CELL * ncols_hint:])
            return (total + more) & _U64, ncols_hint + extra
    return _strtoull_columns(body)


def _leading_int(prefix: bytes) -> int:
    s = prefix.lstrip(b" \t")
    k = 0
    while k < len(s) and s[k] in _DIGITS:
        k += 1
    return int(s[:k])


class IrqCountScanner:
    """Per-IRQ totals with irqbalance's rules, re-parsing only changed rows."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[bytes, IrqCount] = {}

    def scan(self, data: bytes) -> IrqCounts:
        cache = self._cache
        fresh: dict[bytes, IrqCount] = {}
        rows = []
        has_msi = False
        lines = data.split(b"\n")
        last = len(lines) - 1
        ncpu = len(lines[0].split()) if lines else 0
        for idx in range(1, len(lines)):
            line = lines[idx]
            if idx < last:
                line += b"\n"  # irqbalance reads lines with getline: newline kept
            elif not line:
                break  # the file ended with a newline
            if not has_msi and b"MSI" in line:
                has_msi = True
            first = line.lstrip(b" \t")[:1]
            if not first.isdigit():
                break  # NMI:, LOC:, ... and everything after them is never seen
            row = cache.get(line)
            if row is None:
                colon = line.find(b":")
                if colon < 0:
                    continue
                total, ncols = _row_counts(line[colon + 1:], ncpu)
                row = IrqCount(_leading_int(line[:colon]), total, ncols, line)
            fresh[line] = row
            rows.append(row)
        self._cache = fresh
        return IrqCounts(tuple(rows), has_msi)


def parse_irq_counts(data: bytes) -> IrqCounts:
    """One-off scan (the IRQ collector at a database build)."""
    return IrqCountScanner().scan(data)


def read_irq_counts(root: SysRoot, scanner: IrqCountScanner | None = None) -> IrqCounts | None:
    """Scan /proc/interrupts, or None when it cannot be read."""
    try:
        data = root.read_bytes(root.proc("interrupts"))
    except OSError:
        return None
    return (scanner or IrqCountScanner()).scan(data)
