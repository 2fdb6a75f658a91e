"""pyirqbalance.kernel.procinterrupts on the real captures and on irqbalance's rules.

Expected values were read off the captured files (tests/fixtures/proc, provenance in
tests/fixtures/SOURCES.md): CPU columns, the numbered rows irqbalance sees before the
first named row, whether "MSI" appears up to that row (counted with awk, not with this
code), and chosen rows copied from the text. The hand-made inputs test the C rules of
irqbalance 1.9 procinterrupts.c (spec sections 2.2, 11.5-11.6, 12.7).
"""

from __future__ import annotations

import bz2
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyirqbalance.kernel.procinterrupts import (
    InterruptRow,
    IrqCountScanner,
    ParseError,
    parse_interrupts,
    parse_irq_counts,
    read_interrupts,
    read_irq_counts,
    reference_irq_counts,
)
from pyirqbalance.kernel.sysroot import SysRoot

PROC = Path(__file__).parent.parent / "fixtures" / "proc"
U64 = 2**64 - 1

#: file -> (CPU columns in the header, numbered rows irqbalance reads, "MSI" seen)
SAMPLES = {
    "CRYP70N1CZ-syslogs/interrupts": (4, 32, True),
    "GoCleverInsignia5-i5_info/proc/interrupts": (1, 60, False),
    "Khandevops1-linux/proc/interrupts": (1, 26, True),
    "RandolphWang1-D2000/proc/interrupts": (1, 9, False),
    "aepkolol-innofirmware/proc/interrupts": (2, 19, False),
    "apporator-zteorange/proc/interrupts": (2, 15, False),
    "csm-csci442-proc-snapshot/interrupts": (8, 14, True),
    "izumihanako-rBench-an-interference-generator/interrupts.txt": (40, 229, True),
    "jds2001-coreos-sosreport-master1/proc/interrupts": (2, 2, False),
    "justin-e-dong-intersched/at-8c359a3/interrupts.txt": (48, 112, True),
    "justin-e-dong-intersched/at-d0b048a/interrupts.txt": (8, 38, True),
    "performancecopilot-pcp/qa/linux/interrupts-1152cpu-x86_64.bz2": (1152, 1034, True),
    "performancecopilot-pcp/qa/linux/interrupts-16cpu-s390x": (16, 0, False),
    "performancecopilot-pcp/qa/linux/interrupts-1cpu-i686": (1, 11, True),
    "performancecopilot-pcp/qa/linux/interrupts-2cpu-s390x": (2, 0, False),
    "performancecopilot-pcp/qa/linux/interrupts-8cpu-x86_64": (8, 19, True),
    "prometheus-node_exporter/proc/interrupts": (4, 15, True),
    "prometheus-node_exporter/proc/interrupts_aarch64": (8, 51, True),
    "prometheus-procfs/proc/interrupts": (4, 28, True),
    "purplewall1206-kernel-measure/interrupts.txt": (16, 27, True),
    "sysstat/tests/root1/proc/interrupts": (9, 21, True),
    "sysstat/tests/root2/proc/interrupts": (8, 21, True),
    "sysstat/tests/root3/proc/interrupts": (7, 21, True),
    "sysstat/tests/root4/proc/interrupts": (8, 21, True),
    "sysstat/tests/root5/proc/interrupts": (9, 21, True),
    "sysstat/tests/root6/proc/interrupts": (10, 21, True),
    "sysstat/tests/root6b/proc/interrupts": (10, 21, True),
    "sysstat/tests/root7/proc/interrupts": (10, 21, True),
    "this-vm/proc/interrupts": (2, 19, True),
    "this-vm/proc/interrupts.after-10s": (2, 19, True),
    "twaite-442proj2/proc/interrupts": (8, 14, True),
    "valmikroy-rubycli-linux_rx_tune/spec/fixtures/proc/interrupts": (40, 109, True),
    "valmikroy-rubycli-linux_rx_tune/spec/fixtures/proc_interrupts_10G.txt": (40, 109, True),
    "valmikroy-rubycli-linux_rx_tune/spec/fixtures/proc_interrupts_25G.txt": (32, 104, True),
    "vivianchen04-computer-scurity/proc/interrupts": (2, 15, True),
}


def load(name: str) -> bytes:
    data = (PROC / name).read_bytes()
    return bz2.decompress(data) if name.endswith(".bz2") else data


def full(name: str):
    return parse_interrupts(load(name).decode())


