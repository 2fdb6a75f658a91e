"""CPU masks and CPU lists in the kernel's text formats.

A CPU set is a plain Python ``int`` used as a bitmap (bit N = CPU N): cheap to
copy, hash, intersect and compare, and unbounded in width.

Two text formats exist (Documentation/core-api/printk-formats.rst, ``%*pb`` and
``%*pbl``):

* **mask**: 32-bit groups of hex digits, most significant first, separated by
  commas -- ``00000001,00000000`` is CPU 32.
* **list**: decimal CPU numbers and ranges -- ``0-3,8,10-11``.

Each has a *strict* parser (what pyirqbalance itself uses for sysfs values,
configuration and API input: malformed text raises :class:`MaskError`) and an
*irqbalance-compatible* parser that reproduces the partial results of the
bitmap code irqbalance 1.9 carries (``bitmap.c``), for the places where the
balancer must see exactly what irqbalance sees (environment variables, the
control socket).
"""

from __future__ import annotations

import re
from functools import lru_cache

from ..errors import MaskError

__all__ = [
    "IRQBALANCE_NR_CPUS",
    "MAX_CPUS",
    "MaskError",
    "cpus_of",
    "format_cpulist",
    "format_kernel_mask",
    "format_mask",
    "irqbalance_parse_cpulist",
    "irqbalance_parse_mask",
    "lowest_cpu",
    "mask_of",
    "parse_cpulist",
    "parse_mask",
]

#: Widest mask accepted by the strict parsers (the kernel's CONFIG_NR_CPUS max).
MAX_CPUS = 8192
#: irqbalance's bitmap width (``NR_CPUS`` in its cpumask.h).
IRQBALANCE_NR_CPUS = 4096

_HEX = frozenset("0123456789abcdefABCDEF")
_DEC = frozenset("0123456789")
_SPACE = frozenset(" \t\n\v\f\r")
#: Comma-separated groups of 1-8 hex digits; the kernel (bitmap_print_to_pagebuf)
#: prints every group after the first with all 8.
_GROUPS = re.compile(r"[0-9a-fA-F]{1,8}(?:,[0-9a-fA-F]{1,8})*")


def _truncated(groups: list[str], nbits: int) -> int:
    """What ``__bitmap_parse`` leaves when the text is wider than ``nbits``.

    Leading zero groups are skipped; from the first non-zero group on, each
    group is shifted in and counted (the first by its bit length, the others
    as 32 bits); the group that takes the count past ``nbits`` is still
    shifted in, then parsing stops with -EOVERFLOW.
    """
    values = [int(g, 16) for g in groups]
    first = next(i for i, v in enumerate(values) if v)
    seen = 0
    value = 0
    for k, v in enumerate(values[first:]):
        value = ((value << 32) | v) & ((1 << nbits) - 1)
        seen += v.bit_length() if k == 0 else 32
        if seen > nbits:
            break
    return value


def _join_groups(groups: list[str]) -> int:
    value = 0
    for g in groups:
        value = (value << 32) | int(g, 16)
    return value


# --------------------------------------------------------------------------
# strict parsers
# --------------------------------------------------------------------------


def _short(text: str) -> str:
    """``repr`` of a value for a message, cut to 64 characters."""
    return repr(text) if len(text) <= 64 else repr(text[:64]) + f"... ({len(text)} characters)"


def parse_mask(text: str, nbits: int = MAX_CPUS) -> int:
    """Parse a hex CPU mask as the kernel prints it (``ff,ffffffff``).

    Leading/trailing whitespace is ignored; each comma-separated group holds
    1-8 hex digits; leading all-zero groups may be present or not.

    >>> parse_mask("00000001,00000000\\n")
    4294967296
    >>> parse_mask("f")
    15
    """
    s = text.strip()
    if not s:
        raise MaskError("empty cpu mask")
    groups = s.split(",")
    for group in groups:
        if not group or len(group) > 8 or not _HEX.issuperset(group):
            raise MaskError(f"bad cpu mask group {_short(group)} in {_short(s)}")
    # One conversion of the whole hex string: linear, where shifting group by group
    # copies the growing number each time (a 1 MB mask took seconds).
    value = int("".join(g.rjust(8, "0") for g in groups), 16)
    if value.bit_length() > nbits:
        raise MaskError(f"cpu mask {_short(s)} is wider than {nbits} cpus")
    return value


