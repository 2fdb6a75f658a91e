"""Fuzzing the /proc parsers.

* The fast paths (fixed-stride cell sums, positional row reuse) agree with the plain
  C-rule reader :func:`reference_irq_counts` on kernel-formatted files, on mutated
  ones, and across a scanner's successive scans.
* On arbitrary bytes no parser raises anything but its own ParseError (and the
  balancer-side readers never raise at all).
"""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from pyirqbalance.kernel.cmdline import parse_cmdline
from pyirqbalance.kernel.procinterrupts import (
    IrqCountScanner,
    ParseError,
    parse_interrupts,
    parse_irq_counts,
    reference_irq_counts,
)
from pyirqbalance.kernel.procstat import ParseError as StatParseError
from pyirqbalance.kernel.procstat import parse_irq_jiffies, parse_stat

count = st.one_of(st.just(0), st.just(0), st.integers(0, 99), st.integers(0, 2**32 - 1))
chips = st.sampled_from(["IO-APIC", "PCI-MSIX-0000:00:04.0", "GICv3", "IR-PCI-MSI", "x"])


@st.composite
def kernel_files(draw):
    """/proc/interrupts as show_interrupts prints it, with a few named rows after."""
    ncpu = draw(st.integers(1, 40))
    irqs = sorted(draw(st.sets(st.integers(0, 20000), max_size=12)))
    prec = max(3, len(str(max(irqs) + 1)) if irqs else 3)
    # the kernel's printf formats: "CPU%-8d", " %10u", "%*d:" ... (f-string equivalents)
    out = [" " * (prec + 8) + "".join(f"CPU{c:<8d}" for c in range(ncpu)) + "\n"]
    for irq in irqs:
        cells = "".join(f" {draw(count):10d}" for _ in range(ncpu))
        chip, hwirq = draw(chips), draw(st.integers(0, 999))
        trigger = draw(st.sampled_from(["edge", "fasteoi"]))
        name = draw(st.sampled_from(["eth0", "nvme0q1"]))
        out.append(f"{irq:{prec}d}:{cells} {chip:>8s} {hwirq:{prec}d}-{trigger:<8s}  {name}\n")
    out.append(f"{'NMI':>{prec}s}:{f' {0:10d}' * ncpu}   Non-maskable interrupts\n")
    out.append(f"{'ERR':>{prec}s}: {0:10d}\n")
    return "".join(out).encode()


noise = st.sampled_from(list(b" \t\n:0123456789-+MSIx\x00\x0b"))


_KERNEL_FILES = kernel_files()


@st.composite
def mutated(draw, base=_KERNEL_FILES):
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 6))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["replace", "insert", "delete", "widen"]))
        if action == "replace":
            data[i] = draw(noise)
        elif action == "insert":
            data.insert(i, draw(noise))
        elif action == "delete":
            del data[i]
        else:  # a count grown past its column: "1234567890" -> "12345678901"
            data[i:i] = b"9" * draw(st.integers(1, 12))
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(kernel_files())
def test_kernel_formatted_fast_equals_reference(data):
    fast = parse_irq_counts(data)
    assert fast == reference_irq_counts(data)
    assert all(r.ncols == data.split(b"\n", 1)[0].count(b"CPU") for r in fast.rows)


@settings(max_examples=600, deadline=None)
@given(mutated())
def test_mutated_fast_equals_reference(data):
    assert parse_irq_counts(data) == reference_irq_counts(data)


@settings(max_examples=200, deadline=None)
@given(st.lists(mutated(), min_size=2, max_size=5))
def test_scanner_sequence_equals_reference(files):
    scanner = IrqCountScanner()
    for data in files:
        assert scanner.scan(data) == reference_irq_counts(data)


@settings(max_examples=200, deadline=None)
@given(kernel_files(), st.data())
def test_scanner_small_edits_between_passes(data, draws):
    scanner = IrqCountScanner()
    scanner.scan(data)
    lines = data.split(b"\n")
    for _ in range(3):
        k = draws.draw(st.integers(0, len(lines) - 1))
        lines[k] = draws.draw(st.sampled_from([b"", lines[k] + b" 5", lines[k][:-3], lines[k]]))
        edited = b"\n".join(lines)
        assert scanner.scan(edited) == reference_irq_counts(edited)


