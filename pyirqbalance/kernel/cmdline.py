"""/proc/cmdline: the kernel parameters that keep IRQs off CPUs.

The command line is split the way the kernel splits it (lib/cmdline.c
``next_arg``: blanks separate parameters, double quotes protect blanks, the
quotes around a value or a whole ``"param=value"`` are dropped; ``--`` ends
the kernel's part, what follows goes to init). Two parameters are decoded:

* ``isolcpus=[flag,...,]cpulist`` (kernel/sched/isolation.c): flags ``nohz``,
  ``domain``, ``managed_irq``; no flag means ``domain``. An unknown flag or a
  bad CPU list makes the kernel ignore the whole parameter, and so do we.
* ``nohz_full=cpulist``.

A repeated parameter: the last one wins. pyirqbalance itself takes isolated
and adaptive-tick CPUs from sysfs, as irqbalance does; this is for reports.
"""

from __future__ import annotations

from typing import NamedTuple

from .cpumask import MaskError, parse_cpulist
from .sysroot import SysRoot

__all__ = ["KernelCmdline", "parse_cmdline", "read_cmdline", "split_params"]

_ISOLCPUS_FLAGS = ("nohz", "domain", "managed_irq")
_SPACE = " \t\n\v\f\r"


class KernelCmdline(NamedTuple):
    #: CPUs named by the effective ``isolcpus=`` (0 when absent or ignored).
    isolcpus: int
    #: Its flags; ``("domain",)`` when it names none (the kernel's default).
    isolcpus_flags: tuple[str, ...]
    #: CPUs named by the effective ``nohz_full=``.
    nohz_full: int
    #: Every kernel parameter in order: (name, value or None for a bare flag).
    params: tuple[tuple[str, str | None], ...]

    def get(self, name: str) -> str | None:
        """Value of the last ``name=`` parameter (None if absent or valueless)."""
        for key, value in reversed(self.params):
            if key == name:
                return value
        return None


def split_params(text: str) -> list[tuple[str, str | None]]:
    """Kernel parameters as lib/cmdline.c ``next_arg`` cuts them, up to ``--``."""
    params: list[tuple[str, str | None]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n:
            return params
        quoted = text[i] == '"'
        start = j = i + quoted
        in_quote = quoted
        equals = -1
        while j < n and (in_quote or text[j] not in _SPACE):
            if equals < 0 and text[j] == "=" and j > start:
                equals = j
            if text[j] == '"':
                in_quote = not in_quote
            j += 1
        arg_end = j - 1 if quoted and j > start and text[j - 1] == '"' else j
        if equals < 0:
            name, value = text[start:arg_end], None
        else:
            name, value = text[start:equals], text[equals + 1:arg_end]
            if value.startswith('"'):
                value = value[1:-1] if value.endswith('"') and len(value) > 1 else value[1:]
        i = j
        if name == "--" and value is None:
            return params  # the rest belongs to init
        params.append((name, value))


def _isolcpus(value: str) -> tuple[int, tuple[str, ...]] | None:
    """``isolcpus=`` as housekeeping_isolcpus_setup reads it; None if ignored."""
    flags: list[str] = []
    rest = value
    while rest[:1].isalpha():
        flag, comma, after = rest.partition(",")
        if flag not in _ISOLCPUS_FLAGS or not comma:
            return None  # "isolcpus: Error, unknown flag"
        if flag not in flags:
            flags.append(flag)
        rest = after
    cpus = _cpus(rest)
    return None if cpus is None else (cpus, tuple(flags) or ("domain",))


def _cpus(text: str) -> int | None:
    try:
        return parse_cpulist(text)
    except MaskError:
        return None  # "Housekeeping: nohz_full= or isolcpus= incorrect CPU range"


def parse_cmdline(text: str) -> KernelCmdline:
    """Decode /proc/cmdline text. Never raises: bad values are ignored, as the kernel does."""
    params = split_params(text)
    flags: tuple[str, ...] = ()
    isolcpus, nohz_full = 0, 0
    for name, value in params:
        key = name.replace("-", "_")  # the kernel treats - and _ in names alike
        if value is None:
            continue
        if key == "isolcpus":
            parsed = _isolcpus(value)
            if parsed is not None:
                isolcpus, flags = parsed
        elif key == "nohz_full":
            cpus = _cpus(value)
            if cpus is not None:
                nohz_full = cpus
    return KernelCmdline(isolcpus, flags, nohz_full, tuple(params))


def read_cmdline(root: SysRoot) -> KernelCmdline | None:
    """Read and decode /proc/cmdline; None when it cannot be read."""
    text = root.try_read_text(root.proc("cmdline"))
    return None if text is None else parse_cmdline(text)