def test_every_capture_is_listed():
    found = {
        str(p.relative_to(PROC)) for p in PROC.rglob("*interrupts*") if p.is_file()
    }
    assert found == set(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_real_capture(name):
    ncpu, nrows, msi = SAMPLES[name]
    data = load(name)
    parsed = parse_interrupts(data.decode())
    assert len(parsed.cpus) == ncpu
    counts = parse_irq_counts(data)
    assert len(counts.rows) == nrows
    assert counts.has_msi is msi
    assert counts == reference_irq_counts(data)
    # the balancer's totals agree with the full parse, row by row
    by_irq = parsed.by_irq()
    for row in counts.rows:
        assert row.total == by_irq[row.irq].total
    scanner = IrqCountScanner()
    assert scanner.scan(data) == counts
    assert scanner.scan(data) == counts  # everything reused


@pytest.mark.parametrize(
    "name",
    [n for n in sorted(SAMPLES) if "sysstat" not in n and "GoClever" not in n],
)
def test_every_numbered_row_has_one_column_per_cpu(name):
    """On an unedited capture each row counts exactly the header's CPUs (no rescan)."""
    ncpu = SAMPLES[name][0]
    assert {r.ncols for r in parse_irq_counts(load(name)).rows} <= {ncpu}


def row(name: str, label: str) -> InterruptRow:
    return next(r for r in full(name).rows if r.label == label)


@pytest.mark.parametrize(
    "name, label, counts, chip, hwirq, trigger, actions",
    [
        # 6.x per-device MSI domain
        ("this-vm/proc/interrupts", "24", (1, 0), "IO-APIC", "5", "edge", "ACPI:Ged"),
        ("CRYP70N1CZ-syslogs/interrupts", "129", (23255, 0, 0, 0), "IR-PCI-MSIX-0000:00:14.3",
         "0", "edge", "iwlwifi:default_queue"),
        ("CRYP70N1CZ-syslogs/interrupts", "135", (0, 0, 1, 0), "intel-gpio", "87", "", "rt5682s"),
        # 4.3+ "IO-APIC 2-edge", shared legacy line
        ("vivianchen04-computer-scurity/proc/interrupts", "21", (2882, 0), "IO-APIC", "21",
         "fasteoi", "uhci_hcd:usb3, uhci_hcd:usb5, virtio1, enp0s1"),
        # pre-4.3 "IR-IO-APIC-edge"
        ("twaite-442proj2/proc/interrupts", "0", (5134, 0, 0, 0, 0, 0, 0, 0), "IR-IO-APIC", "",
         "edge", "timer"),
        ("twaite-442proj2/proc/interrupts", "40", (0,) * 8, "DMAR_MSI", "", "edge", "dmar0"),
        # arm64 GICv3 with Level/Edge, counts filling the whole column
        ("prometheus-node_exporter/proc/interrupts_aarch64", "10",
         (3287008667, 3310445093, 3301386305, 3273132897, 3368262064, 3641875466, 3360412019,
          3225020442), "GICv3", "27", "Level", "arch_timer"),
        # ARMv7 GIC
        ("apporator-zteorange/proc/interrupts", "16", (169513, 169502), "GIC", "27", "Edge", "gt"),
        # s390x: chip without hwirq
        ("performancecopilot-pcp/qa/linux/interrupts-16cpu-s390x", "3",
         (6, 4, 43, 44, 13, 22, 37, 26, 64, 55, 11, 29, 20, 15, 10, 7), "PCI-MSI", "", "",
         "mlx5_async@pci:0002:00:00.0"),
        # MediaTek 3.4: chip "-"
        ("GoCleverInsignia5-i5_info/proc/interrupts", "14", (8181,), "-", "", "", "debug-signal"),
        # ancient ARM: no chip column at all
        ("RandolphWang1-D2000/proc/interrupts", "27", (18210,), "", "", "", "sep4020 Timer Tick"),
        ("RandolphWang1-D2000/proc/interrupts", "1", (0,), "", "", "", "4020KEY"),
    ],
)
def test_numbered_rows(name, label, counts, chip, hwirq, trigger, actions):
    r = row(name, label)
    assert (r.irq, r.counts, r.chip, r.hwirq, r.trigger, r.actions) == (
        int(label), counts, chip, hwirq, trigger, actions)
    assert r.total == sum(counts)


def test_named_rows():
    # arm64: no blank between the colon and a count that fills its column
    ipi0 = row("prometheus-node_exporter/proc/interrupts_aarch64", "IPI0")
    assert ipi0.irq is None
    assert ipi0.counts == (2768808080, 2844211768, 2878602432, 2730576120, 2723524623,
                           3349096412, 2717389879, 2154252810)
    assert ipi0.actions == "Rescheduling interrupts"
    # header shows CPU0 only, the IPI rows count all 4 present CPUs
    mtk = full("GoCleverInsignia5-i5_info/proc/interrupts")
    assert mtk.cpus == (0,)
    ipi1 = next(r for r in mtk.rows if r.label == "IPI1")
    assert ipi1.counts == (75373, 107711, 43906, 30716)
    fiq = next(r for r in mtk.rows if r.label == "FIQ")
    assert (fiq.counts, fiq.actions) == ((), "fiq_glue")
    err = row("CRYP70N1CZ-syslogs/interrupts", "ERR")
    assert (err.counts, err.actions) == ((1,), "")


def test_header_gaps_and_blank_lines():
    # sysstat's hotplug edit: CPU6 missing from the header
    assert full("sysstat/tests/root3/proc/interrupts").cpus == (0, 1, 2, 3, 4, 5, 7)
    # a blank line between MIS: and PIN: and a whitespace-only last line are skipped
    labels = [r.label for r in full("prometheus-procfs/proc/interrupts").rows]
    assert labels[labels.index("MIS") + 1] == "PIN"
    assert full("prometheus-node_exporter/proc/interrupts_aarch64").rows[-1].label == "Err"


def test_widest_capture():
    parsed = full("performancecopilot-pcp/qa/linux/interrupts-1152cpu-x86_64.bz2")
    assert parsed.cpus == tuple(range(1152))
    timer = parsed.by_irq()[0]
    assert (timer.counts[0], timer.total) == (844, 844)
    assert (timer.chip, timer.hwirq, timer.trigger, timer.actions) == (
        "IR-IO-APIC", "2", "edge", "timer")
    fdir = parsed.by_irq()[1160]
    assert fdir.chip == "IR-PCI-MSI"
    assert fdir.hwirq == "102242399"
    assert fdir.actions == "i40e-0000:c3:00.3:fdir-TxRx-0"
    assert parsed.per_cpu(timer)[0] == 844


def test_s390x_named_rows_first_hide_every_irq():
    data = load("performancecopilot-pcp/qa/linux/interrupts-16cpu-s390x")
    assert parse_irq_counts(data).rows == ()
    assert len(full("performancecopilot-pcp/qa/linux/interrupts-16cpu-s390x").by_irq()) > 0


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty file"),
        ("\n 0: 1 2\n", "empty file"),
        ("CPU0 CPU1 foo\n", "header"),
        ("           CPU0\n  0:  5  timer\nno colon here\n", "line 3"),
        ("           CPU0\n  0 1:  5\n", "line 2"),
    ],
)
def test_parse_errors(text, message):
    with pytest.raises(ParseError, match=message):
        parse_interrupts(text)


