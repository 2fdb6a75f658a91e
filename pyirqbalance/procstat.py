"""/proc/stat (fs/proc/stat.c): per-CPU time, and what irqbalance takes from it.

:func:`parse_stat` gives every ``cpuN`` line as :class:`CpuTimes` (offline
CPUs are simply absent; old kernels print fewer fields, which read as 0) plus
the totals. :func:`parse_irq_jiffies` is irqbalance's reading: irq + softirq
jiffies per CPU, with its stop rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from .sysroot import SysRoot

__all__ = ["StatError", "CpuTimes", "Stat", "parse_stat", "read_stat", "parse_irq_jiffies"]

_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")


class StatError(ValueError):
    """Text that is not /proc/stat."""


@dataclass(frozen=True, slots=True)
class CpuTimes:
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


@dataclass(frozen=True, slots=True)
class Stat:
    cpus: tuple[CpuTimes, ...]
    total: CpuTimes | None = None
    intr_total: int | None = None
    softirq_total: int | None = None
    btime: int | None = None

    def by_cpu(self) -> dict[int, CpuTimes]:
        return {c.cpu: c for c in self.cpus}


def parse_stat(text: str) -> Stat:
    """Parse /proc/stat; raises :class:`StatError` when it has no cpu line at all."""
    cpus = []
    total = intr = softirq = btime = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        key = fields[0]
        try:
            if key.startswith("cpu"):
                values = [int(v) for v in fields[1:1 + len(_FIELDS)]]
                times = dict(zip(_FIELDS, values))
                if key == "cpu":
                    total = CpuTimes(-1, **times)
                else:
                    cpus.append(CpuTimes(int(key[3:]), **times))
            elif key == "intr" and len(fields) > 1:
                intr = int(fields[1])
            elif key == "softirq" and len(fields) > 1:
                softirq = int(fields[1])
            elif key == "btime" and len(fields) > 1:
                btime = int(fields[1])
        except ValueError as err:
            raise StatError(f"/proc/stat line {lineno}: {err}: {line!r}") from None
    if total is None and not cpus:
        raise StatError("/proc/stat: no cpu lines")
    return Stat(tuple(cpus), total, intr, softirq, btime)


def read_stat(root: SysRoot) -> Stat:
    return parse_stat(root.read_text(root.proc("stat")))


def _strtoul(s: str) -> int:
    s = s.lstrip()
    k = 0
    while k < len(s) and s[k].isdigit():
        k += 1
    return int(s[:k]) if k else 0


def parse_irq_jiffies(text: str) -> list[tuple[int, int | None]] | None:
    """irqbalance's view: ``(cpu, irq+softirq)`` per line after the first.

    Reading stops at the first line without "cpu". A line with fewer than
    seven numbers gives ``(cpu, None)``: irqbalance stops there unless that
    CPU is banned (it checks the ban first). None: the file has no first line.
    """
    lines = text.split("\n")
    if not lines[0]:
        return None
    rows: list[tuple[int, int | None]] = []
    for line in lines[1:]:
        if "cpu" not in line:
            break
        cpu = _strtoul(line[3:])
        fields = line.split()
        nums = []
        for f in fields[1:8]:
            if not f.isdigit():
                break
            nums.append(int(f))
        rows.append((cpu, nums[5] + nums[6] if len(nums) == 7 else None))
    return rows
