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
    "ApiConfig",
    "BalancingConfig",
    "Config",
    "ConfigError",
    "DaemonConfig",
    "HistorySection",
    "HooksConfig",
    "MetricsConfig",
    "Options",
    "SocketConfig",
    "build_settings",
    "check_banned_cpus_env",
    "load_config",
    "parse_config",
]

DEFAULT_CONFIG_PATH = "/etc/pyirqbalance/pyirqbalance.yaml"
DEFAULT_STATE_DIR = "/var/lib/pyirqbalance"
#: irqbalance's run directory: the control socket lives here (irqbalance-ui finds it there).
DEFAULT_RUN_DIR = "/run/irqbalance"

_INT_MAX = 2**31 - 1
_ULONG_MAX = 2**64 - 1


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

    enabled: bool = False
    path: str = "/var/lib/pyirqbalance/history.sqlite"
    retention_days: float = 30
    resolution_s: float = 60


class ApiConfig(NamedTuple):
    """``api:`` -- the HTTP API (off unless enabled)."""

    enabled: bool = False
    listen: str = "127.0.0.1:9199"
    unix_socket: str | None = None
    token_file: str | None = None


class MetricsConfig(NamedTuple):
    """``metrics:`` -- Prometheus metrics, served by the API at /metrics."""

    enabled: bool = False
    per_irq_limit: int = 256


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


# --------------------------------------------------------------------------
# value checkers: (key, value) -> typed value, or ConfigError naming both
# --------------------------------------------------------------------------

Check = Callable[[str, Any], Any]


