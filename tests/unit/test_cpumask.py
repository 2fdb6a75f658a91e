"""pyirqbalance.kernel.cpumask against the spec's tables (section 2.1) and real mask texts.

The irqbalance-compatible parsers reproduce the "verified" quirk tables of spec 2.1;
the strict parsers must take every kernel-printed mask and list and reject the rest
with MaskError only; formatting round-trips for masks up to 8192 CPUs.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyirqbalance.kernel.cpumask import (
    MaskError,
    cpus_of,
    format_cpulist,
    format_kernel_mask,
    format_mask,
    irqbalance_parse_cpulist,
    irqbalance_parse_mask,
    lowest_cpu,
    mask_of,
    parse_cpulist,
    parse_mask,
)

ALL_4096 = (1 << 4096) - 1


@pytest.mark.parametrize(
    "mask, text",
    [
        (0, "00000000"),
        (1, "00000001"),
        (1 << 32, "00000001,00000000"),
        (1 << 100, "00000010,00000000,00000000,00000000"),
        (ALL_4096, ",".join(["ffffffff"] * 128)),
    ],
)
def test_writer(mask, text):
    assert format_mask(mask) == text
    assert parse_mask(text) == mask


def test_writer_all_4096_length():
    assert len(format_mask(ALL_4096)) == 1151


@pytest.mark.parametrize(
    "text, cpus",
    [
        ("ff\n", list(range(8))),
        ("00000000,00000001\n", [0]),
        ("0", []),
        ("", []),
        ("0x1", []),
        ("1,,5", [0]),
        ("f f", []),
    ],
)
def test_irqbalance_bitmap_parse(text, cpus):
    assert cpus_of(irqbalance_parse_mask(text)) == cpus


@pytest.mark.parametrize(
    "text, cpus",
    [
        ("", [0]),
        ("\n", [0]),
        ("1,", [1]),
        ("1,\n", [0, 1]),
        ("1, 2", [1]),
        ("1,2,NULL", [1, 2]),
        ("(null)\n", []),
        ("0-15:2/4", []),
        ("5-3", []),
        ("4096", []),
        ("0-3,8\n", [0, 1, 2, 3, 8]),
    ],
)
def test_irqbalance_bitmap_parselist(text, cpus):
    assert cpus_of(irqbalance_parse_cpulist(text)) == cpus


@pytest.mark.parametrize(
    "text, mask",
    [
        ("ff,ffffffff\n", (1 << 40) - 1),  # valmikroy 40-CPU smp_affinity
        ("00,00000002\n", 1 << 1),
        ("00000000,00000001\n", 1),
        ("3\n", 3),  # this VM
        ("f", 0xF),
    ],
)
def test_real_masks(text, mask):
    assert parse_mask(text) == mask
    assert irqbalance_parse_mask(text) == mask


def test_kernel_mask_format():
    assert format_kernel_mask(2, 40) == "00,00000002"
    assert format_kernel_mask((1 << 40) - 1, 40) == "ff,ffffffff"
    assert format_kernel_mask(0xF, 4) == "f"


@pytest.mark.parametrize(
    "text, cpus",
    [("0-3,8,10-11", [0, 1, 2, 3, 8, 10, 11]), ("0-15:2/4", [0, 1, 4, 5, 8, 9, 12, 13]),
     ("0-7:1/4", [0, 4]), ("", []), (" 5\n", [5])],
)
def test_strict_cpulist(text, cpus):
    assert cpus_of(parse_cpulist(text)) == cpus


@pytest.mark.parametrize(
    "text", ["1,,2", "3-1", "a", "1-", "-1", "0-3:0/4", "0-3:5/4", "8192", "1:2/4x"])
def test_strict_cpulist_errors(text):
    with pytest.raises(MaskError):
        parse_cpulist(text)


@pytest.mark.parametrize("text", ["", "  ", "0x1", "1,,5", "123456789", "f f", "g"])
def test_strict_mask_errors(text):
    with pytest.raises(MaskError):
        parse_mask(text)


def test_small_helpers():
    assert format_cpulist(0b1_0000_1111) == "0-3,8"
    assert mask_of([0, 3]) == 0b1001
    assert (lowest_cpu(0b1000), lowest_cpu(0)) == (3, -1)


masks = st.integers(min_value=0, max_value=(1 << 8192) - 1)


@settings(max_examples=300)
@given(masks)
def test_mask_round_trip(mask):
    assert parse_mask(format_mask(mask)) == mask
    assert parse_mask(format_kernel_mask(mask, 8192)) == mask
    assert parse_cpulist(format_cpulist(mask)) == mask
    if mask.bit_length() <= 4096:
        assert irqbalance_parse_mask(format_mask(mask)) == mask
        assert irqbalance_parse_mask(format_mask(mask) + "\n") == mask
        if mask:
            assert irqbalance_parse_cpulist(format_cpulist(mask)) == mask


@settings(max_examples=200)
@given(st.integers(0, 8191), st.integers(0, 300), st.integers(1, 16), st.integers(1, 16))
def test_stride_lists(first, span, used, group):
    used = min(used, group)
    last = min(first + span, 8191)
    expected = mask_of(c for c in range(first, last + 1) if (c - first) % group < used)
    assert parse_cpulist(f"{first}-{last}:{used}/{group}") == expected


@settings(max_examples=500)
@given(st.text(alphabet="0123456789abcdefx,-: /\n\t", max_size=40) | st.text(max_size=20))
def test_strict_parsers_raise_only_mask_error(text):
    for parse in (parse_mask, parse_cpulist):
        try:
            value = parse(text)
        except MaskError:
            continue
        assert value >= 0
    assert irqbalance_parse_mask(text) >= 0
    assert irqbalance_parse_cpulist(text) >= 0