@settings(max_examples=300, deadline=None)
@given(kernel_files(), st.data(), st.sampled_from(["kept", "hashed"]), st.booleans())
def test_scanner_changed_rows_are_exactly_the_difference(data, draws, mode, with_lines):
    """When the scanner says which rows changed, every other row is as before.

    kept: the file is small enough to compare with the last one; hashed: it is
    streamed in pieces and its lines' hashes compared. with_lines: every row
    keeps its line (else none does: the caller knows every IRQ).
    """
    scanner = IrqCountScanner(memo_limit=1 << 20 if mode == "kept" else 0)
    known = None if with_lines else _Everything()

    def reference(data):
        rows = reference_irq_counts(data).rows
        return rows if with_lines else tuple(r._replace(raw=None) for r in rows)

    def scan(data):
        if mode == "kept":
            return scanner.scan(data, known)
        return scanner.scan_chunks(
            _split(data, draws.draw(st.lists(st.integers(0, len(data)), max_size=4))), known
        )

    scan(data)
    before = reference(data)
    lines = data.split(b"\n")
    for _ in range(3):
        k = draws.draw(st.integers(1, len(lines) - 1))
        lines[k] = draws.draw(st.sampled_from([
            lines[k].replace(b" 0 ", b" 7 ", 1), lines[k] + b" 5", lines[k][:-3], b"", lines[k]]))
        edited = b"\n".join(lines)
        counts = scan(edited)
        after = reference(edited)
        assert counts.rows == after
        if scanner.changed is not None:
            assert [r.irq for r in after] == [r.irq for r in before]
            changed = {r.irq: r for r in scanner.changed}
            for old, new in zip(before, after):
                assert changed.get(new.irq, old) == new
        before = after


class _Everything:
    def __contains__(self, item) -> bool:
        return True


def _render(counts: list[list[int]], tails: list[bytes]) -> bytes:
    """show_interrupts' lines for rows of counts (IRQ i+1), before the NMI row."""
    ncpu = len(counts[0])
    out = [b"     " + b"".join(b"CPU%-8d" % c for c in range(ncpu)) + b"\n"]
    for irq, (cells, tail) in enumerate(zip(counts, tails), 1):
        out.append(b"%3d:" % irq + b"".join(b" %10u" % c for c in cells) + tail)
    out.append(b"NMI:" + b" %10u" % 0 * ncpu + b"   Non-maskable interrupts\n")
    return b"".join(out)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 40), st.integers(1, 8), st.data(), st.sampled_from(["kept", "hashed"]))
def test_scanner_firing_cells_equal_reference(ncpu, nirq, draws, mode):
    """Passes where each IRQ fires on one CPU (the one it fired on before, mostly),
    on several, on none, or where a cell is not what the kernel prints: the
    scanner, which reads only the cell that changed last time when the rest of
    the line is as before (kept: compared with the last file; hashed: streamed in
    pieces, the rest's hash compared), reads every pass as the C rules do."""
    scanner = IrqCountScanner(memo_limit=1 << 20 if mode == "kept" else 0)

    def scan(text):
        if mode == "kept":
            return scanner.scan(text)
        cuts = draws.draw(st.lists(st.integers(0, len(text)), max_size=3))
        return scanner.scan_chunks(iter(_split(text, cuts)))

    counts = [[draws.draw(count) for _ in range(ncpu)] for _ in range(nirq)]
    tails = [b"  IR-PCI-MSI %d-edge  eth0\n" % i for i in range(nirq)]
    hot = [draws.draw(st.integers(0, ncpu - 1)) for _ in range(nirq)]
    for _ in range(6):
        data = _render(counts, tails)
        for i in range(nirq):
            action = draws.draw(
                st.sampled_from(["same", "same", "same", "move", "two", "none", "wrap"]))
            if action == "move":
                hot[i] = draws.draw(st.integers(0, ncpu - 1))
            if action != "none":
                counts[i][hot[i]] = (counts[i][hot[i]] + draws.draw(st.integers(1, 10**6))) % 2**32
            if action == "two":
                other = draws.draw(st.integers(0, ncpu - 1))
                counts[i][other] = (counts[i][other] + 1) % 2**32
            if action == "wrap":
                counts[i][hot[i]] = 2**32 - 1
        edited = _render(counts, tails)
        if draws.draw(st.booleans()):  # one byte not what the kernel prints, in a cell
            at = draws.draw(st.integers(data.index(b"\n") + 1, len(edited) - 1))
            edited = edited[:at] + bytes([draws.draw(noise)]) + edited[at + 1:]
        for text in (data, edited):
            assert scan(text) == reference_irq_counts(text)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=300, deadline=None)