def _bad(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{key}: {value!r} is not allowed ({allowed})")


def _int(lo: int, hi: int) -> Check:
    def check(key: str, value: Any) -> int:
        # YAML booleans are ints in Python: "interval: yes" must not read as 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(key, value, f"an integer from {lo} to {hi}")
        if not lo <= value <= hi:
            raise ConfigError(f"{key}: {value} is out of range (allowed {lo} to {hi})")
        return value

    return check


def _number(lo: float, hi: float) -> Check:
    def check(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(key, value, f"a number from {lo:g} to {hi:g}")
        if not lo <= value <= hi:
            raise ConfigError(f"{key}: {value} is out of range (allowed {lo:g} to {hi:g})")
        return float(value)

    return check


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad(key, value, "true or false")
    return value


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(key, value, "a non-empty string")
    return value


def _optional(check: Check) -> Check:
    return lambda key, value: None if value is None else check(key, value)


def _powerthresh(key: str, value: Any) -> int | None:
    # YAML 1.1 reads a bare "off" as false; both spellings mean "off".
    if value is None or value is False or value == "off":
        return None
    return _int(0, _ULONG_MAX - 1)(key, value)


def _hintpolicy(key: str, value: Any) -> HintPolicy:
    try:
        return HintPolicy(value)
    except ValueError:
        raise _bad(key, value, "exact, subset or ignore") from None


def _irq_list(key: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise _bad(key, value, "a list of IRQ numbers")
    check = _int(0, _INT_MAX)
    return tuple(check(f"{key}[{i}]", v) for i, v in enumerate(value))


def _text_list(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _bad(key, value, "a list of strings")
    return tuple(_text(f"{key}[{i}]", v) for i, v in enumerate(value))


def _cpulist(key: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # "banned_cpulist: 3" is a YAML integer
    if not isinstance(value, str):
        raise _bad(key, value, 'a CPU list such as "0-3,8", or "-" for none')
    if value.strip() != "-":
        try:
            parse_cpulist(value)
        except MaskError as err:
            raise ConfigError(f"{key}: {value!r} is not a CPU list ({err})") from None
    return value


def listen_address(key: str, value: Any) -> str:
    """``HOST:PORT`` check shared by the YAML and ``--api-listen``."""
    host, colon, port = str(value).rpartition(":")
    if not isinstance(value, str) or not colon or not host or not port.isdigit() or not (
        1 <= int(port) <= 65535
    ):
        raise _bad(key, value, "HOST:PORT with a port from 1 to 65535")
    return value


_SCHEMA: dict[str, tuple[type, dict[str, Check]]] = {
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
    }),
    "daemon": (DaemonConfig, {
        "oneshot": _bool,
        "foreground": _bool,
        "debug": _bool,
        "journal": _bool,
        "pid_file": _optional(_text),
        "state_dir": _optional(_text),
        "run_dir": _optional(_text),
    }),
    "hooks": (HooksConfig, {
        "policyscript": _optional(_text),
        "banscript": _optional(_text),
        "timeout_s": _number(0.01, 3600),
    }),
    "history": (HistorySection, {
        "enabled": _bool,
        "path": _text,
        "retention_days": _number(0.01, 36500),
        "resolution_s": _number(1, 86400),
    }),
    "api": (ApiConfig, {
        "enabled": _bool,
        "listen": listen_address,
        "unix_socket": _optional(_text),
        "token_file": _optional(_text),
    }),
    "metrics": (MetricsConfig, {
        "enabled": _bool,
        "per_irq_limit": _int(0, 1_000_000),
    }),
    "socket": (SocketConfig, {
        "enabled": _bool,
    }),
}


def _unknown(key: str, known: list[str]) -> ConfigError:
    import difflib  # deferred: only a bad file needs it (start-up cost)

    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
    return ConfigError(f"unknown key {key!r}{hint}")


def parse_config(data: Any) -> Config:
    """Validate the ``yaml.safe_load`` result of a config file (None = empty file)."""
    if data is None:
        return Config()
    if not isinstance(data, dict):
        raise ConfigError(f"the file must be a mapping of sections, not {type(data).__name__}")
    sections: dict[str, Any] = {}
    for name, body in data.items():
        if name not in _SCHEMA:
            raise _unknown(str(name), list(_SCHEMA))
        cls, checks = _SCHEMA[name]
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ConfigError(f"{name}: must be a mapping of keys, not {body!r}")
        values = {}
        for key, value in body.items():
            if key not in checks:
                raise _unknown(f"{name}.{key}", list(checks))
            values[key] = checks[key](f"{name}.{key}", value)
        sections[name] = cls(**values)
    return Config(**sections)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a config file; ConfigError (one line) on any problem."""
    import yaml  # only when there is a file to read: it is the costliest import at start-up

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as err:
        raise ConfigError(f"{path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: YAML error{where}: {problem}") from None
    try:
        return parse_config(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def config_keys() -> dict[str, tuple[str, ...]]:
    """Every section and its keys (documentation and tests)."""
    return {name: cls._fields for name, (cls, _) in _SCHEMA.items()}


# --------------------------------------------------------------------------
# the resolved options of one run
# --------------------------------------------------------------------------


def check_banned_cpus_env(environ: Mapping[str, str]) -> None:
    """Refuse unparsable IRQBALANCE_BANNED_CPUS / _CPULIST values (exit 2).

    irqbalance silently keeps the part of a bad value it could parse
    (spec §2.1), i.e. bans CPUs nobody asked for; pyirqbalance stops instead.
    Empty values are ignored (as irqbalance 1.9 does) and ``-`` bans nothing.
    """
    cpus = environ.get("IRQBALANCE_BANNED_CPUS")
    if cpus:
        try:
            parse_mask(cpus)
        except MaskError as err:
            raise ConfigError(
                f"IRQBALANCE_BANNED_CPUS={cpus!r} is not a hex CPU mask such as 'ff,00000000' "
                f"({err})"
            ) from None
    cpulist = environ.get("IRQBALANCE_BANNED_CPULIST")
    if cpulist and cpulist.strip() != "-":
        try:
            parse_cpulist(cpulist)
        except MaskError as err:
            raise ConfigError(
                f"IRQBALANCE_BANNED_CPULIST={cpulist!r} is not a CPU list such as '0-3,8' "
                f"or '-' ({err})"
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