def parse_cpulist(text: str, nbits: int = MAX_CPUS) -> int:
    """Parse a CPU list (``0-3,8,10-11``); empty or blank text is the empty set.

    The kernel's stride form ``a-b:used/group`` is accepted
    (``0-15:2/4`` = CPUs 0,1,4,5,8,9,12,13), as in bitmap_parselist().

    >>> cpus_of(parse_cpulist("0-2,8"))
    [0, 1, 2, 8]
    >>> cpus_of(parse_cpulist("0-7:1/4"))
    [0, 4]
    """
    s = text.strip()
    if not s:
        return 0
    value = 0
    for item in s.split(","):
        if not item:
            raise MaskError(f"empty entry in cpu list {s!r}")
        where = "" if item == s else f" in {s!r}"
        rng, _, stride = item.partition(":")
        first, dash, last = rng.partition("-")
        if not first or not _DEC.issuperset(first) or (
            dash and (not last or not _DEC.issuperset(last))
        ):
            raise MaskError(f"{item!r} is not a CPU number or range{where}")
        if len(first) > 6 or len(last) > 6:
            raise MaskError(f"cpu number too large in {item!r}{where}")
        a = int(first)
        b = int(last) if dash else a
        if a > b:
            raise MaskError(f"reversed range {item!r}{where}")
        if b >= nbits:
            raise MaskError(f"cpu {b} out of range (max {nbits - 1}){where}")
        if stride:
            used, slash, group = stride.partition("/")
            if not (slash and used.isdecimal() and group.isdecimal()):
                raise MaskError(f"bad stride {item!r}{where}")
            u, g = int(used), int(group)
            if not 0 < u <= g:
                raise MaskError(f"bad stride {item!r}{where}")
            for start in range(a, b + 1, g):
                for cpu in range(start, min(start + u, b + 1)):
                    value |= 1 << cpu
        else:
            value |= ((1 << (b - a + 1)) - 1) << a
    return value


# --------------------------------------------------------------------------
# irqbalance-compatible parsers (partial results on error, as bitmap.c)
# --------------------------------------------------------------------------


def irqbalance_parse_mask(text: str, nbits: int = IRQBALANCE_NR_CPUS) -> int:
    """irqbalance's ``cpumask_parse_user``: never fails, keeps what it parsed.

    Reproduces the old kernel ``__bitmap_parse`` that irqbalance copies: the
    mask is zeroed, then each 32-bit chunk is shifted in; on a syntax error the
    chunks already shifted in remain (``1,,5`` gives CPU 0; ``0x1`` gives
    nothing; embedded white space stops parsing).

    >>> irqbalance_parse_mask("ff\\n")
    255
    >>> irqbalance_parse_mask("1,,5")
    1
    """
    # Fast path for what the kernel prints: one line of comma-separated groups
    # of at most 8 hex digits, nothing else (the exact loop below agrees).
    body = text.strip()
    if _GROUPS.fullmatch(body):
        groups = body.split(",")
        if len(body) == len(groups[0]) + 9 * (len(groups) - 1):
            # every later group full: the digits are the mask
            value = int(body.replace(",", ""), 16)
        else:
            value = _join_groups(groups)
        if value.bit_length() <= nbits:
            return value
        return _truncated(groups, nbits)
    value = 0
    nchunks = nbits_seen = totaldigits = 0
    c = ""
    i, n = 0, len(text)
    while True:
        chunk = 0
        ndigits = totaldigits
        while i < n:
            old_c, c = c, text[i]
            i += 1
            if c in _SPACE:
                continue
            if totaldigits and c and old_c in _SPACE and old_c:
                return value  # embedded whitespace: -EINVAL
            if c == ",":
                break
            if c not in _HEX:
                return value  # -EINVAL
            if chunk & ~((1 << 28) - 1):
                return value  # -EOVERFLOW
            chunk = (chunk << 4) | int(c, 16)
            totaldigits += 1
        if ndigits == totaldigits:
            return value  # empty chunk: -EINVAL
        if not (nchunks == 0 and chunk == 0):
            value = ((value << 32) | chunk) & ((1 << nbits) - 1)
            nchunks += 1
            nbits_seen += chunk.bit_length() if nchunks == 1 else 32
            if nbits_seen > nbits:
                return value  # -EOVERFLOW
        if not (i < n and c == ","):
            return value


