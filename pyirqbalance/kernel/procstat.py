"""/proc/stat (fs/proc/stat.c): per-CPU time, and what irqbalance takes from it.

:func:`parse_stat` gives every ``cpuN`` line as :class:`CpuTimes` (offline
CPUs are simply absent; old kernels print fewer fields, which read as 0) plus
the aggregate line and the ``intr``/``softirq``/``btime`` totals. A file with
no ``cpu`` line at all (the empty capture in tests/fixtures) is not /proc/stat
and raises :class:`ParseError`.

:func:`parse_irq_jiffies` is irqbalance's reading (procinterrupts.c
``parse_proc_stat``): irq + softirq jiffies per CPU line, with its C rules.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ..errors import ParseError
from .cnum import c_int, strtoul, strtoull
from .sysroot import SysRoot

__all__ = ["CpuTimes", "ParseError", "Stat", "parse_irq_jiffies", "parse_stat", "read_stat"]

_FIELDS = (
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice",
)


class CpuTimes(NamedTuple):
    """One ``cpu`` line in USER_HZ jiffies; ``cpu`` is -1 for the aggregate line."""

    cpu: int
    user: int = 0
    nice: int = 0
    system: int = 0
    idle: int = 0
    iowait: int = 0
    irq: int = 0
    softirq: int = 0
    steal: int = 0
    guest: int = 0
    guest_nice: int = 0

    @property
    def irq_softirq(self) -> int:
        return self.irq + self.softirq


class Stat(NamedTuple):
    #: ``cpuN`` lines in file order (offline CPUs are absent).
    cpus: tuple[CpuTimes, ...]
    #: The aggregate ``cpu`` line (``cpu`` = -1).
    total: CpuTimes | None = None
    intr_total: int | None = None
    softirq_total: int | None = None
    btime: int | None = None

    def by_cpu(self) -> dict[int, CpuTimes]:
        return {c.cpu: c for c in self.cpus}


def parse_stat(text: str) -> Stat:
    """Parse /proc/stat; raises :class:`ParseError` on a malformed line or no cpu line."""
    cpus = []
    total = intr = softirq = btime = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        cpu_line = line.startswith("cpu")
        fields = line.split(None, len(_FIELDS) + 1 if cpu_line else 2)
        if not fields:
            continue
        key = fields[0]
        try:
            if key.startswith("cpu"):
                values = [int(v) for v in fields[1:1 + len(_FIELDS)]]
                times = dict(zip(_FIELDS, values))
                if key == "cpu":
                    total = CpuTimes(-1, **times)
                elif key[3:].isascii() and key[3:].isdigit():
                    cpus.append(CpuTimes(int(key[3:]), **times))
                else:
                    raise ValueError(f"bad cpu name {key!r}")
            elif key in ("intr", "softirq", "btime") and len(fields) > 1:
                value = int(fields[1])
                if key == "intr":
                    intr = value
                elif key == "softirq":
                    softirq = value
                else:
                    btime = value
        except ValueError as err:
            raise ParseError(f"/proc/stat line {lineno}: {err}: {line[:80]!r}") from None
    if total is None and not cpus:
        raise ParseError("/proc/stat: no cpu line (empty or not /proc/stat)")
    return Stat(tuple(cpus), total, intr, softirq, btime)


def read_stat(root: SysRoot) -> Stat:
    """Read and parse /proc/stat (raises KernelReadError or ParseError)."""
    return parse_stat(root.read_text(root.proc("stat")))


_U64 = (1 << 64) - 1
_SP = "[ \t\n\v\f\r]"
#: ``sscanf(line, "%*s %*u %*u %*u %*u %*u %llu %llu")`` when it returns 2.
#: Possessive quantifiers: scanf never gives back what a conversion consumed.
_SCANF = re.compile(
    f"{_SP}*+[^ \t\n\v\f\r]++" + f"{_SP}*+[+-]?[0-9]++" * 5 + f"{_SP}*+([+-]?)([0-9]++)" * 2
)


def _c_ull(sign: str, digits: str) -> int:
    """The ``%llu`` sscanf matched as ``sign`` and ``digits`` (strtoull's range rule)."""
    return strtoull(sign + digits)[0]


#: A line as the kernel prints it: "cpuN" and at least seven plain numbers, none
#: long enough for strtoul to saturate or for the CPU number to pass 2**31.
#: For such a line the C reading is just these groups as integers.
_KERNEL_LINE = re.compile(
    r"cpu([0-9]{1,9}) [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ ([0-9]{1,19}) ([0-9]{1,19})(?: |\Z)"
)


def parse_irq_jiffies(text: str) -> tuple[tuple[int, int | None], ...] | None:
    """irqbalance's view: ``(cpu, irq + softirq)`` for each line after the first.

    Reading stops at the first line without "cpu" (anywhere in it). The CPU
    number is ``strtoul`` from the 4th character; irq and softirq are the 6th
    and 7th numbers as ``sscanf`` reads them, summed modulo 2**64. A line
    where sscanf gets fewer than two gives ``(cpu, None)`` and reading goes
    on: irqbalance checks the ban list first, skips banned CPUs, and stops at
    an unbanned CPU with such a line (the caller knows the bans). None: the
    file has no first line.
    """
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline ending the last line starts no line
    if not lines:
        return None
    rows: list[tuple[int, int | None]] = []
    kernel_line = _KERNEL_LINE.match
    for line in lines[1:]:
        m = kernel_line(line)
        if m is not None:
            rows.append((int(m[1]), (int(m[2]) + int(m[3])) & _U64))
            continue
        line = line.partition("\0")[0]  # C string functions stop at a NUL
        if "cpu" not in line:
            break
        cpu = c_int(strtoul(line, 3)[0])  # int cpunr = strtoul(&line[3], NULL, 10)
        m = _SCANF.match(line)
        raw = None if m is None else (_c_ull(m[1], m[2]) + _c_ull(m[3], m[4])) & _U64
        rows.append((cpu, raw))
    return tuple(rows)
