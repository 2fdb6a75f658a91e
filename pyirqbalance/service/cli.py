"""Command line: irqbalance 1.9's options, the legacy ones still in scripts, and ours.

The parser is GNU ``getopt_long`` as irqbalance uses it: ``--opt=value`` and
``--opt value``, unambiguous prefixes (``--one``, ``--inter=5``), clustered
short options (``-of``, ``-t5``), arguments permuted and non-options
ignored, getopt's own error messages, then the usage text and exit status 1.
A prefix that irqbalance resolves keeps its meaning although pyirqbalance
adds options (``--f`` is still ``--foreground``, not ambiguous with
``--force``). Numbers are checked the way irqbalance's ``strtoul`` checks
do (digits required, trailing text ignored).

:func:`resolve` merges everything: command line > ``IRQBALANCE_ARGS``
(extra options, as if on the command line but below it) > environment
(``IRQBALANCE_ONESHOT``, ``IRQBALANCE_DEBUG``, ``INVOCATION_ID``,
``IRQBALANCE_BANNED_CPUS``, ``IRQBALANCE_BANNED_CPULIST``) > YAML file >
defaults. Repeatable options (``--banirq``, ``--banmod``) add to the file's
lists.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from .. import IRQBALANCE_COMPAT_VERSION, __version__
from ..engine.model import HintPolicy
from ..kernel.cnum import CNumber, c_int, scan_number, strtol, unsigned_value
from .config import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_RUN_DIR,
    DEFAULT_STATE_DIR,
    Config,
    ConfigError,
    Options,
    build_settings,
    check_api_exposure,
    check_banned_cpus_env,
    listen_address,
    load_config,
)
from .exits import EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, UsageError

if TYPE_CHECKING:
    from .daemon import Attach

__all__ = [
    "EXIT_CONFIG",
    "EXIT_OK",
    "EXIT_RUNTIME",
    "EXIT_USAGE",
    "HELP",
    "USAGE",
    "CommandLine",
    "UsageError",
    "main",
    "option_table",
    "parse_command_line",
    "resolve",
]

PROG = "pyirqbalance"

# Printed to stdout after a bad option (where irqbalance prints its usage text, which
# lists none of pyirqbalance's own options): where to look, as GNU tools say it.
USAGE = (
    f"Usage: {PROG} [OPTION]...  (irqbalance's options, and pyirqbalance's own)\n"
    f"Try '{PROG} --help' for more information.\n"
)

_ULONG_MAX = 2**64 - 1
_INT_MAX = 2**31 - 1


class _Opt(NamedTuple):
    long: str
    short: str | None
    takes_arg: bool
    #: An irqbalance option (1.9 or legacy): wins prefix ties against ours.
    irqbalance: bool
    repeatable: bool = False
    #: The argument's name and what the option does (--help, manual page, completion).
    arg: str = ""
    help: str = ""
    #: irqbalance 1.0-1.4 only (listed apart in --help).
    legacy: bool = False


_OPTIONS = (
    _Opt("oneshot", "o", False, True,
         help="wait --interval seconds, balance once, exit"),
    _Opt("debug", "d", False, True,
         help="debug messages and the topology dump after each pass, to stderr; "
              "implies --foreground"),
    _Opt("foreground", "f", False, True, help="do not detach from the terminal"),
    _Opt("journal", "j", False, True,
         help="log to the systemd journal; implies --foreground"),
    _Opt("version", "V", False, True, help="print the version and exit"),
    _Opt("banirq", "i", True, True, repeatable=True, arg="N",
         help="never move IRQ N (repeatable)"),
    _Opt("powerthresh", "p", True, True, arg="N|off",
         help="idle CPUs needed before one is put into power save (default off)"),
    _Opt("banmod", "m", True, True, repeatable=True, arg="NAME",
         help="never move IRQs whose driver or name contains NAME (repeatable)"),
    _Opt("deepestcache", "c", True, True, arg="N",
         help="cache level that defines cache domains (at least 1, default 2)"),
    _Opt("policyscript", "l", True, True, arg="PATH",
         help='script, or directory of scripts, run as "PATH <sysfs path> <irq>" for every '
              "IRQ; prints ban=, balance_level=, numa_node=, hintpolicy= lines"),
    _Opt("pid", "s", True, True, arg="FILE",
         help="write the process id to FILE (a file naming a live process is kept)"),
    _Opt("interval", "t", True, True, arg="N",
         help="seconds between passes (at least 1, default 10)"),
    _Opt("migrateval", "e", True, True, arg="N",
         help="move an IRQ only if that cuts the load gap by 1/N (default 0: off)"),
    # irqbalance 1.0-1.4 (irqbalance.c ``parse_command_line`` then)
    _Opt("hintpolicy", None, True, True, arg="exact|subset|ignore", legacy=True,
         help="legacy: use /proc/irq/N/affinity_hint (any prefix works, an empty value "
              "means exact; default ignore)"),
    _Opt("banscript", "b", True, True, arg="PATH", legacy=True,
         help='legacy: run "PATH <sysfs path> <irq>" for PCI IRQs; a non-zero exit bans'),
    # pyirqbalance's own
    _Opt("help", None, False, False, help="print the full help and exit"),
    _Opt("sysroot", None, True, False, arg="DIR",
         help="read DIR/proc and DIR/sys (a captured or fake machine); state and run "
              "files go inside DIR too"),
    _Opt("dry-run", None, False, False,
         help="read everything, write nothing, do not wait; print what would be done"),
    _Opt("format", None, True, False, arg="text|json",
         help="output of --dry-run (json: one object on stdout)"),
    _Opt("config", None, True, False, arg="FILE",
         help=f"YAML configuration (default {DEFAULT_CONFIG_PATH}, optional)"),
    _Opt("restore", None, False, False,
         help="write back the affinities found before the first change, exit"),
    _Opt("force", None, False, False,
         help="start although an irqbalance process is running"),
    _Opt("api-listen", None, True, False, arg="HOST:PORT",
         help="serve the REST API there, with /metrics and the history store unless the "
              "YAML turns them off (api.listen)"),
    _Opt("placement", None, True, False, arg="irqbalance|balanced",
         help="irqbalance's placement (default), or one that lowers the busiest CPU's "
              "interrupt time with few moves (docs/placement.md)"),
)
_BY_LONG = {o.long: o for o in _OPTIONS}
_BY_SHORT = {o.short: o for o in _OPTIONS if o.short}


def option_table() -> tuple[_Opt, ...]:
    """Every option with its argument name and description (manual page, completion)."""
    return _OPTIONS


class CommandLine(NamedTuple):
    """The options given, as text: ``values`` (last one wins), ``lists`` (repeatable)."""

    values: dict[str, str | bool]
    lists: dict[str, tuple[str, ...]]

    def get(self, name: str, default=None):
        return self.values.get(name, default)


def _lookup_long(name: str) -> _Opt:
    if name in _BY_LONG:
        return _BY_LONG[name]
    matches = [o for o in _OPTIONS if o.long.startswith(name)] if name else []
    if not matches:
        raise UsageError(f"unrecognized option '--{name}'")
    ours = [o for o in matches if o.irqbalance]
    if len(matches) == 1:
        return matches[0]
    if len(ours) == 1:
        return ours[0]
    names = " ".join(f"'--{o.long}'" for o in matches)
    raise UsageError(f"option '--{name}' is ambiguous; possibilities: {names}")


def _getopt(args: Sequence[str]) -> list[tuple[_Opt, str | None]]:
    """getopt_long in permute mode: (option, argument) pairs; non-options are dropped."""
    out: list[tuple[_Opt, str | None]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            opt = _lookup_long(name)
            if opt.takes_arg and not eq:
                if i >= len(args):
                    raise UsageError(f"option '--{opt.long}' requires an argument")
                value = args[i]
                i += 1
            elif not opt.takes_arg and eq:
                raise UsageError(f"option '--{opt.long}' doesn't allow an argument")
            out.append((opt, value if opt.takes_arg else None))
        elif arg.startswith("-") and arg != "-":
            k = 1
            while k < len(arg):
                short = _BY_SHORT.get(arg[k])
                if short is None:
                    raise UsageError(f"invalid option -- '{arg[k]}'")
                opt = short
                k += 1
                if not opt.takes_arg:
                    out.append((opt, None))
                    continue
                if k < len(arg):
                    value = arg[k:]
                elif i < len(args):
                    value = args[i]
                    i += 1
                else:
                    raise UsageError(f"option requires an argument -- '{opt.short}'")
                out.append((opt, value))
                break
        # anything else is a non-option argument, which irqbalance ignores
    return out


def parse_command_line(
    argv: Sequence[str], environ: Mapping[str, str] | None = None
) -> CommandLine:
    """``IRQBALANCE_ARGS`` then ``argv`` through getopt (raises UsageError)."""
    env = os.environ if environ is None else environ
    pairs: list[tuple[_Opt, str | None]] = []
    extra = env.get("IRQBALANCE_ARGS")
    if extra:
        import shlex  # deferred: only IRQBALANCE_ARGS needs it (start-up cost)

        try:
            pairs += _getopt(shlex.split(extra))
            for opt, value in pairs:  # checked here so that the message names the variable
                if opt.long in _VALUE_CHECKS:
                    _VALUE_CHECKS[opt.long](value or "")
        except (UsageError, ValueError) as err:
            raise UsageError(f"IRQBALANCE_ARGS={extra!r}: {err}") from None
    pairs += _getopt(list(argv))
    values: dict[str, str | bool] = {}
    lists: dict[str, tuple[str, ...]] = {}
    for opt, value in pairs:
        if opt.repeatable:
            lists[opt.long] = lists.get(opt.long, ()) + (value or "",)
        else:
            values[opt.long] = True if value is None else value
    return CommandLine(values, lists)


# --------------------------------------------------------------------------
# irqbalance's number checks (irqbalance.c ``parse_command_line``)
# --------------------------------------------------------------------------


def _number(text: str, option: str) -> CNumber:
    """What C ``strto*l`` reads: blanks, a sign, digits; the rest ignored."""
    number = scan_number(text)
    if not number.found:
        raise UsageError(f"invalid --{option} value {text!r}: a number is required")
    return number


def _strtoul(text: str, option: str) -> int:
    """C ``strtoul``: out of range reads ULONG_MAX, a minus sign wraps around."""
    number = _number(text, option)
    return unsigned_value(number.negative, number.magnitude)


def _strtol(text: str, option: str) -> int:
    """C ``strtol``: clamped to LONG_MIN..LONG_MAX."""
    _number(text, option)
    return strtol(text)[0]


def _banirq(text: str) -> int:
    value = _strtoul(text, "banirq")
    if value == _ULONG_MAX:
        raise UsageError(f"invalid --banirq value {text!r}")
    return c_int(value)  # cast to int, as irqbalance does


def _powerthresh(text: str) -> int | None:
    if text.startswith("off"):
        return None
    value = _strtoul(text, "powerthresh")
    if value == _ULONG_MAX:
        raise UsageError(f"invalid --powerthresh value {text!r}")
    return value


def _deepestcache(text: str) -> int:
    value = _strtoul(text, "deepestcache")
    if value < 1 or value == _ULONG_MAX:
        raise UsageError(f"invalid --deepestcache value {text!r}: must be 1 or more")
    return value


def _interval(text: str) -> int:
    value = _strtol(text, "interval")
    if value < 1:
        raise UsageError(f"invalid --interval value {text!r}: must be 1 or more")
    if value > _INT_MAX:
        raise UsageError(f"invalid --interval value {text!r}: must be at most {_INT_MAX}")
    return value


def _hintpolicy(text: str) -> HintPolicy:
    """irqbalance 1.0-1.1: the argument is a *prefix* (so the empty string means exact)."""
    for policy in (HintPolicy.EXACT, HintPolicy.SUBSET, HintPolicy.IGNORE):
        if policy.value.startswith(text):
            return policy
    raise UsageError(f"invalid --hintpolicy value {text!r}: use exact, subset or ignore")


def _placement(text: str) -> str:
    if text not in ("irqbalance", "balanced"):
        raise UsageError(f"invalid --placement value {text!r}: use irqbalance or balanced")
    return text


def _format(text: str) -> str:
    if text not in ("text", "json"):
        raise UsageError(f"invalid --format value {text!r}: use text or json")
    return text


_VALUE_CHECKS = {
    "banirq": _banirq,
    "powerthresh": _powerthresh,
    "deepestcache": _deepestcache,
    "interval": _interval,
    "migrateval": lambda text: _strtoul(text, "migrateval"),
    "hintpolicy": _hintpolicy,
    "format": _format,
    "placement": _placement,
}


# --------------------------------------------------------------------------
# resolution
# --------------------------------------------------------------------------


def config_path(cmd: CommandLine) -> tuple[str, bool]:
    """The config file to read and whether it was asked for (then it must exist)."""
    given = cmd.get("config")
    return (str(given), True) if given is not None else (DEFAULT_CONFIG_PATH, False)


def read_config(path: str, required: bool) -> Config:
    """The file named by ``--config``, else the default file if present (ConfigError)."""
    if not required and not os.path.exists(path):
        return Config()
    return load_config(path)


def resolve(argv: Sequence[str], environ: Mapping[str, str], config: Config) -> Options:
    """Command line > IRQBALANCE_ARGS > environment > ``config`` > defaults.

    Raises UsageError (exit 1) for a bad option and ConfigError (exit 2) for a
    bad environment value.
    """
    cmd = parse_command_line(argv, environ)
    check_banned_cpus_env(environ)
    bal = config.balancing
    v = cmd.values
    if "interval" in v:
        bal = bal._replace(interval=_interval(str(v["interval"])))
    if "deepestcache" in v:
        bal = bal._replace(deepestcache=_deepestcache(str(v["deepestcache"])))
    if "powerthresh" in v:
        bal = bal._replace(powerthresh=_powerthresh(str(v["powerthresh"])))
    if "migrateval" in v:
        bal = bal._replace(migrateval=_strtoul(str(v["migrateval"]), "migrateval"))
    if "hintpolicy" in v:
        bal = bal._replace(hintpolicy=_hintpolicy(str(v["hintpolicy"])))
    if "placement" in v:
        bal = bal._replace(placement=_placement(str(v["placement"])))
    bal = bal._replace(
        banned_irqs=bal.banned_irqs + tuple(_banirq(t) for t in cmd.lists.get("banirq", ())),
        banned_modules=bal.banned_modules + cmd.lists.get("banmod", ()),
    )

    d = config.daemon
    debug = bool(v.get("debug")) or "IRQBALANCE_DEBUG" in environ or d.debug
    journal = bool(v.get("journal")) or "INVOCATION_ID" in environ or d.journal
    fmt = _format(str(v.get("format", "text")))
    sysroot = str(v.get("sysroot", "/"))
    if not sysroot:
        raise UsageError("invalid --sysroot value '': a directory is required")
    live = os.path.realpath(sysroot) == "/"
    # Under --sysroot, state and sockets live inside the tree unless set in the file.
    state_dir = d.state_dir or (
        DEFAULT_STATE_DIR if live else os.path.join(sysroot, DEFAULT_STATE_DIR.lstrip("/"))
    )
    run_dir = d.run_dir or (
        DEFAULT_RUN_DIR if live else os.path.join(sysroot, DEFAULT_RUN_DIR.lstrip("/"))
    )
    hooks = config.hooks
    if "api-listen" in v:
        # --api-listen=HOST:PORT turns the REST API on (the YAML's api section otherwise)
        try:
            listen = listen_address("api.listen", str(v["api-listen"]))
        except ConfigError as err:
            raise UsageError(f"invalid --api-listen value {v['api-listen']!r}: {err}") from None
        config = config._replace(api=config.api._replace(enabled=True, listen=listen))
    check_api_exposure(config.api)
    return Options(
        balancing=bal,
        settings=build_settings(bal, environ),
        oneshot=bool(v.get("oneshot")) or "IRQBALANCE_ONESHOT" in environ or d.oneshot,
        debug=debug,
        foreground=bool(v.get("foreground")) or debug or journal or d.foreground,
        journal=journal,
        pidfile=str(v["pid"]) if "pid" in v else d.pid_file,
        policyscript=str(v["policyscript"]) if "policyscript" in v else hooks.policyscript,
        banscript=str(v["banscript"]) if "banscript" in v else hooks.banscript,
        hook_timeout=hooks.timeout_s,
        sysroot=sysroot,
        dry_run=bool(v.get("dry-run")),
        output_format=fmt,
        config_path=config_path(cmd)[0],
        restore=bool(v.get("restore")),
        force=bool(v.get("force")),
        state_dir=state_dir,
        run_dir=run_dir,
        config=config,
    )


def _help_options() -> str:
    """The option lines of ``--help``, from the option table (as the manual page is)."""
    groups = (
        ("irqbalance options:", [o for o in _OPTIONS if o.irqbalance and not o.legacy]),
        ("legacy options (irqbalance 1.0-1.4 semantics):", [o for o in _OPTIONS if o.legacy]),
        (f"{PROG} options:", [o for o in _OPTIONS if not o.irqbalance]),
    )
    lines = []
    for title, opts in groups:
        lines.append(title)
        for o in opts:
            tag = (f"-{o.short}, " if o.short else "    ") + f"--{o.long}"
            tag = f"  {tag}={o.arg}" if o.arg else f"  {tag}"
            text = o.help.removeprefix("legacy: ")
            first = tag + "  " if len(tag) > _HELP_COLUMN - 2 else tag.ljust(_HELP_COLUMN)
            lines += textwrap.wrap(text, width=_HELP_WIDTH, initial_indent=first,
                                   subsequent_indent=" " * _HELP_COLUMN)
    return "\n".join(lines)


#: Where --help's option descriptions start, and its line width.
_HELP_COLUMN, _HELP_WIDTH = 25, 92


HELP = f"""\
{PROG} {__version__} - distribute hardware interrupts across CPUs
(decisions compatible with irqbalance {IRQBALANCE_COMPAT_VERSION}; a drop-in replacement)