# --------------------------------------------------------------------------
# irqbalance's reading, rule by rule
# --------------------------------------------------------------------------

HEADER = b"           CPU0       CPU1\n"


def counts(body: bytes) -> list[tuple[int, int, int]]:
    rows = parse_irq_counts(HEADER + body)
    assert rows == reference_irq_counts(HEADER + body)
    return [(r.irq, r.total, r.ncols) for r in rows.rows]


def test_kernel_row():
    assert counts(b"  1:          5          7  IO-APIC   1-edge      i8042\n") == [(1, 12, 2)]


def test_count_followed_by_newline_is_not_a_column():
    assert counts(b"  1:          5          7\n") == [(1, 5, 1)]
    assert counts(b"  1:          5          7 \n") == [(1, 12, 2)]
    # end of the file without newline: end of string, a column
    assert counts(b"  1:          5          7") == [(1, 12, 2)]


def test_number_glued_to_text_stops_the_row():
    # arm "48059000.gpio" as a chip name after the counts
    assert counts(b" 20:          1          2  48059000.gpio  3 Edge\n") == [(20, 3, 2)]
    assert counts(b" 20:          1x         2  chip\n") == [(20, 0, 0)]


def test_first_named_row_ends_the_file():
    body = b"  0:  1  2 timer\nNMI:  0  0 Non-maskable\n  5:  3  4 late\n"
    assert counts(body) == [(0, 3, 2)]


def test_header_is_never_read_and_lines_without_colon_are_skipped():
    data = b"  7:  1  1 header-looking\n  0  1  2 no colon\n  3:  4  5 x\n"
    assert [(r.irq, r.total) for r in parse_irq_counts(data).rows] == [(3, 9)]