def irqbalance_parse_cpulist(text: str, nbits: int = IRQBALANCE_NR_CPUS) -> int:
    """irqbalance's ``cpulist_parse``: the old kernel ``__bitmap_parselist``.

    Ranges are set one by one, so an error keeps the ranges before it; an empty
    entry means CPU 0 (``""`` and ``"\\n"`` give CPU 0, ``"1,\\n"`` gives 0 and
    1); embedded white space, strides and reversed ranges stop parsing.

    >>> cpus_of(irqbalance_parse_cpulist("1,\\n"))
    [0, 1]
    >>> cpus_of(irqbalance_parse_cpulist("1, 2"))
    [1]
    """
    value = 0
    totaldigits = 0
    c = ""
    i, n = 0, len(text)
    while True:
        exp_digit, in_range = True, False
        a = b = 0
        while i < n:
            old_c, c = c, text[i]
            i += 1
            if c in _SPACE:
                continue
            if totaldigits and old_c in _SPACE and old_c:
                return value  # embedded whitespace: -EINVAL
            if c == ",":
                break
            if c == "-":
                if exp_digit or in_range:
                    return value
                b, in_range, exp_digit = 0, True, True
                continue
            if c not in _DEC:
                return value
            b = b * 10 + ord(c) - 48
            if not in_range:
                a = b
            exp_digit = False
            totaldigits += 1
        if a > b:
            return value  # -EINVAL
        if b >= nbits:
            return value  # -ERANGE
        value |= ((1 << (b - a + 1)) - 1) << a
        if not (i < n and c == ","):
            return value


# --------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def format_mask(mask: int) -> str:
    """The mask text irqbalance writes to ``smp_affinity``.

    Groups of exactly 8 hex digits, leading all-zero groups dropped, the lowest
    group always present, no newline (irqbalance ``cpumask_scnprintf``).
    Remembered: the IRQs placed on one CPU or cache share one text (288
    characters each at 1024 CPUs, built group by group).

    >>> format_mask(1 << 32)
    '00000001,00000000'
    >>> format_mask(0)
    '00000000'
    """
    if mask < 0:
        raise MaskError("negative cpu mask")
    groups = []
    while True:
        groups.append(f"{mask & 0xFFFFFFFF:08x}")
        mask >>= 32
        if not mask:
            break
    return ",".join(reversed(groups))


def format_kernel_mask(mask: int, nbits: int) -> str:
    """The mask as the kernel prints it for ``nbits`` CPUs (``%*pb``).

    The most significant group is only as wide as ``nbits`` needs.

    >>> format_kernel_mask(0xf, 4)
    'f'
    >>> format_kernel_mask(2, 40)
    '00,00000002'
    """
    nchunks = max(1, (nbits + 31) // 32)
    first_bits = nbits - 32 * (nchunks - 1)
    parts = []
    for k in range(nchunks - 1, -1, -1):
        width = (first_bits + 3) // 4 if k == nchunks - 1 else 8
        parts.append(f"{(mask >> (32 * k)) & 0xFFFFFFFF:0{width}x}")
    return ",".join(parts)


def format_cpulist(mask: int) -> str:
    """CPU list text (``%*pbl``): ``0-3,8``; the empty set is ``""``.

    >>> format_cpulist(0b1_0000_1111)
    '0-3,8'
    """
    out = []
    cpu = 0
    while mask:
        if not mask & 1:
            skip = (mask & -mask).bit_length() - 1
            mask >>= skip
            cpu += skip
            continue
        run = (~mask & (mask + 1)).bit_length() - 1  # length of the run of ones
        out.append(str(cpu) if run == 1 else f"{cpu}-{cpu + run - 1}")
        mask >>= run
        cpu += run
    return ",".join(out)


def cpus_of(mask: int) -> list[int]:
    """Sorted CPU numbers in ``mask``."""
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def mask_of(cpus) -> int:
    """Mask with the given CPU numbers set."""
    value = 0
    for cpu in cpus:
        value |= 1 << cpu
    return value


def lowest_cpu(mask: int) -> int:
    """Lowest CPU number in a non-empty mask (-1 when empty)."""
    return (mask & -mask).bit_length() - 1
