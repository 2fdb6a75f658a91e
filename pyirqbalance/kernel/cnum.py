"""The C library's number reading, as irqbalance gets it (glibc, LP64, C locale).

irqbalance reads every number with ``strtoul``/``strtoull``/``strtol``,
``atoi`` or ``sscanf``: it takes the longest prefix that looks like a
number and ignores the rest. The rules, all here:

* leading white space is C ``isspace``: space, ``\\t \\n \\v \\f \\r``;
* then one optional sign; then digits (base 16: an optional ``0x``/``0X``
  prefix, taken only when a hex digit follows it);
* no digit: the value is 0 and the end is where reading began (``endptr ==
  nptr``);
* ``strtoul``/``strtoull`` (the same on LP64): a value above ULONG_MAX reads
  ULONG_MAX; a minus sign negates modulo 2**64 (``"-1"`` is ULONG_MAX);
* ``strtol``: clamped to LONG_MIN..LONG_MAX;
* a result stored in a C ``int`` keeps its low 32 bits (two's complement):
  :func:`c_int`; ``atoi(s)`` is ``(int)strtol(s, NULL, 10)``.

Texts are ``str`` or ``bytes`` (positions are indexes into them). Digit runs
of any length are fine: values are capped before Python converts them.
"""

from __future__ import annotations

import re
from typing import Any, AnyStr, NamedTuple

__all__ = [
    "LONG_MAX",
    "LONG_MIN",
    "ULONG_MAX",
    "CNumber",
    "atoi",
    "c_int",
    "magnitude",
    "number_pattern",
    "scan_number",
    "strtol",
    "strtoul",
    "strtoull",
    "unsigned_value",
]

ULONG_MAX = (1 << 64) - 1
LONG_MAX = (1 << 63) - 1
LONG_MIN = -(1 << 63)

_DEC = r"[ \t\n\v\f\r]*([+-]?)([0-9]+)"
# "0x" is a prefix only when a hex digit follows; otherwise "0" is the number.
_HEX = r"[ \t\n\v\f\r]*([+-]?)(?:0[xX](?=[0-9a-fA-F]))?([0-9a-fA-F]+)"
_PATTERNS: dict[tuple[type, int], re.Pattern[Any]] = {
    (str, 10): re.compile(_DEC),
    (str, 16): re.compile(_HEX),
    (bytes, 10): re.compile(_DEC.encode()),
    (bytes, 16): re.compile(_HEX.encode()),
}
#: Digits of the largest value each base can need before it saturates.
_MAX_DIGITS = {10: len(str(ULONG_MAX)), 16: len(f"{ULONG_MAX:x}")}


class CNumber(NamedTuple):
    """What one ``strto*`` call reads: the sign, the magnitude and where it stopped."""

    negative: bool
    #: The digits' value, capped at ULONG_MAX + 1 (anything larger overflows anyway).
    magnitude: int
    #: Index after the last digit; the start index when there was no digit.
    end: int
    #: Whether any digit was read (C: ``endptr != nptr``).
    found: bool


def number_pattern(kind: type[AnyStr], base: int = 10) -> re.Pattern[AnyStr]:
    """The regular expression of one number (groups: sign, digits) for ``str`` or ``bytes``.

    For hot loops that match in place and convert with :func:`magnitude` and
    :func:`unsigned_value`; :func:`scan_number` is the same, returned as a record.
    """
    return _PATTERNS[kind, base]


def magnitude(digits: str | bytes, base: int = 10) -> int:
    """int(digits, base), capped at ULONG_MAX + 1; cheap on absurdly long runs."""
    digits = digits.lstrip(b"0") if isinstance(digits, bytes) else digits.lstrip("0")
    if len(digits) > _MAX_DIGITS[base]:
        return ULONG_MAX + 1
    return min(int(digits or "0", base), ULONG_MAX + 1)


def scan_number(text: AnyStr, pos: int = 0, base: int = 10) -> CNumber:
    """The number ``strto*(text + pos, &end, base)`` reads, before its range rules."""
    m = _PATTERNS[type(text), base].match(text, pos)
    if m is None:
        return CNumber(False, 0, pos, False)
    sign = m.group(1)
    return CNumber(sign in ("-", b"-"), magnitude(m.group(2), base), m.end(), True)


def unsigned_value(negative: bool, magnitude: int) -> int:
    """``strtoul``'s range rule: saturate at ULONG_MAX, a minus sign wraps modulo 2**64."""
    if magnitude > ULONG_MAX:
        return ULONG_MAX
    return -magnitude & ULONG_MAX if negative else magnitude


def strtoul(text: AnyStr, pos: int = 0, base: int = 10) -> tuple[int, int]:
    """C ``strtoul(text + pos, &end, base)``: (value, end index).

    >>> strtoul("  -1x"), strtoul("0x1fz", base=16), strtoul("abc")
    ((18446744073709551615, 4), (31, 4), (0, 0))
    """
    n = scan_number(text, pos, base)
    return unsigned_value(n.negative, n.magnitude), n.end


#: ``strtoull`` is ``strtoul`` on LP64.
strtoull = strtoul


def strtol(text: AnyStr, pos: int = 0, base: int = 10) -> tuple[int, int]:
    """C ``strtol(text + pos, &end, base)``: (value clamped to a long, end index).

    >>> strtol("-99999999999999999999"), strtol("+12ab")
    ((-9223372036854775808, 21), (12, 3))
    """
    n = scan_number(text, pos, base)
    if n.negative:
        return max(-n.magnitude, LONG_MIN), n.end
    return min(n.magnitude, LONG_MAX), n.end


def c_int(value: int) -> int:
    """A C integer stored in an ``int``: its low 32 bits, two's complement.

    >>> c_int(2**32 - 1), c_int(2**31), c_int(-1)
    (-1, -2147483648, -1)
    """
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def atoi(text: AnyStr) -> int:
    """C ``atoi``: ``(int)strtol(text, NULL, 10)``; 0 when there is no number.

    >>> atoi(" 42abc"), atoi("x"), atoi("4294967297")
    (42, 0, 1)
    """
    return c_int(strtol(text)[0])
