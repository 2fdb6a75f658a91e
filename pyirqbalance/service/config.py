"""The YAML configuration file and the resolved options of one run.

``etc/pyirqbalance.yaml`` documents every key. :func:`load_config` reads a
file with ``yaml.safe_load`` and validates it completely before anything
starts: a wrong type, a value out of range or an unknown key (with a
did-you-mean) raises :class:`ConfigError` with one line naming the key, the
bad value and what is allowed, so a bad file never gives a half-configured
daemon. :class:`Options` is what the command line, the environment and the
file resolve to (``cli.resolve``); precedence is command line > environment
> file > built-in defaults.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ..engine.model import BalancerSettings, HintPolicy
from ..errors import PyirqbalanceError
from ..kernel.cpumask import MaskError, parse_cpulist, parse_mask

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_RUN_DIR",
    "DEFAULT_STATE_DIR",
    "KEY_DESCRIPTIONS",
    "ApiConfig",
    "BalancingConfig",
    "Config",
    "ConfigError",
    "DaemonConfig",
    "ForeignWritesConfig",
    "HistorySection",
    "HooksConfig",
    "KeyDoc",
    "MetricsConfig",
    "Options",
    "SocketConfig",
    "build_settings",
    "check_api_exposure",
    "check_banned_cpus_env",
    "key_docs",
    "load_config",
    "parse_config",
]

DEFAULT_CONFIG_PATH = "/etc/pyirqbalance/pyirqbalance.yaml"
DEFAULT_STATE_DIR = "/var/lib/pyirqbalance"
#: irqbalance's run directory: the control socket lives here (irqbalance-ui finds it there).
DEFAULT_RUN_DIR = "/run/irqbalance"

_INT_MAX = 2**31 - 1
_ULONG_MAX = 2**64 - 1

#: Largest configuration file read (bytes); the shipped one is 4 KiB.
MAX_FILE_SIZE = 1 << 20
#: Deepest nesting of lists and mappings (the schema needs 3).
MAX_DEPTH = 32
#: Most values a file may stand for once its aliases are expanded.
MAX_NODES = 100_000
#: Characters of a bad value shown in a message.
SHOWN = 64


class ConfigError(PyirqbalanceError):
    """A bad configuration value (exit status 2); the message is one line."""


# --------------------------------------------------------------------------
# the sections (defaults are irqbalance's)
# --------------------------------------------------------------------------


class BalancingConfig(NamedTuple):
    """``balancing:`` -- what irqbalance's options set."""

    interval: int = 10
    deepestcache: int = 2
    powerthresh: int | None = None
    migrateval: int = 0
    hintpolicy: HintPolicy = HintPolicy.IGNORE
    banned_irqs: tuple[int, ...] = ()
    banned_modules: tuple[str, ...] = ()
    #: Like IRQBALANCE_BANNED_CPULIST (the variable wins when both are set).
    banned_cpulist: str | None = None
    numa: bool = True
    #: "irqbalance" (its decisions, bit for bit) or "balanced" (docs/placement.md).
    placement: str = "irqbalance"
    #: balanced: a move must lower the busiest CPU's interrupt time by more than this share.
    placement_min_gain: float = 0.05
    #: balanced: most IRQs moved in one pass.
    placement_max_moves: int = 16


class DaemonConfig(NamedTuple):
    """``daemon:`` -- how the process runs."""

    oneshot: bool = False
    foreground: bool = False
    debug: bool = False
    journal: bool = False
    pid_file: str | None = None
    #: None: /var/lib/pyirqbalance, or inside the --sysroot tree.
    state_dir: str | None = None
    #: None: /run/irqbalance, or inside the --sysroot tree.
    run_dir: str | None = None


class HooksConfig(NamedTuple):
    """``hooks:`` -- the per-IRQ policy script and the legacy banscript."""

    policyscript: str | None = None
    banscript: str | None = None
    timeout_s: float = 2.0


class HistorySection(NamedTuple):
    """``history:`` -- the SQLite record of interrupt counts."""

    #: None: on when the API is on.
    enabled: bool | None = None
    path: str = "/var/lib/pyirqbalance/history.sqlite"
    retention_days: float = 30
    resolution_s: float = 60


