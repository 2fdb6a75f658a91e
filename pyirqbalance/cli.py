"""Command line: irqbalance 1.9's options (and the legacy ones still in scripts).

GNU getopt behaviour is kept where admins rely on it: ``--opt=value`` and
``--opt value``, unambiguous prefixes (``--one``, ``--inter=5``), clustered
short options, and exit status 1 with the usage text for a bad option.
Numbers are validated the way irqbalance's ``strtoul`` checks do (digits
required, trailing text ignored). Environment: ``IRQBALANCE_ONESHOT``,
``IRQBALANCE_DEBUG``, ``IRQBALANCE_BANNED_CPUS``, ``IRQBALANCE_BANNED_CPULIST``,
``IRQBALANCE_ARGS`` (extra options, below the real command line) and
``INVOCATION_ID`` (started by systemd: foreground + journal).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import dataclass, field

from . import IRQBALANCE_COMPAT_VERSION, __version__
from .model import BalancerSettings, HintPolicy

__all__ = ["Options", "UsageError", "parse_args", "main", "USAGE"]

USAGE = (
    "pyirqbalance [--oneshot | -o] [--debug | -d] [--foreground | -f] [--journal | -j]\n"
    "\t[--powerthresh= | -p <off> | <n>] [--banirq= | -i <n>] [--banmod= | -m <module>]"
    " [--policyscript= | -l <script>]\n"
    "\t[--pid= | -s <file>] [--deepestcache= | -c <n>] [--interval= | -t <n>]"
    " [--migrateval= | -e <n>]\n"
)

_ULONG_MAX = 2**64 - 1


class UsageError(Exception):
    """A bad command line (exit 1, like irqbalance)."""


@dataclass(frozen=True)
class Options:
    oneshot: bool = False
    debug: bool = False
    foreground: bool = False
    journal: bool = False
    version: bool = False
    interval: int = 10
    pidfile: str | None = None
    policyscript: str | None = None
    banscript: str | None = None
    sysroot: str = "/"
    dry_run: bool = False
    output_format: str = "text"
    config: str | None = None
    restore: bool = False
    force: bool = False
    settings: BalancerSettings = field(default_factory=BalancerSettings)


def _strtoul(text: str, what: str) -> int:
    """C ``strtoul``: leading blanks and sign allowed, digits required, rest ignored."""
    s = text.lstrip(" \t\n\v\f\r")
    neg = s[:1] == "-"
    s = s[1:] if s[:1] in "+-" else s
    k = 0
    while k < len(s) and s[k].isdigit():
        k += 1
    if k == 0:
        raise UsageError(f"invalid {what} value {text!r}: a number is required")
    value = min(int(s[:k]), _ULONG_MAX)
    return (-value) & _ULONG_MAX if neg else value


def _hintpolicy(text: str) -> HintPolicy:
    """irqbalance 1.0-1.1: the argument is a *prefix* (the empty string means exact)."""
    for policy in (HintPolicy.EXACT, HintPolicy.SUBSET, HintPolicy.IGNORE):
        if policy.value.startswith(text):
            return policy
    raise UsageError(f"invalid --hintpolicy {text!r}: use exact, subset or ignore")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would exit 2 with its own usage
        raise UsageError(message)


def _parser() -> _Parser:
    p = _Parser(prog="pyirqbalance", add_help=False, allow_abbrev=True)
    flag = lambda *names, **kw: p.add_argument(*names, action="store_true", **kw)  # noqa: E731
    flag("-o", "--oneshot")
    flag("-d", "--debug")
    flag("-f", "--foreground")
    flag("-j", "--journal")
    flag("-V", "--version")
    flag("--help")
    p.add_argument("-i", "--banirq", action="append", default=[])
    p.add_argument("-p", "--powerthresh")
    p.add_argument("-c", "--deepestcache")
    p.add_argument("-l", "--policyscript")
    p.add_argument("-m", "--banmod", action="append", default=[])
    p.add_argument("-s", "--pid")
    p.add_argument("-t", "--interval")
    p.add_argument("-e", "--migrateval")
    p.add_argument("--hintpolicy")
    p.add_argument("--banscript")
    p.add_argument("--sysroot", default="/")
    flag("--dry-run")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--config")
    flag("--restore")
    flag("--force")
    return p


def parse_args(argv: list[str], environ: dict[str, str] | None = None) -> Options:
    """Resolve command line and environment into :class:`Options` (raises UsageError)."""
    env = os.environ if environ is None else environ
    extra = shlex.split(env.get("IRQBALANCE_ARGS", "")) if env.get("IRQBALANCE_ARGS") else []
    ns, rest = _parser().parse_known_args(extra + list(argv))
    for arg in rest:
        if arg.startswith("-"):
            raise UsageError(f"unrecognized option {arg!r}")
    if ns.help:
        raise SystemExit(_print_help())

    banned_irqs = []
    for value in ns.banirq:
        n = _strtoul(value, "--banirq")
        if n == _ULONG_MAX:
            raise UsageError(f"invalid --banirq value {value!r}")
        banned_irqs.append(n & 0xFFFFFFFF)
    powerthresh = None
    if ns.powerthresh is not None and not ns.powerthresh.startswith("off"):
        powerthresh = _strtoul(ns.powerthresh, "--powerthresh")
        if powerthresh == _ULONG_MAX:
            raise UsageError(f"invalid --powerthresh value {ns.powerthresh!r}")
    deepestcache = 2
    if ns.deepestcache is not None:
        deepestcache = _strtoul(ns.deepestcache, "--deepestcache")
        if deepestcache < 1 or deepestcache == _ULONG_MAX:
            raise UsageError(f"invalid --deepestcache value {ns.deepestcache!r}: must be >= 1")
    interval = 10
    if ns.interval is not None:
        interval = _strtoul(ns.interval, "--interval")
        if interval < 1 or interval > 2**31 - 1:
            raise UsageError(f"invalid --interval value {ns.interval!r}: must be >= 1")
    migrateval = 0 if ns.migrateval is None else _strtoul(ns.migrateval, "--migrateval")
    hintpolicy = HintPolicy.IGNORE if ns.hintpolicy is None else _hintpolicy(ns.hintpolicy)

    debug = ns.debug or "IRQBALANCE_DEBUG" in env
    settings = BalancerSettings(
        deepestcache=deepestcache,
        powerthresh=powerthresh,
        migrateval=migrateval,
        banned_irqs=tuple(banned_irqs),
        banmod=tuple(ns.banmod),
        hintpolicy=hintpolicy,
        banned_cpus_env=env.get("IRQBALANCE_BANNED_CPUS"),
        banned_cpulist_env=env.get("IRQBALANCE_BANNED_CPULIST"),
        hz=os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100,
    )
    return Options(
        oneshot=ns.oneshot or "IRQBALANCE_ONESHOT" in env,
        debug=debug,
        foreground=ns.foreground or debug or ns.journal or "INVOCATION_ID" in env,
        journal=ns.journal or "INVOCATION_ID" in env,
        version=ns.version,
        interval=interval,
        pidfile=ns.pid,
        policyscript=ns.policyscript,
        banscript=ns.banscript,
        sysroot=ns.sysroot,
        dry_run=ns.dry_run,
        output_format=ns.format,
        config=ns.config,
        restore=ns.restore,
        force=ns.force,
        settings=settings,
    )


HELP = f"""\
pyirqbalance {__version__} - distribute hardware interrupts across CPUs
(decisions compatible with irqbalance {IRQBALANCE_COMPAT_VERSION})