Usage: {PROG} [OPTION]...

Every pass (each --interval seconds) {PROG} reads /proc/interrupts and /proc/stat,
computes the interrupt load of every CPU, cache domain, package and NUMA node, and moves
IRQs away from busy CPUs by writing /proc/irq/N/smp_affinity, as irqbalance does.

{_help_options()}

Precedence: command line > IRQBALANCE_ARGS > environment > configuration file > defaults.

Environment:
  IRQBALANCE_ONESHOT     set (any value): --oneshot
  IRQBALANCE_DEBUG       set (any value): --debug
  IRQBALANCE_BANNED_CPULIST  CPUs never given IRQs, e.g. "0-1,8"; "-" bans none (replaces
                         the default ban of isolated and nohz_full CPUs)
  IRQBALANCE_BANNED_CPUS hex CPU mask, deprecated form of the above (wins over it)
  IRQBALANCE_ARGS        extra options, read as if given before the command line's
  INVOCATION_ID          set by systemd: --journal --foreground
  NOTIFY_SOCKET, WATCHDOG_USEC  systemd Type=notify: READY=1, STATUS=, WATCHDOG=1

Signals:
  SIGHUP   reload the configuration file and rescan the topology
  SIGTERM, SIGINT, SIGUSR2   finish the current pass and exit 0
  SIGUSR1  log the topology tree with the IRQs on it