def test_msi_seen_up_to_the_terminating_line():
    assert parse_irq_counts(HEADER + b"  0:  1  2 x\nMSI:  0  0 y\n").has_msi
    assert parse_irq_counts(HEADER + b"  0:  1  2 MSI\n").has_msi
    assert not parse_irq_counts(HEADER + b"  0:  1  2 x\nNMI: 0 0\nMSI: 1 1\n").has_msi
    assert not parse_irq_counts(b"  PCI-MSI header\n  0:  1  2 x\n").has_msi
    # a line without colon is skipped but still checked
    assert parse_irq_counts(HEADER + b"  0 PCI-MSI\n").has_msi


def test_c_number_conversions():
    # strtoull: sign, saturation; the sum wraps at 2**64
    assert counts(b"  1: -1 2 x\n") == [(1, 1, 2)]
    assert counts(b"  1: 99999999999999999999999 1 x\n") == [(1, 0, 2)]
    assert counts(b"  1: -99999999999999999999999 0 x\n") == [(1, U64, 2)]
    assert counts(b"  1: 18446744073709551615 1 x\n") == [(1, 0, 2)]
    # int number = strtoul(...): 32-bit truncation
    assert counts(b"4294967297: 1 x\n") == [(1, 1, 1)]
    assert counts(b"2147483648: 1 x\n") == [(-2147483648, 1, 1)]
    # tabs separate columns; other blanks before a number are skipped by strtoull
    assert counts(b"  1:\t5\t6\tx\n") == [(1, 11, 2)]
    assert counts(b"  1: \x0b5 6 x\n") == [(1, 11, 2)]


def test_nul_ends_every_string_function():
    assert counts(b"  1:          5          7 x\x00 MSI\n") == [(1, 12, 2)]
    assert not parse_irq_counts(HEADER + b"  1: 5 7 x\x00 MSI\n").has_msi
    assert counts(b"  1:          5\x00         7 x\n") == [(1, 5, 1)]


def test_line_keeps_its_newline_for_classification():
    rows = parse_irq_counts(HEADER + b" 24:  1  0  IO-APIC   5-edge      ACPI:Ged\n").rows
    assert rows[0].line == " 24:  1  0  IO-APIC   5-edge      ACPI:Ged\n"


def test_empty_and_header_only():
    assert parse_irq_counts(b"").rows == ()
    assert parse_irq_counts(HEADER).rows == ()
    assert parse_irq_counts(b"  0: 1 2 x").rows == ()  # one line: only a header


# --------------------------------------------------------------------------
# the scanner across passes
# --------------------------------------------------------------------------


def rows_of(data: bytes):
    return [(r.irq, r.total, r.ncols, r.line) for r in reference_irq_counts(data).rows]


def test_scanner_follows_changes():
    before = load("this-vm/proc/interrupts")
    after = load("this-vm/proc/interrupts.after-10s")
    scanner = IrqCountScanner()
    scanner.scan(before)
    assert scanner.scan(after) == reference_irq_counts(after)
    assert scanner.scan(before) == reference_irq_counts(before)


def test_scanner_irq_added_and_removed():
    lines = load("this-vm/proc/interrupts").split(b"\n")
    scanner = IrqCountScanner()
    scanner.scan(b"\n".join(lines))
    removed = b"\n".join(lines[:3] + lines[5:])
    assert list(rows_of(removed)) == [
        (r.irq, r.total, r.ncols, r.line) for r in scanner.scan(removed).rows]
    new = b" 99:          1          2  IO-APIC   9-edge  new"
    added = b"\n".join([*lines[:3], new, *lines[3:]])
    assert rows_of(added) == [(r.irq, r.total, r.ncols, r.line) for r in scanner.scan(added).rows]
    assert 99 in {r.irq for r in scanner.scan(added).rows}


def test_scanner_unterminated_last_line_that_grows():
    scanner = IrqCountScanner()
    first = HEADER + b"  0: 1 2 x\n  1: 3 4"
    assert [r.total for r in scanner.scan(first).rows] == [3, 7]
    grown = first + b"0 z\n"
    assert [(r.total, r.ncols) for r in scanner.scan(grown).rows] == [(3, 2), (43, 2)]


def test_scanner_with_nul_then_clean_data():
    scanner = IrqCountScanner()
    dirty = HEADER + b"  0: 1 2 x\x00\n  1: 3 4 y\n"
    assert scanner.scan(dirty) == reference_irq_counts(dirty)
    clean = HEADER + b"  0: 1 2 x\n"
    assert scanner.scan(clean) == reference_irq_counts(clean)


def test_scanner_keeps_lines_only_for_unknown_irqs():
    data = load("this-vm/proc/interrupts")
    reference = reference_irq_counts(data).rows
    known = {r.irq for r in reference[1:]}
    rows = IrqCountScanner().scan(data, known=known).rows
    assert [(r.irq, r.total, r.ncols) for r in rows] == [
        (r.irq, r.total, r.ncols) for r in reference]
    assert rows[0].line == reference[0].line  # the one the caller does not know
    assert all(r.raw is None for r in rows[1:])


