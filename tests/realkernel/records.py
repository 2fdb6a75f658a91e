"""Reading the guest's records on the host: masks, control-socket replies, strace lines.

Independent of pyirqbalance's own parsers: these are what the tests compare the daemon with.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple


def mask(text: str) -> int:
    """An smp_affinity text (hex words, comma-separated) as an int."""
    return int(text.replace(",", ""), 16)


def cpulist(text: str) -> set[int]:
    """A kernel cpulist (``0-5,7``) as a set."""
    out: set[int] = set()
    for part in filter(None, text.strip().split(",")):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def bits(value: int) -> set[int]:
    return {i for i in range(value.bit_length()) if value >> i & 1}


def irqs_named(rows: dict[str, Any], pattern: str) -> set[str]:
    """IRQs whose /proc/interrupts text (chip, hwirq, name) matches ``pattern``."""
    return {irq for irq, row in rows.items() if re.search(pattern, row["desc"])}


class StatsObject(NamedTuple):
    type: int
    number: int
    irqs: dict[int, int]  # irq -> class


def parse_stats(reply: str) -> list[StatsObject]:
    """irqbalance's ``stats`` reply: ``TYPE t NUMBER n LOAD l SAVE_MODE s`` per object, each
    followed by ``IRQ i LOAD l DIFF d CLASS c`` per IRQ on it."""
    tokens = reply.split()
    out: list[StatsObject] = []
    i = 0
    while i < len(tokens):
        if tokens[i] == "TYPE":
            assert tokens[i + 2] == "NUMBER" and tokens[i + 4] == "LOAD", tokens[i:i + 8]
            out.append(StatsObject(int(tokens[i + 1]), int(tokens[i + 3]), {}))
            i += 8
        elif tokens[i] == "IRQ":
            assert tokens[i + 2] == "LOAD" and tokens[i + 6] == "CLASS", tokens[i:i + 8]
            out[-1].irqs[int(tokens[i + 1])] = int(tokens[i + 7])
            i += 8
        else:
            raise AssertionError(f"unexpected token {tokens[i]!r} in {reply!r}")
    return out


class Write(NamedTuple):
    """One write(2) to an smp_affinity file, as strace -ttt -y printed it."""

    time: float
    irq: str
    text: str
    errno: str | None  # None: written


_WRITE = re.compile(r"(\d+\.\d+) write\(\d+</proc/irq/(\d+)/smp_affinity>, \"([^\"]*)\".*"
                    r"= (-?\d+)(?: (E[A-Z]+))?")


def parse_writes(lines: list[str]) -> list[Write]:
    out = []
    for line in lines:
        m = _WRITE.search(line)
        assert m, f"unparsed strace line: {line!r}"
        out.append(Write(float(m.group(1)), m.group(2), m.group(3), m.group(5)))
    return out