Usage: pyirqbalance [OPTION]...

irqbalance options:
  -o, --oneshot          balance once, {{interval}} seconds after start, then exit
  -d, --debug            debug output (irqbalance's messages and tree dump) to stderr
  -f, --foreground       do not daemonize
  -j, --journal          log for the systemd journal
  -i, --banirq=N         never touch IRQ N (repeatable)
  -m, --banmod=NAME      never touch IRQs whose driver or name contains NAME (repeatable)
  -p, --powerthresh=N|off  CPUs idle enough before one goes to power save (default off)
  -c, --deepestcache=N   cache index that defines cache domains (default 2: L2 on x86)
  -t, --interval=N       seconds between balancing passes (default 10)
  -e, --migrateval=N     also move IRQs when load imbalance / N exceeds them (default 0: off)
  -l, --policyscript=P   script (or directory of scripts) printing key=value policy per IRQ
  -s, --pid=FILE         pid file when daemonizing
  -V, --version          print the version
legacy options (irqbalance 1.0-1.4 semantics):
      --hintpolicy=exact|subset|ignore   use /proc/irq/N/affinity_hint (default ignore)
      --banscript=PATH   run PATH <sysfs path> <irq>; non-zero exit bans the IRQ
pyirqbalance options:
      --sysroot=DIR      read /proc and /sys under DIR (a captured or fake machine)
      --dry-run          read everything, write nothing, print what would be done
      --format=text|json output of --dry-run
      --config=FILE      YAML configuration (default /etc/pyirqbalance/pyirqbalance.yaml)
      --restore          write back the affinities found before pyirqbalance changed them
      --force            run even though irqbalance is running

Environment: IRQBALANCE_ONESHOT, IRQBALANCE_DEBUG, IRQBALANCE_BANNED_CPULIST (cpulist,
"-" bans nothing), IRQBALANCE_BANNED_CPUS (hex mask, deprecated), IRQBALANCE_ARGS.
Exit status: 0 success, 1 bad option, 2 bad configuration, 3 runtime failure.
"""


def _print_help() -> int:
    sys.stdout.write(HELP)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pyirqbalance`` command."""
    try:
        opts = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as err:
        sys.stderr.write(f"pyirqbalance: {err}\n")
        sys.stdout.write(USAGE)
        return 1
    if opts.version:
        sys.stdout.write(f"pyirqbalance version {__version__} (irqbalance {IRQBALANCE_COMPAT_VERSION} compatible)\n")
        return 0
    from .daemon import run  # the rest is only needed once the options are good

    return run(opts)