def test_scanner_memo_only_below_its_limit():
    before = load("this-vm/proc/interrupts")
    after = load("this-vm/proc/interrupts.after-10s")
    small, big = IrqCountScanner(), IrqCountScanner(memo_limit=len(before) // 2)
    for data in (before, before):
        assert small.scan(data) == big.scan(data) == reference_irq_counts(data)
    assert small.changed == ()  # the second scan found every row unchanged
    assert big.changed == ()  # the same, from the lines' hashes: the big file is not kept
    assert big._memo.data == b"" and big._spare is None
    assert small.scan(after) == big.scan(after) == reference_irq_counts(after)
    old_lines = dict(zip(_irqs(before), before.split(b"\n")[1:]))
    moved = [irq for irq, line in zip(_irqs(after), after.split(b"\n")[1:])
             if old_lines[irq] != line]
    assert [r.irq for r in small.changed] == [r.irq for r in big.changed] == moved and moved


_NO_XXHASH = "import sys; sys.modules['xxhash'] = None; "


@pytest.fixture(params=["xxh3", "siphash"])
def hasher(request, monkeypatch):
    """Which line hash the streamed mode uses: XXH3 (the xxhash package, a
    dependency), or the interpreter's when the package cannot be imported."""
    from pyirqbalance.kernel.scanner import streamed

    if request.param == "siphash":
        monkeypatch.setitem(sys.modules, "xxhash", None)  # import xxhash raises ImportError
    streamed.line_hash.cache_clear()
    yield request.param
    streamed.line_hash.cache_clear()


def test_line_hash_is_keyed_and_reads_buffers(hasher):
    from pyirqbalance.kernel.scanner.streamed import line_hash as make_line_hash

    line_hash = make_line_hash()
    data = bytearray(b"  1:          5          0   IO-APIC   1-edge  i8042\n")
    assert line_hash(memoryview(data)) == line_hash(memoryview(bytes(data)))
    assert line_hash(memoryview(data)) != line_hash(memoryview(data)[:-1])
    probe = ("from pyirqbalance.kernel.scanner import streamed as s; "
             "print(s.line_hash()(memoryview(b'x')))")
    if hasher == "siphash":
        probe = _NO_XXHASH + probe
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    runs = {subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           check=True, env=env).stdout for _ in range(3)}
    assert len(runs) == 3  # a different key in every process


def test_big_file_rows_parsed_only_where_lines_changed(monkeypatch, hasher):
    """Streamed (too big to keep): a line hashed as last time is not parsed again."""
    from pyirqbalance.kernel.scanner import streamed

    before = load("this-vm/proc/interrupts")
    after = load("this-vm/proc/interrupts.after-10s")
    scanner = IrqCountScanner(memo_limit=100)
    scanner.scan_chunks([before])
    parsed = []
    real = streamed.parse_line
    monkeypatch.setattr(
        streamed, "parse_line", lambda line, *a: parsed.append(line) or real(line, *a)
    )
    pieces = [after[i:i + 300] for i in range(0, len(after), 300)]
    assert scanner.scan_chunks(pieces) == reference_irq_counts(after)
    old_lines, new_lines = before.split(b"\n")[1:], after.split(b"\n")[1:]
    changed = [line + b"\n" for line in set(new_lines) - set(old_lines)]
    numbered = [line for line in changed if line.lstrip()[:1].isdigit()]
    stop = next(line for line in new_lines if not line.lstrip()[:1].isdigit()) + b"\n"
    # every changed numbered line, and the first named row (where reading stops)
    assert sorted(parsed) == sorted([*numbered, stop])
    assert sorted(r.irq for r in scanner.changed) == sorted(
        int(ln.split(b":")[0]) for ln in numbered)


def test_streamed_small_file_is_remembered():
    data = load("this-vm/proc/interrupts")
    scanner = IrqCountScanner()
    scanner.scan_chunks(data[i:i + 100] for i in range(0, len(data), 100))
    assert scanner.wants_whole
    assert scanner.scan(data) == reference_irq_counts(data)
    assert scanner.changed == ()  # every row matched the streamed scan's


def test_msi_seen_on_a_row_whose_cells_alone_changed():
    """A changed row with the same label and tail as last pass still says "MSI"."""
    cells = b"          0" * 3
    before = HEADER3 + b"  1:" + cells + b" PCI-MSIX-0000:00:04.0   0-edge      eth0\n"
    after = before.replace(b"          0 PCI", b"          1 PCI")
    scanner = IrqCountScanner()
    scanner.scan(before)
    assert scanner.scan(after) == reference_irq_counts(after)
    assert scanner.scan(after).has_msi and reference_irq_counts(after).has_msi