class ApiConfig(NamedTuple):
    """``api:`` -- the HTTP API (off unless enabled)."""

    enabled: bool = False
    listen: str = "127.0.0.1:9199"
    unix_socket: str | None = None
    token_file: str | None = None
    #: Writes without a token from peers that are uid 0 on this host.
    local_root_writes: bool = True
    #: Serve reads on an address other hosts can reach (refused otherwise).
    allow_remote_reads: bool = False


class MetricsConfig(NamedTuple):
    """``metrics:`` -- Prometheus metrics, served by the API at /metrics."""

    #: None: on when the API is on.
    enabled: bool | None = None
    per_irq_limit: int = 256


class ForeignWritesConfig(NamedTuple):
    """``foreign_writes:`` -- smp_affinity changes something else made (docs/monitoring.md)."""

    enabled: bool = True
    max_changes: int = 3
    window_s: float = 3600


class SocketConfig(NamedTuple):
    """``socket:`` -- irqbalance's control socket (irqbalance-ui, scripts)."""

    enabled: bool = True


class Config(NamedTuple):
    """The whole file; every section defaults to irqbalance's behaviour."""

    balancing: BalancingConfig = BalancingConfig()
    daemon: DaemonConfig = DaemonConfig()
    hooks: HooksConfig = HooksConfig()
    history: HistorySection = HistorySection()
    api: ApiConfig = ApiConfig()
    metrics: MetricsConfig = MetricsConfig()
    socket: SocketConfig = SocketConfig()
    foreign_writes: ForeignWritesConfig = ForeignWritesConfig()


# --------------------------------------------------------------------------
# value checkers: (key, value) -> typed value, or ConfigError naming both
# --------------------------------------------------------------------------

Check = Callable[[str, Any], Any]


class _Allowing:
    """A value check that can say what it accepts (its error message, the manual page)."""

    __slots__ = ("allowed", "check")

    def __init__(self, allowed: str, check: Check) -> None:
        self.allowed = allowed
        self.check = check

    def __call__(self, key: str, value: Any) -> Any:
        return self.check(key, value)


def _allows(allowed: str) -> Callable[[Check], Check]:
    return lambda check: _Allowing(allowed, check)


def allowed_values(check: Check) -> str:
    """What a key's check accepts, in words ("" when it cannot say)."""
    return check.allowed if isinstance(check, _Allowing) else ""


def _shown(value: Any) -> str:
    """A short, escaped prefix of a value's repr (never the repr of a whole alias bomb)."""
    import reprlib  # deferred: only a bad file needs it (start-up cost)

    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxdict, r.maxstring, r.maxother = 2, 4, 4, SHOWN, SHOWN
    text = r.repr(value)
    cut = text[:SHOWN].encode("ascii", "backslashreplace").decode("ascii")
    return cut + ("..." if len(text) > SHOWN else "")


