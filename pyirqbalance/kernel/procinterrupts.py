"""/proc/interrupts (kernel/irq/proc.c ``show_interrupts``): the full parse.

:func:`parse_interrupts` reads every row -- per-CPU counts, chip, hwirq,
trigger and action names -- for people, the history store and the API. It
handles the formats of the real captures under tests/fixtures/proc: pre-4.3
``IO-APIC-edge``, ``IO-APIC 2-edge``, 6.x ``PCI-MSIX-0000:00:04.0 1-edge``,
arm ``GICv3 27 Level``, s390x and old ARM rows with a chip but no hwirq,
ancient ARM rows with no chip at all, and named rows (``LOC``, ``NMI``,
``IPI0:2768808080`` with no space after the colon).

The balancer reads the same file differently, with irqbalance's exact rules
and only each row's total: :mod:`pyirqbalance.kernel.irqcounts_ref` (the
plain C reading) and :mod:`pyirqbalance.kernel.scanner` (the same, fast and
incremental). Their names are importable from here too.
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import ParseError
from .irqcounts_ref import IrqCount, IrqCounts, reference_irq_counts
from .scanner import MEMO_LIMIT, IrqCountScanner, parse_irq_counts, read_irq_counts
from .sysroot import SysRoot

__all__ = [
    "MEMO_LIMIT",
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
    ["edge", "level", "fasteoi", "simple", "percpu", "percpu_devid", "untracked", "bad",
     "event", "virq", "ipi"]
)
_LEVELS = ("Level", "Edge")  # CONFIG_GENERIC_IRQ_SHOW_LEVEL (arm, arm64)


def _is_number(token: str) -> bool:
    return token.isascii() and token.isdigit()


#: A count printed with more digits than this is no counter's value (a 64-bit
#: one has 20): it reads as :data:`OUT_OF_RANGE` rather than being converted
#: (CPython refuses ``int()`` of more than 4300 digits, and it costs time).
MAX_COUNT_DIGITS = 40
#: What such a count reads as: beyond every counter width, so the history
#: store leaves it out as it does any value that is not a count.
OUT_OF_RANGE = 10**MAX_COUNT_DIGITS


def _count(token: str) -> int:
    return int(token) if len(token) <= MAX_COUNT_DIGITS else OUT_OF_RANGE


def _split_counts(body: str, limit: int | None) -> tuple[tuple[int, ...], str, int]:
    """Leading counts of a row body, the text after them, and the blank gap between."""
    tokens = body.split(None, limit) if limit is not None else body.split()
    k = len(tokens) if limit is None else min(limit, len(tokens))
    if k and not _is_number("".join(tokens[:k])):  # usually all of them are numbers
        k = 0
        while _is_number(tokens[k]):
            k += 1
    counts = tuple(map(_count, tokens[:k]))
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
    tells the two apart (``eth0`` after 3 blanks cannot be a chip). A
    pre-4.3 ``chip-flow`` token (``IR-PCI-MSI-edge``) is a chip at any spacing:
    hand-aligned copies of the file keep it but not the kernel's blanks.
    """
    fits = sum(1 for tok, gap in samples
               if gap - max(0, 8 - len(tok)) in (1, 2) or _chip_flow(tok))
    return 2 * fits >= len(samples)


def _chip_flow(token: str) -> bool:
    base, dash, flow = token.rpartition("-")
    return bool(dash and base and flow in _FLOWS)


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
        if _is_number(label) and len(label) > MAX_COUNT_DIGITS:
            raise ParseError("IRQ number out of range", path=_PATH, lineno=lineno,
                             line=line[:80])
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