HEADER3 = b"           CPU0       CPU1       CPU2\n"


def _irqs(data: bytes) -> list[int]:
    return [r.irq for r in reference_irq_counts(data).rows]


def test_scanner_stops_reading_at_the_first_named_row():
    data = load("this-vm/proc/interrupts")
    served = []

    def chunks():
        for i in range(0, len(data), 64):
            served.append(i)
            yield data[i:i + 64]

    rows = IrqCountScanner().scan_chunks(chunks()).rows
    assert rows == reference_irq_counts(data).rows
    nmi_end = data.index(b"\n", data.index(b"\nNMI:") + 1) + 1
    # the NMI row is read to its end (like getline), and nothing after it
    assert served[-1] < nmi_end < len(data) - 64


# --------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------


def test_readers(make_tree):
    root = make_tree({"proc/interrupts": load("this-vm/proc/interrupts")})
    assert read_interrupts(root).cpus == (0, 1)
    assert len(read_irq_counts(root).rows) == 19
    scanner = IrqCountScanner()
    assert read_irq_counts(root, scanner) == read_irq_counts(root, scanner)


def test_read_irq_counts_missing(tmp_path):
    assert read_irq_counts(SysRoot(tmp_path)) is None


def test_reading_a_big_file_through_a_fifo(tmp_path):
    """The differential harness serves /proc/interrupts through a FIFO, 64 KiB per read."""
    import os
    import threading

    from pyirqbalance.kernel.sysroot import SysRoot

    fifo = tmp_path / "interrupts"
    os.mkfifo(fifo)
    payload = b"x" * (6 * 1024 * 1024 + 7)  # the size of a 256-CPU, 2048-IRQ file

    def writer():
        with open(fifo, "wb") as f:
            f.write(payload)

    t = threading.Thread(target=writer, daemon=True)  # never keeps a failed run alive
    t.start()
    assert SysRoot.read_bytes(str(fifo)) == payload
    t.join(30)


@pytest.mark.parametrize("start", [0, 1, 4096, 70_000, 1 << 20])
def test_read_into_gives_the_whole_file_whatever_the_buffer(tmp_path, start):
    path = tmp_path / "interrupts"
    for payload in (b"", b"a", bytes(range(256)) * 1000, b"y" * 70_001):
        path.write_bytes(payload)
        buf = bytearray(b"z" * start)
        assert SysRoot.read_into(str(path), buf) is buf
        assert buf == payload


def test_read_into_through_a_fifo(tmp_path):
    import os
    import threading

    fifo = tmp_path / "interrupts"
    os.mkfifo(fifo)
    payload = bytes(range(251)) * 30_000  # 7.5 MB, 64 KiB per read(2)

    def writer():
        with open(fifo, "wb") as f:
            f.write(payload)

    t = threading.Thread(target=writer, daemon=True)  # never keeps a failed run alive
    t.start()
    assert SysRoot.read_into(str(fifo), bytearray(1000)) == payload
    t.join(30)


def test_scanner_buffers_are_never_seen_by_callers(make_tree):
    """Files read into the scanner's two buffers: earlier results keep their bytes."""
    before = load("this-vm/proc/interrupts")
    after = load("this-vm/proc/interrupts.after-10s")
    renamed = after.replace(b"ttyS0", b"ttyS0-renamed")  # a row parsed whole, not just summed
    files = [before, after, before, renamed, after, before[:-40], renamed, before]
    root = make_tree({"proc/interrupts": before})
    path = root.proc("interrupts")
    scanner = IrqCountScanner()
    results = []
    for data in files:
        with open(path, "wb") as f:
            f.write(data)
        results.append(read_irq_counts(root, scanner, keep_text=True))
    for data, got in zip(files, results):
        want = reference_irq_counts(data)
        assert (got.rows, got.has_msi, got.text) == (want.rows, want.has_msi, data)
        assert all(type(r.raw) is bytes for r in got.rows)
        assert type(got.text) is bytes