def _bad(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{key}: {_shown(value)} is not allowed ({allowed})")


def _int(lo: int, hi: int) -> Check:
    allowed = f"an integer from {lo} to {hi}"

    def check(key: str, value: Any) -> int:
        # YAML booleans are ints in Python: "interval: yes" must not read as 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(key, value, allowed)
        if not lo <= value <= hi:
            raise ConfigError(f"{key}: {value} is out of range (allowed {lo} to {hi})")
        return value

    return _Allowing(allowed, check)


def _number(lo: float, hi: float) -> Check:
    allowed = f"a number from {lo:g} to {hi:g}"

    def check(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(key, value, allowed)
        if not lo <= value <= hi:
            raise ConfigError(f"{key}: {value} is out of range (allowed {lo:g} to {hi:g})")
        return float(value)

    return _Allowing(allowed, check)


@_allows("true or false")
def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad(key, value, "true or false")
    return value


@_allows("a non-empty string")
def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(key, value, "a non-empty string")
    return value


@_allows("a non-empty path without NUL bytes")
def _path(key: str, value: Any) -> str:
    """A file system path: a non-empty string without NUL bytes."""
    text = _text(key, value)
    if "\0" in text:
        raise ConfigError(f"{key}: {_shown(text)} contains a NUL byte (not a usable path)")
    return text


def _optional(check: Check) -> Check:
    return _Allowing(
        f"{allowed_values(check) or 'a value'}, or null",
        lambda key, value: None if value is None else check(key, value),
    )


@_allows(f"off (or null), or an integer from 0 to {_ULONG_MAX - 1}")
def _powerthresh(key: str, value: Any) -> int | None:
    # YAML 1.1 reads a bare "off" as false; both spellings mean "off".
    if value is None or value is False or value == "off":
        return None
    return _int(0, _ULONG_MAX - 1)(key, value)


@_allows("exact, subset or ignore")
def _hintpolicy(key: str, value: Any) -> HintPolicy:
    try:
        return HintPolicy(value)
    except ValueError:
        raise _bad(key, value, "exact, subset or ignore") from None


@_allows("irqbalance or balanced")
def _placement(key: str, value: Any) -> str:
    if value not in ("irqbalance", "balanced"):
        raise _bad(key, value, "irqbalance or balanced")
    return str(value)


@_allows(f"a list of IRQ numbers from 0 to {_INT_MAX}")
def _irq_list(key: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise _bad(key, value, "a list of IRQ numbers")
    check = _int(0, _INT_MAX)
    return tuple(check(f"{key}[{i}]", v) for i, v in enumerate(value))


@_allows("a list of non-empty strings")
def _text_list(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _bad(key, value, "a list of strings")
    return tuple(_text(f"{key}[{i}]", v) for i, v in enumerate(value))


@_allows('a CPU list such as "0-3,8", or "-" for none')
def _cpulist(key: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # "banned_cpulist: 3" is a YAML integer
    if not isinstance(value, str):
        raise _bad(key, value, 'a CPU list such as "0-3,8", or "-" for none')
    if value.strip() != "-":
        try:
            parse_cpulist(value)
        except MaskError as err:
            raise ConfigError(f"{key}: {_shown(value)} is not a CPU list ({err})") from None
    return value


@_allows("HOST:PORT with a port from 1 to 65535")
def listen_address(key: str, value: Any) -> str:
    """``HOST:PORT`` check shared by the YAML and ``--api-listen``."""
    host, colon, port = str(value).rpartition(":")
    if not isinstance(value, str) or not colon or not host or not port.isdigit() or not (
        1 <= int(port) <= 65535
    ):
        raise _bad(key, value, "HOST:PORT with a port from 1 to 65535")
    return value


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (``127.0.0.0/8``, ``::1``)."""
    import ipaddress  # deferred: only the API needs it (start-up cost)

    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_api_exposure(api: ApiConfig) -> None:
    """Refuse an API listening beyond loopback unless ``api.allow_remote_reads`` says so.

    Reads need no token: on a reachable address anyone on the network could
    read the machine's interrupt figures and topology.
    """
    if not api.enabled or api.allow_remote_reads:
        return
    host = api.listen.rpartition(":")[0]
    if not is_loopback(host):
        raise ConfigError(
            f"api.listen: {_shown(api.listen)} is reachable from other hosts and reads need no "
            "token; listen on 127.0.0.1 or set api.allow_remote_reads: true"
        )


_SCHEMA: dict[str, tuple[Any, dict[str, Check]]] = {
    "balancing": (BalancingConfig, {
        "interval": _int(1, _INT_MAX),
        "deepestcache": _int(1, _ULONG_MAX - 1),
        "powerthresh": _powerthresh,
        "migrateval": _int(0, _ULONG_MAX),
        "hintpolicy": _hintpolicy,
        "banned_irqs": _irq_list,
        "banned_modules": _text_list,
        "banned_cpulist": _optional(_cpulist),
        "numa": _bool,
        "placement": _placement,
        "placement_min_gain": _number(0, 0.9),
        "placement_max_moves": _int(1, 1_000_000),
    }),
    "daemon": (DaemonConfig, {
        "oneshot": _bool,
        "foreground": _bool,
        "debug": _bool,
        "journal": _bool,
        "pid_file": _optional(_path),
        "state_dir": _optional(_path),
        "run_dir": _optional(_path),
    }),
    "hooks": (HooksConfig, {
        "policyscript": _optional(_path),
        "banscript": _optional(_path),
        "timeout_s": _number(0.01, 3600),
    }),
    "history": (HistorySection, {
        "enabled": _optional(_bool),
        "path": _path,
        "retention_days": _number(0.01, 36500),
        "resolution_s": _number(1, 86400),
    }),
    "api": (ApiConfig, {
        "enabled": _bool,
        "listen": listen_address,
        "unix_socket": _optional(_path),
        "token_file": _optional(_path),
        "local_root_writes": _bool,
        "allow_remote_reads": _bool,
    }),
    "metrics": (MetricsConfig, {
        "enabled": _optional(_bool),
        "per_irq_limit": _int(0, 1_000_000),
    }),
    "socket": (SocketConfig, {
        "enabled": _bool,
    }),
    "foreign_writes": (ForeignWritesConfig, {
        "enabled": _bool,
        "max_changes": _int(0, 1_000_000),
        "window_s": _number(1, 31_536_000),
    }),
}


def _unknown(key: str, known: list[str]) -> ConfigError:
    import difflib  # deferred: only a bad file needs it (start-up cost)

    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
    return ConfigError(f"unknown key {_shown(key)}{hint}")


def parse_config(data: Any) -> Config:
    """Validate the ``yaml.safe_load`` result of a config file (None = empty file)."""
    if data is None:
        return Config()
    if not isinstance(data, dict):
        raise ConfigError(f"the file must be a mapping of sections, not {type(data).__name__}")
    sections: dict[str, Any] = {}
    for name, body in data.items():
        if name not in _SCHEMA:
            raise _unknown(str(name)[:SHOWN * 2], list(_SCHEMA))
        cls, checks = _SCHEMA[name]
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ConfigError(f"{name}: must be a mapping of keys, not {_shown(body)}")
        values = {}
        for key, value in body.items():
            if key not in checks:
                raise _unknown(f"{name}.{str(key)[:SHOWN * 2]}", list(checks))
            values[key] = checks[key](f"{name}.{key}", value)
        sections[name] = cls(**values)
    return Config(**sections)


def read_config_text(path: str | os.PathLike[str]) -> str:
    """The file's text: a regular file of at most :data:`MAX_FILE_SIZE` bytes, UTF-8."""
    import stat  # deferred (start-up cost)

    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise ConfigError(f"{path}: {err.strerror or err}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):  # before fdopen, which refuses a directory itself
        os.close(fd)
        raise ConfigError(f"{path}: not a regular file")
    with os.fdopen(fd, "rb") as f:
        if st.st_size > MAX_FILE_SIZE:
            raise ConfigError(f"{path}: {st.st_size} bytes, more than the {MAX_FILE_SIZE} allowed")
        try:
            data = f.read(MAX_FILE_SIZE + 1)
        except OSError as err:
            raise ConfigError(f"{path}: {err.strerror or err}") from None
    if len(data) > MAX_FILE_SIZE:
        raise ConfigError(f"{path}: more than the {MAX_FILE_SIZE} bytes allowed")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason})") from None


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a config file; ConfigError (one line) on any problem."""
    from .yamlload import YamlLimitError, safe_load_limited  # deferred: PyYAML is costly

    text = read_config_text(path)
    try:
        data = safe_load_limited(text, max_depth=MAX_DEPTH, max_nodes=MAX_NODES)
    except YamlLimitError as err:
        raise ConfigError(f"{path}: {err}") from None
    try:
        return parse_config(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def config_keys() -> dict[str, tuple[str, ...]]:
    """Every section and its keys (documentation and tests)."""
    return {name: tuple(cls._fields) for name, (cls, _) in _SCHEMA.items()}


#: What each key does, for the manual page pyirqbalance.yaml(5).
KEY_DESCRIPTIONS = {
    "balancing.interval": "Seconds between balancing passes (--interval, -t).",
    "balancing.deepestcache": "Cache level whose sharing defines a cache domain "
                              "(--deepestcache, -c).",
    "balancing.powerthresh": "Idle CPUs needed before one CPU is put into power save "
                             "(--powerthresh, -p).",
    "balancing.migrateval": "Move an IRQ only when that cuts the load gap by at least 1/N; "
                            "0 is off (--migrateval, -e).",
    "balancing.hintpolicy": "Use /proc/irq/N/affinity_hint (legacy --hintpolicy).",
    "balancing.banned_irqs": "IRQ numbers never moved (--banirq, -i, adds to them).",
    "balancing.banned_modules": "IRQs whose driver or /proc/interrupts name contains one of "
                                "these are never moved (--banmod, -m, adds to them).",
    "balancing.banned_cpulist": "CPUs that never get IRQs; null means the kernel's isolated "
                                "and nohz_full CPUs. IRQBALANCE_BANNED_CPULIST and "
                                "IRQBALANCE_BANNED_CPUS override it.",
    "balancing.numa": "Use the NUMA nodes from sysfs; false gives one pseudo node.",
    "balancing.placement": "Where IRQs go (--placement): irqbalance = irqbalance 1.9.2's "
                           "decisions; balanced = lower the busiest CPU's interrupt time with "
                           "few moves.",
    "balancing.placement_min_gain": "balanced: a move must lower the busiest CPU's interrupt "
                                    "time by more than this share of it.",
    "balancing.placement_max_moves": "balanced: at most this many IRQs moved in one pass "
                                     "(IRQs on CPUs they may no longer use move anyway).",
    "daemon.oneshot": "One pass after interval seconds, then exit (--oneshot, "
                      "IRQBALANCE_ONESHOT).",
    "daemon.foreground": "Stay attached to the terminal (--foreground); under systemd "
                         "always.",
    "daemon.debug": "Debug messages and the topology dump after each pass (--debug, "
                    "IRQBALANCE_DEBUG).",
    "daemon.journal": "Log to the systemd journal (--journal; automatic under systemd).",
    "daemon.pid_file": "Pid file (--pid, -s); null is none.",
    "daemon.state_dir": "Where the affinities found before the first change are kept for "
                        "--restore; null is /var/lib/pyirqbalance (inside the tree with "
                        "--sysroot).",
    "daemon.run_dir": "Control socket and instance lock; null is /run/irqbalance (inside "
                      "the tree with --sysroot), where irqbalance-ui looks.",
    "hooks.policyscript": "Script, or directory of scripts, run for every IRQ at each "
                          "topology build (--policyscript, -l); null is none.",
    "hooks.banscript": "Legacy: script run for PCI IRQs; a non-zero exit bans the IRQ "
                       "(--banscript); null is none.",
    "hooks.timeout_s": "Seconds a hook may run before its process group is killed.",
    "history.enabled": "Record interrupt counts in SQLite; null is on whenever the API is "
                       "on.",
    "history.path": "The history database.",
    "history.retention_days": "Days of readings kept.",
    "history.resolution_s": "Shortest spacing of recorded readings in seconds (passes in "
                            "between are summed).",
    "api.enabled": "Serve the HTTP API; it turns history and metrics on unless they are "
                   "set to false.",
    "api.listen": "Address the HTTP API listens on (--api-listen).",
    "api.unix_socket": "Also (or instead) listen on this unix socket; null is none.",
    "api.token_file": "File holding the bearer token that write requests must present; "
                      "null is none (then only root on this host may write).",
    "api.local_root_writes": "Let a peer that is uid 0 on this host change affinities "
                             "without the token (unix socket: SO_PEERCRED; loopback TCP: "
                             "the owner of its socket in /proc/net/tcp and tcp6).",
    "api.allow_remote_reads": "Allow api.listen on an address other hosts reach (reads need "
                              "no token); refused otherwise.",
    "metrics.enabled": "Prometheus metrics at /metrics of the API; null is on whenever "
                       "the API is on.",
    "metrics.per_irq_limit": "At most this many per-IRQ series, busiest first; 0 is none.",
    "socket.enabled": "irqbalance's control socket (irqbalance-ui, settings and stats "
                      "commands).",
    "foreign_writes.enabled": "Each pass, compare every balanced IRQ's smp_affinity with what "
                              "pyirqbalance last wrote or found; a change it did not make is "
                              "logged, counted and shown in metrics and health.",
    "foreign_writes.max_changes": "After this many foreign changes to one IRQ within window_s, "
                                  "leave that IRQ alone until a reload or restart; 0 never does.",
    "foreign_writes.window_s": "Seconds over which foreign changes to one IRQ are counted for "
                               "max_changes.",
}


class KeyDoc(NamedTuple):
    """One configuration key as its manual page shows it."""

    key: str
    default: Any
    allowed: str
    description: str


def key_docs() -> tuple[KeyDoc, ...]:
    """Every key with its default, what its check accepts and what it does."""
    return tuple(
        KeyDoc(
            f"{name}.{key}", getattr(cls(), key), allowed_values(check),
            KEY_DESCRIPTIONS.get(f"{name}.{key}", ""),
        )
        for name, (cls, checks) in _SCHEMA.items()
        for key, check in checks.items()
    )


# --------------------------------------------------------------------------
# the resolved options of one run
# --------------------------------------------------------------------------


def check_banned_cpus_env(environ: Mapping[str, str]) -> None:
    """Refuse unparsable IRQBALANCE_BANNED_CPUS / _CPULIST values (exit 2).

    irqbalance silently keeps the part of a bad value it could parse
    (cputree.c ``setup_banned_cpus``), i.e. bans CPUs nobody asked for; pyirqbalance stops instead.
    Empty values are ignored (as irqbalance 1.9 does) and ``-`` bans nothing.
    """
    cpus = environ.get("IRQBALANCE_BANNED_CPUS")
    if cpus:
        try:
            parse_mask(cpus)
        except MaskError as err:
            raise ConfigError(
                f"IRQBALANCE_BANNED_CPUS={cpus!r}: {err}; expected a hex CPU mask such as "
                "'ff,00000000'"
            ) from None
    cpulist = environ.get("IRQBALANCE_BANNED_CPULIST")
    if cpulist and cpulist.strip() != "-":
        try:
            parse_cpulist(cpulist)
        except MaskError as err:
            raise ConfigError(
                f"IRQBALANCE_BANNED_CPULIST={cpulist!r}: {err}; expected a CPU list such as "
                "'0-3,8', or '-' to ban none"
            ) from None


def build_settings(
    balancing: BalancingConfig, environ: Mapping[str, str], hz: int | None = None
) -> BalancerSettings:
    """The balancer's settings from resolved ``balancing`` values and the environment."""
    if hz is None:
        hz = _clock_ticks()
    cpulist_env = environ.get("IRQBALANCE_BANNED_CPULIST")
    if cpulist_env is None:
        cpulist_env = balancing.banned_cpulist
    return BalancerSettings(
        deepestcache=balancing.deepestcache,
        powerthresh=balancing.powerthresh,
        migrateval=balancing.migrateval,
        banned_irqs=balancing.banned_irqs,
        banmod=balancing.banned_modules,
        hintpolicy=balancing.hintpolicy,
        banned_cpus_env=environ.get("IRQBALANCE_BANNED_CPUS"),
        banned_cpulist_env=cpulist_env,
        hz=hz,
        numa=balancing.numa,
        placement=balancing.placement,
        placement_min_gain=balancing.placement_min_gain,
        placement_max_moves=balancing.placement_max_moves,
    )


def _clock_ticks() -> int:
    """USER_HZ; irqbalance falls back to 100 when sysconf fails."""
    try:
        hz = os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError):
        return 100
    return hz if hz > 0 else 100


class Options(NamedTuple):
    """Everything one run of pyirqbalance does, resolved from all sources."""

    balancing: BalancingConfig
    settings: BalancerSettings
    oneshot: bool = False
    debug: bool = False
    foreground: bool = False
    journal: bool = False
    pidfile: str | None = None
    policyscript: str | None = None
    banscript: str | None = None
    hook_timeout: float = 2.0
    sysroot: str = "/"
    dry_run: bool = False
    output_format: str = "text"
    config_path: str | None = None
    restore: bool = False
    force: bool = False
    state_dir: str = DEFAULT_STATE_DIR
    run_dir: str = DEFAULT_RUN_DIR
    config: Config = Config()

    @property
    def interval(self) -> int:
        return self.balancing.interval