@given(st.lists(mutated(), min_size=1, max_size=4), st.data())
def test_scanner_over_any_chunking_equals_reference(files, draws):
    """read(2) may cut the file anywhere: mid-line, mid-number, inside the header."""
    scanner = IrqCountScanner()
    for data in files:
        cuts = draws.draw(st.lists(st.integers(0, 1 << 16), max_size=8))
        chunks = _split(data, cuts)
        counts = scanner.scan_chunks(iter(chunks), keep_text=True)
        assert counts.rows == reference_irq_counts(data).rows
        assert counts.has_msi == reference_irq_counts(data).has_msi
        assert counts.text == data  # the whole file, even past the row irqbalance stops at


@settings(max_examples=300, deadline=None)
@given(st.lists(mutated(), min_size=2, max_size=5), st.data())
def test_hashed_scans_equal_reference(files, draws):
    """The streamed mode (file above the memo limit: lines compared by hash,
    unchanged ones found by their old length) over any chunking: a line that
    gained or lost a newline, grew or shrank is never taken as the old one."""
    scanner = IrqCountScanner(memo_limit=0)
    for data in files:
        chunks = _split(data, draws.draw(st.lists(st.integers(0, 1 << 12), max_size=6)))
        assert scanner.scan_chunks(iter(chunks)) == reference_irq_counts(data)


@settings(max_examples=400, deadline=None)
@given(st.one_of(mutated(), st.binary(max_size=300)))
def test_full_parse_raises_only_parse_error(data):
    try:
        parsed = parse_interrupts(data.decode("utf-8", "surrogateescape"))
    except ParseError:
        return
    assert all(r.total >= 0 for r in parsed.rows)


stat_text = st.one_of(
    st.text(alphabet="cpu0123456789 \n-+intrsofbme\t\x00x", max_size=200),
    st.text(max_size=100),
)


@settings(max_examples=400, deadline=None)
@given(stat_text)
def test_stat_parsers(text):
    try:
        parse_stat(text)
    except StatParseError:
        pass
    rows = parse_irq_jiffies(text)
    assert rows is None or all(raw is None or 0 <= raw < 2**64 for _, raw in rows)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet='isolcpu=nohz_fdman,-:/0123456789 "\t', max_size=80) | st.text(max_size=40))
def test_cmdline_never_raises(text):
    k = parse_cmdline(text)
    assert k.isolcpus >= 0 and k.nohz_full >= 0


def _jiffies_by_the_c_reading(text):
    """parse_irq_jiffies without its kernel-line shortcut: every line read the slow way."""
    from pyirqbalance.kernel import procstat

    saved = procstat._KERNEL_LINE
    procstat._KERNEL_LINE = re.compile(r"(?!)")  # matches nothing
    try:
        return procstat.parse_irq_jiffies(text)
    finally:
        procstat._KERNEL_LINE = saved


kernel_stat_line = st.builds(
    lambda cpu, nums, sep, tail: f"cpu{cpu}" + "".join(f"{sep}{n}" for n in nums) + tail,
    st.one_of(st.integers(0, 5000), st.integers(0, 10**12), st.text("0123456789+-", max_size=12)),
    st.lists(
        st.one_of(
            st.integers(0, 10**6),
            st.integers(0, 2**66),
            st.sampled_from(
                ["0007", 10**19 - 1, 10**19, 2**64 - 1, 2**64, 10**20 - 1, "0" * 19 + "5"]
            ),
        ),
        min_size=5,
        max_size=11,
    ),
    st.sampled_from([" ", "  ", "\t", " +", " -"]),
    st.sampled_from(["", " ", "\0 9", " \0", "x", "\t1"]),
)


@settings(max_examples=600, deadline=None)
@given(st.lists(kernel_stat_line, max_size=6), st.sampled_from(["", "\n", "intr 1\n"]))
def test_jiffies_shortcut_reads_like_c(lines, end):
    text = "cpu  1 2 3\n" + "\n".join(lines) + ("\n" if lines else "") + end
    assert parse_irq_jiffies(text) == _jiffies_by_the_c_reading(text)