def test_newline_inside_a_busy_rows_cells_splits_it():
    """A newline in a changed row's blank padding makes two lines, even where the
    row's label and tail are where they were (found by the property tests)."""
    cells = [b"          0"] * 8
    row = b"  0:" + b"".join(cells) + b" PCI-MSIX-0000:00:04.0   0-edge      eth0\n"
    before = HEADER8 + row + b"  1:" + b"".join(cells) + b" IO-APIC   1-edge      ttyS0\n"
    busy = [b" %10d" % (i + 1) for i in range(7)] + [b" \n       45"]  # dense: most cells not 0
    assert len(b"".join(busy)) == len(b"".join(cells))
    rest = before[len(HEADER8) + len(row):]
    after = HEADER8 + row.replace(b"".join(cells), b"".join(busy)) + rest
    scanner = IrqCountScanner()
    scanner.scan(before)
    assert scanner.scan(after) == reference_irq_counts(after)


HEADER8 = b"".join(b"       CPU%d" % i for i in range(8)) + b"\n"


def test_a_big_file_that_shrinks_is_kept_again():
    """Streamed while above the memo limit; once small again, read whole and compared."""
    before = load("this-vm/proc/interrupts")
    scanner = IrqCountScanner(memo_limit=len(before))
    scanner.scan_chunks([before + before[-200:]])  # above the limit: streamed, hashed
    assert not scanner.wants_whole
    scanner.scan_chunks([before])  # the last file was big: streamed again, nothing kept
    assert scanner.wants_whole
    assert scanner.scan(before) == reference_irq_counts(before)  # read whole: kept from now on
    assert scanner.scan(before) == reference_irq_counts(before)
    assert scanner.changed == ()  # compared with the kept file: nothing changed
    assert scanner._memo.hashes is None


def test_rows_that_stop_changing_stop_being_summed():
    """A row that changed last scan is summed first; once it is as before (its line
    kept or not), it goes back to the runs matched with one compare."""
    before = load("this-vm/proc/interrupts")
    after = load("this-vm/proc/interrupts.after-10s")
    for known in (None, set(_irqs(before))):
        scanner = IrqCountScanner()
        scanner.scan(before, known)
        scanner.scan(after, known)
        assert scanner._memo.fresh  # the rows that changed: next scan's first guesses
        assert scanner.scan(after, known).rows == scanner.scan(after, known).rows
        assert scanner._memo.fresh == [] and scanner.changed == ()


def _row8(irq: int, cells: list[bytes], tail: bytes = b" PCI-MSIX-0000:00:04.0   0-edge  eth0\n"):
    assert all(len(c) == 11 for c in cells)
    return b"%3d:" % irq + b"".join(cells) + tail


def test_a_row_firing_on_one_cpu_is_read_from_that_cell():
    """An IRQ that keeps firing on CPU 5: from the third scan on only that cell
    is read (the rest of the line is compared with the last one); every total is
    the C reading, when the IRQ moves to CPU 2 and when CPU 2 and 3 both count."""
    counts = [[0, 9, 0, 0, 0, 100, 0, 0], [3, 0, 0, 0, 0, 0, 0, 0]]
    scanner = IrqCountScanner()

    def scan():
        rows = (_row8(i, [b" %10d" % c for c in row]) for i, row in enumerate(counts))
        data = HEADER8 + b"".join(rows)
        got = scanner.scan(data)
        assert got == reference_irq_counts(data)
        return got.rows[0].total

    assert scan() == 109
    for total in (110, 1109, 2**32 + 8):  # the cell grows to its widest (2**32 - 1)
        counts[0][5] = total - 9
        assert scan() == total
    assert scanner._memo.shapes[0][3:] == (5, 2**32 - 1)  # CPU 5's cell and its count
    counts[0][2] = 7  # moved to CPU 2
    assert scan() == 2**32 + 15
    counts[0][2] += 1
    counts[0][3] += 1  # two cells at once
    assert scan() == 2**32 + 17
    counts[0][3] += 1
    assert scan() == 2**32 + 18


def test_one_cell_path_needs_a_kernel_cell_and_the_rest_as_before():
    """Cells whose numbers add up as C reads them but are not one per cell (a blank
    cell, then one holding two numbers) are summed as such, never taken as the one
    cell that changed; a changed byte outside the firing cell is seen."""
    cells = [b" %10d" % c for c in (0, 0, 0, 0, 0, 50, 0, 0)]
    odd = cells[:1] + [b" " * 11, b"      12 34"] + cells[3:]
    scanner = IrqCountScanner()
    for data in (
        HEADER8 + _row8(0, odd),
        HEADER8 + _row8(0, odd[:2] + [b"      12 35"] + odd[3:]),  # the pair's second number
        HEADER8 + _row8(0, odd[:2] + [b"      12 36"] + odd[3:]),
        HEADER8 + _row8(0, odd[:5] + [b" %10d" % 51] + odd[6:]),  # now only CPU 5 counts
        HEADER8 + _row8(0, odd[:5] + [b" %10d" % 52] + odd[6:]),
        HEADER8 + _row8(0, odd[:5] + [b" %10d" % 53] + odd[6:], b" IR-PCI-MSI 0-edge  eth1\n"),
        HEADER8 + _row8(0, odd[:5] + [b" %9d+" % 54] + odd[6:]),  # not a count: C stops there
        HEADER8 + _row8(0, odd[:1] + [b"  1" + b" " * 8] + odd[2:5] + [b" %10d" % 55] + odd[6:]),
    ):
        assert scanner.scan(data) == reference_irq_counts(data)