Files:
  {DEFAULT_CONFIG_PATH}   configuration (every key documented in the shipped copy)
  {DEFAULT_STATE_DIR}/original-affinity.json   affinities before the first change
  {DEFAULT_RUN_DIR}/irqbalance<pid>.sock   control socket (irqbalance-ui)
  {DEFAULT_RUN_DIR}/pyirqbalance.lock   one daemon at a time

Exit status: 0 success; 1 bad command line; 2 bad configuration or environment value;
3 cannot run (another balancer is running, kernel files unreadable, restore incomplete).
"""


def _fail(code: int, message: str, usage: bool = False) -> int:
    sys.stderr.write(f"{PROG}: {message}\n")
    if usage:
        sys.stdout.write(USAGE)
    return code


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None, *,
         attach: Attach | None = None) -> int:
    """The ``pyirqbalance`` command line; returns the exit status. ``attach`` adds the
    services around a daemon's loop (:func:`pyirqbalance.app.main` passes the API's)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ if environ is None else environ)
    try:
        cmd = parse_command_line(argv, env)
    except UsageError as err:
        return _fail(EXIT_USAGE, str(err), usage=True)
    if cmd.get("help"):
        sys.stdout.write(HELP)
        return EXIT_OK
    if cmd.get("version"):
        sys.stdout.write(
            f"{PROG} version {__version__} (irqbalance {IRQBALANCE_COMPAT_VERSION} compatible)\n"
        )
        return EXIT_OK
    path, required = config_path(cmd)
    path = os.path.abspath(path)  # a daemon reloads it after chdir("/")
    try:
        opts = resolve(argv, env, read_config(path, required))
    except UsageError as err:
        return _fail(EXIT_USAGE, str(err), usage=True)
    except ConfigError as err:
        return _fail(EXIT_CONFIG, str(err))

    def reload() -> Options:
        """SIGHUP: the same command line and environment with the file read again."""
        return resolve(argv, env, read_config(path, required))

    from .daemon import run  # the rest is only needed once the options are good

    return run(opts, reload=reload, environ=env, attach=attach)
