"""The C number rules (glibc, LP64, C locale), case by case from the C standard and glibc."""

from __future__ import annotations

import pytest

from pyirqbalance.kernel import cnum

U = 2**64 - 1


@pytest.mark.parametrize(
    ("text", "pos", "base", "expected"),
    [
        ("42", 0, 10, (42, 2)),
        (" \t\n\v\f\r42x", 0, 10, (42, 8)),      # isspace, then digits; the rest is left
        ("+7", 0, 10, (7, 2)),
        ("-1", 0, 10, (U, 2)),                    # a minus sign negates modulo 2**64
        ("-0", 0, 10, (0, 2)),
        ("18446744073709551615", 0, 10, (U, 20)),
        ("18446744073709551616", 0, 10, (U, 20)),  # overflow saturates (ERANGE)
        ("-18446744073709551616", 0, 10, (U, 21)),  # overflow then sign: still ULONG_MAX
        ("9" * 5000, 0, 10, (U, 5000)),           # any length, no conversion limit
        ("abc", 0, 10, (0, 0)),                   # no digit: 0, end = start
        ("  -", 0, 10, (0, 0)),
        ("", 0, 10, (0, 0)),
        ("x 12", 1, 10, (12, 4)),                 # from a position
        ("x", 1, 10, (0, 1)),
        ("0x1f", 0, 16, (31, 4)),
        ("0X1F", 0, 16, (31, 4)),
        ("1f", 0, 16, (31, 2)),
        ("0xg", 0, 16, (0, 1)),                   # "0x" without a hex digit: the "0" only
        ("0x1f", 0, 10, (0, 1)),                  # base 10 stops at the x
        ("٣", 0, 10, (0, 0)),                     # only ASCII digits (C locale)
    ],
)
def test_strtoul(text, pos, base, expected):
    assert cnum.strtoul(text, pos, base) == expected
    assert cnum.strtoul(text.encode(), pos, base) == expected if text.isascii() else True
    assert cnum.strtoull is cnum.strtoul  # the same on LP64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-5", (-5, 2)),
        ("9223372036854775807", (2**63 - 1, 19)),
        ("9223372036854775808", (2**63 - 1, 19)),    # clamped to LONG_MAX
        ("-9223372036854775808", (-(2**63), 20)),
        ("-9223372036854775809", (-(2**63), 20)),    # clamped to LONG_MIN
        ("-" + "9" * 5000, (-(2**63), 5001)),
        ("+", (0, 0)),
    ],
)
def test_strtol(text, expected):
    assert cnum.strtol(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("42", 42), ("  -3z", -3), ("x", 0), ("2147483648", -(2**31)), ("4294967297", 1),
     ("99999999999999999999", -1)],  # LONG_MAX's low 32 bits
)
def test_atoi_is_int_of_strtol(text, expected):
    assert cnum.atoi(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (2**31 - 1, 2**31 - 1), (2**31, -(2**31)), (2**32 - 1, -1), (2**32, 0), (U, -1),
     (-1, -1)],
)
def test_c_int_keeps_the_low_32_bits(value, expected):
    assert cnum.c_int(value) == expected


def test_scan_number_tells_found_from_zero():
    assert cnum.scan_number("0") == cnum.CNumber(False, 0, 1, True)
    assert cnum.scan_number("-") == cnum.CNumber(False, 0, 0, False)
    assert cnum.scan_number(b" -12") == cnum.CNumber(True, 12, 4, True)