@pytest.mark.parametrize("memo_limit", [1 << 20, 0], ids=["kept", "hashed"])
def test_a_cell_whose_bytes_change_but_not_its_count_gives_the_new_line(memo_limit):
    """The followed cell reads 10 as "        010" (a zero where the kernel pads), then
    "         10": same count, same total, but a row that keeps its line keeps the
    line as it is now (found by the property tests)."""
    cells = [b" %10d" % 0] * 8
    scanner = IrqCountScanner(memo_limit=memo_limit)
    for cell in (b"         10", b"        010", b"         10", b"         11"):
        data = HEADER8 + _row8(5, cells[:3] + [cell] + cells[4:])
        got = scanner.scan_chunks([data]) if memo_limit == 0 else scanner.scan(data)
        assert got == reference_irq_counts(data)


def test_hashed_scan_after_the_cpu_count_changed():
    """A row's non-zero cells kept at 8 CPUs (to find its one changed cell), then a
    file with one CPU: the cell indices of the last scan mean nothing there (found
    by the property tests)."""
    cells = [b" %10d" % 0] * 8
    for eight in ([1, 2], [1, 2, 3], [1, 2, 3, 3]):  # cells kept / cell followed / unchanged
        scanner = IrqCountScanner(memo_limit=0)
        files = [HEADER8 + _row8(0, cells[:7] + [b" %10d" % n]) for n in eight]
        files.append(b"       CPU0\n" + _row8(0, [b" %10d" % 0]))  # no non-zero cell left
        for data in files:
            assert scanner.scan_chunks([data]) == reference_irq_counts(data)


# --------------------------------------------------------------------------
# per-CPU columns of the last scan (the balanced placement locates IRQs by them)
# --------------------------------------------------------------------------


def _kernel_file(rows: dict[int, tuple[int, ...]]) -> bytes:
    """A /proc/interrupts as the kernel prints it (" %10u" a column)."""
    ncpu = len(next(iter(rows.values())))
    head = " " * 11 + "".join(f"CPU{c:<8}" for c in range(ncpu)).rstrip() + "\n"
    body = "".join(f"{irq:>3}:" + "".join(f" {v:>10}" for v in counts)
                   + "  IR-PCI-MSIX-0000:03:00.0    0-edge      eth0\n"
                   for irq, counts in rows.items())
    return (head + body + "NMI:" + " 0" * ncpu + "   Non-maskable interrupts\n").encode()


@pytest.mark.parametrize("streamed", [False, True])
def test_scanner_tells_which_columns_rose(streamed):
    # 4 CPUs. First scan: rows read whole -> their non-zero columns (kept mode), nothing known
    # when streamed (hashes only). Second: IRQ 40's column 2 alone rose -> (2, None) (streamed:
    # its non-zero columns, the first parse to compare with); IRQ 41 rose on columns 0 and 3
    # -> its non-zero columns. Third: 40's column 2 again -> (2, None) in both modes.
    first = {40: (5, 0, 7, 0), 41: (1, 0, 0, 2), 42: (0, 9, 0, 0)}
    second = {40: (5, 0, 19, 0), 41: (4, 0, 0, 6), 42: (0, 9, 0, 0)}
    third = {40: (5, 0, 25, 0), 41: (4, 0, 0, 6), 42: (0, 9, 0, 0)}
    scanner = IrqCountScanner(memo_limit=0 if streamed else 1 << 20)

    def scan(rows):
        data = _kernel_file(rows)
        return scanner.scan_chunks([data]) if streamed else scanner.scan(data)

    scan(first)
    if streamed:
        assert scanner.cells([40, 41]) == {}
    else:
        assert scanner.cells([40, 41]) == {40: (None, {0: 5, 2: 7}), 41: (None, {0: 1, 3: 2})}
    scan(second)
    cells = scanner.cells([40, 41, 99])
    assert cells[40] == ((None, {0: 5, 2: 19}) if streamed else (2, None))
    assert cells[41] == (None, {0: 4, 3: 6})
    assert 99 not in cells
    scan(third)
    assert scanner.cells([40])[40] == (2, None)
