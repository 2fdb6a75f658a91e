"""The manual pages pyirqbalance(8), pyirqbalancectl(1) and pyirqbalance.yaml(5).

The option and key lists come from the tables the programs themselves use --
``cli.option_table()``, ``config.key_docs()`` and pyirqbalancectl's argument
parser -- so a new option or key is in the pages the next time they are
built; the prose around them (environment, files, signals, exit status,
switching, differences from irqbalance) is written here. ``python3 -m
pyirqbalance.manpages DIR`` writes the three pages into DIR (the
Debian build does this).
"""

from __future__ import annotations

import argparse
import enum
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from . import IRQBALANCE_COMPAT_VERSION, __version__
from .service import cli, exits
from .service.config import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_RUN_DIR,
    DEFAULT_STATE_DIR,
    KeyDoc,
    key_docs,
)

__all__ = ["ctl_page", "daemon_page", "main", "pages", "roff_text", "yaml_page", "yaml_value"]


def roff_text(text: str) -> str:
    """``text`` safe inside a roff line: backslashes, minus signs, a leading dot or quote."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + out if out[:1] in (".", "'") else out


def _lines(*parts: str) -> str:
    return "\n".join(parts) + "\n"


def _header(name: str, section: int, title: str, summary: str) -> str:
    return _lines(
        f'.TH {name.upper()} {section} "" "pyirqbalance {__version__}" "{title}"',
        ".nh",
        ".ad l",
        ".SH NAME",
        f"{roff_text(name)} \\- {roff_text(summary)}",
    )


def _para(text: str) -> str:
    return _lines(".PP", roff_text(text))


def _item(tag: str, text: str) -> str:
    """A tagged paragraph; ``tag`` is roff already."""
    return _lines(".TP", tag, roff_text(text))


def _section(title: str, *body: str) -> str:
    return f".SH {title}\n" + "".join(body)


# --------------------------------------------------------------------------
# pyirqbalance(8)
# --------------------------------------------------------------------------


def _option_tag(opt: Any) -> str:
    """``-i, --banirq=N`` in bold and italics."""
    names = [f"\\fB\\-{opt.short}\\fR"] if opt.short else []
    long = f"\\fB\\-\\-{roff_text(opt.long)}\\fR"
    if opt.arg:
        long += f"=\\fI{roff_text(opt.arg)}\\fR"
    return ", ".join([*names, long])


_DAEMON_DESCRIPTION = (
    f"pyirqbalance is a drop-in replacement for irqbalance {IRQBALANCE_COMPAT_VERSION}. "
    "Every pass (each --interval seconds) it reads /proc/interrupts and /proc/stat, computes "
    "the interrupt load of every CPU, cache domain, package and NUMA node, and moves IRQs away "
    "from busy CPUs by writing /proc/irq/N/smp_affinity, making the decisions irqbalance makes "
    "from the same kernel files. The first pass after start (and --oneshot) has no load data "
    "yet and places IRQs by NUMA node, class and count, as irqbalance does.",
    "It reads irqbalance's options and environment variables, answers irqbalance-ui on "
    "irqbalance's control socket, and adds a dry run (--dry-run) that explains every decision, "
    "the restoring of the affinities it found (--restore), and optionally a history of "
    "interrupt counts, an HTTP API and Prometheus metrics (see pyirqbalance.yaml(5) and "
    "pyirqbalancectl(1)).",
)

_DAEMON_PRECEDENCE = (
    "Options are parsed as irqbalance parses them (GNU getopt_long): --opt=value and "
    "--opt value, unambiguous prefixes, clustered short options, non-option arguments "
    "ignored. Precedence: command line > IRQBALANCE_ARGS > environment > configuration "
    "file > defaults; --banirq and --banmod add to the file's lists."
)

_ENVIRONMENT = (
    ("IRQBALANCE_ARGS", "Extra options, read as if given before the command line's."),
    ("IRQBALANCE_ONESHOT", "Set (any value, even empty): --oneshot."),
    ("IRQBALANCE_DEBUG", "Set (any value, even empty): --debug."),
    ("IRQBALANCE_BANNED_CPULIST",
     'CPUs never given IRQs, as a CPU list such as "0-1,8"; "-" bans none. Replaces the '
     "default ban of the kernel's isolated and nohz_full CPUs. An unparsable value stops "
     "start-up."),
    ("IRQBALANCE_BANNED_CPUS",
     "Deprecated hex CPU mask form of the same; wins over IRQBALANCE_BANNED_CPULIST."),
    ("INVOCATION_ID", "Set by systemd: --journal and --foreground."),
    ("NOTIFY_SOCKET, WATCHDOG_USEC",
     "systemd Type=notify: READY=1 after the first pass, STATUS= after every pass, "
     "WATCHDOG=1 from the main loop."),
    ("PYIRQBALANCE_ARGS",
     "Not read by pyirqbalance itself: the unit passes it on the command line "
     "(set it in /etc/default/pyirqbalance)."),
)

_DAEMON_FILES = (
    (DEFAULT_CONFIG_PATH, "Configuration, optional; see pyirqbalance.yaml(5)."),
    ("/etc/default/irqbalance, /etc/sysconfig/irqbalance",
     "irqbalance's environment files, read unchanged by the systemd unit and the "
     "sysvinit script /etc/init.d/pyirqbalance."),
    ("/etc/default/pyirqbalance", "Read by the unit and the script after them "
     "(PYIRQBALANCE_ARGS)."),
    ("/usr/share/doc/pyirqbalance/docs/",
     "The documents the option descriptions name (docs/placement.md, docs/api.md, ...)."),
    (f"{DEFAULT_STATE_DIR}/original-affinity.json",
     "The affinities found before the first change, for --restore."),
    (f"{DEFAULT_STATE_DIR}/history.sqlite", "Interrupt history, when history.enabled."),
    (f"{DEFAULT_RUN_DIR}/irqbalance<pid>.sock", "Control socket (irqbalance-ui)."),
    (f"{DEFAULT_RUN_DIR}/pyirqbalance.lock", "Instance lock: one daemon at a time."),
)

_SIGNALS = (
    ("SIGHUP",
     "Re-read the configuration file (a bad file is logged and the running configuration "
     "kept) and rescan the topology at the next pass; ignored before the first pass."),
    ("SIGTERM, SIGINT, SIGUSR2", "Finish the current pass and exit with status 0."),
    ("SIGUSR1", "Log the topology tree with the IRQs on it once."),
)

_DAEMON_EXIT = (
    (exits.EXIT_OK,
     "Success; also after SIGTERM or SIGINT, on a single-CPU machine, --help and --version."),
    (exits.EXIT_USAGE,
     "Bad command line (message on standard error, irqbalance's usage text on standard "
     "output)."),
    (exits.EXIT_CONFIG,
     "Bad configuration file or environment value (one line naming the key, the value and "
     "what is allowed)."),
    (exits.EXIT_RUNTIME,
     "Cannot run: another pyirqbalance holds the instance lock, an irqbalance process is "
     "running (without --force), the topology cannot be read, the control socket cannot be "
     "bound, or --restore was incomplete."),
)

_SWITCHING = (
    "pyirqbalance --oneshot --dry-run shows what pyirqbalance would do on this machine and "
    "writes nothing. Two balancers would fight over /proc/irq, so the unit declares "
    "Conflicts=irqbalance.service, and the Debian package neither enables nor starts "
    "pyirqbalance.service while irqbalance is enabled or running. To switch:",
    "systemctl disable --now irqbalance",
    "systemctl enable --now pyirqbalance",
    "To go back: systemctl disable --now pyirqbalance, then pyirqbalance --restore (writes "
    "back the affinities found before the first change), then systemctl enable --now "
    "irqbalance.",
)

_DIFFERENCES = (
    "--oneshot stays in the foreground, so its exit status means something.",
    "Debug output goes to standard error (irqbalance: standard output).",
    "--pid is honoured in the foreground too; a pid file naming a dead process is replaced.",
    "Unparsable IRQBALANCE_BANNED_CPULIST or IRQBALANCE_BANNED_CPUS values stop start-up "
    "(exit status 2); irqbalance bans whatever part it could parse.",
    "SIGUSR1 dumps the state instead of quitting; SIGHUP also reloads the configuration file.",
    "A second daemon or a running irqbalance is refused unless --force.",
    "Policy scripts and banscripts run without a shell, in their own process group, with a "
    "timeout (hooks.timeout_s).",
    "--help exists; --version prints the version and exits 0.",
)


def _tagged(rows: Iterable[tuple[Any, str]], bold: bool = True) -> str:
    font = "\\fB" if bold else "\\fI"
    return "".join(_item(f"{font}{roff_text(str(tag))}\\fR", text) for tag, text in rows)


def daemon_page() -> str:
    """pyirqbalance(8)."""
    opts = cli.option_table()
    theirs = "".join(_item(_option_tag(o), o.help) for o in opts if o.irqbalance)
    ours = "".join(_item(_option_tag(o), o.help) for o in opts if not o.irqbalance)
    return (
        _header("pyirqbalance", 8, "System Administration",
                "distribute hardware interrupts across CPUs (irqbalance replacement)")
        + _section("SYNOPSIS", _lines(".B pyirqbalance", "[\\fIOPTION\\fR]..."))
        + _section("DESCRIPTION", *(_para(t) for t in _DAEMON_DESCRIPTION),
                   _para(_DAEMON_PRECEDENCE))
        + _section("OPTIONS", _lines(".SS irqbalance options"), theirs,
                   _lines(".SS pyirqbalance options"), ours)
        + _section("ENVIRONMENT", _tagged(_ENVIRONMENT))
        + _section("FILES", _tagged(_DAEMON_FILES, bold=False))
        + _section("SIGNALS", _tagged(_SIGNALS))
        + _section("EXIT STATUS", _tagged(_DAEMON_EXIT))
        + _section("SWITCHING FROM IRQBALANCE", _para(_SWITCHING[0]),
                   _lines(".PP", ".nf", ".RS 4", *(roff_text(t) for t in _SWITCHING[1:3]),
                          ".RE", ".fi"),
                   _para(_SWITCHING[3]))
        + _section("DIFFERENCES FROM IRQBALANCE",
                   *(_lines(".IP \\(bu 2", roff_text(t)) for t in _DIFFERENCES))
        + _section("SEE ALSO", _see_also("irqbalance(1)", "irqbalance\\-ui(1)",
                                         "pyirqbalancectl(1)", "pyirqbalance.yaml(5)",
                                         "systemd.service(5)"))
    )


def _see_also(*pages: str) -> str:
    refs = []
    for ref in pages:
        name, _, section = ref.partition("(")
        refs.append(f".BR {name} ({section}")
    joined = [r + "," for r in refs[:-1]] + refs[-1:]
    return _lines(*joined)


# --------------------------------------------------------------------------
# pyirqbalancectl(1)
# --------------------------------------------------------------------------


def _action_tag(action: argparse.Action) -> str:
    if not action.option_strings:
        tag = f"\\fI{roff_text(str(action.metavar or action.dest).upper())}\\fR"
        return f"[{tag}]" if action.nargs == "?" else tag
    names = ", ".join(f"\\fB{roff_text(s)}\\fR" for s in action.option_strings)
    if action.nargs == 0:
        return names
    if action.choices:
        arg = "|".join(str(c) for c in action.choices)
    else:
        arg = str(action.metavar or action.dest).upper()
    return f"{names}=\\fI{roff_text(arg)}\\fR"


def _action_text(action: argparse.Action) -> str:
    text = (action.help or "").replace("%%", "%")
    default = action.default
    if action.nargs != 0 and default not in (None, argparse.SUPPRESS) and "default" not in text:
        text = f"{text} (default {default})" if text else f"default {default}"
    return text


def _arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions
            if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, help, parser) of every command, in the parser's order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return []


def _command_entry(name: str, text: str, sub: argparse.ArgumentParser) -> str:
    args = _arguments(sub)
    positional = " ".join(_action_tag(a) for a in args if not a.option_strings)
    tag = f"\\fB{roff_text(name)}\\fR" + (f" {positional}" if positional else "")
    options = [a for a in args if a.option_strings]
    body = _item(tag, text)
    if options:
        body += ".RS\n" + "".join(_item(_action_tag(a), _action_text(a)) for a in options)
        body += ".RE\n"
    return body


_CTL_DESCRIPTION = (
    "pyirqbalancectl queries and steers a running pyirqbalance through its HTTP API "
    "(--url, else PYIRQBALANCE_URL, else the first listener of the api: section of "
    f"{DEFAULT_CONFIG_PATH}), or -- with --local, or when no API is configured -- answers "
    "the same requests itself from /proc (or --sysroot) and the history store, with a dry-run "
    "balancer for decisions. Output is aligned text, or JSON with --json.",
)

_CTL_ENVIRONMENT = (
    ("PYIRQBALANCE_URL", "API address when --url is not given."),
    ("PYIRQBALANCE_TOKEN", "Bearer token for changes when --token-file is not given."),
    ("IRQBALANCE_BANNED_CPULIST, IRQBALANCE_BANNED_CPUS",
     "Read in local mode for the balancer's decisions, as pyirqbalance reads them."),
)


def _ctl_exit() -> tuple[tuple[int, str], ...]:
    from .api import ctl  # deferred: it loads the API (Flask)

    return (
        (ctl.EXIT_OK, "Success."),
        (ctl.EXIT_NOT_FOUND, "Not found (no such IRQ)."),
        (ctl.EXIT_USAGE, "Bad usage or parameter."),
        (ctl.EXIT_UNREACHABLE, "The API or the history store is unreachable."),
        (ctl.EXIT_DENIED, "Not authorised (missing or wrong token)."),
        (ctl.EXIT_REFUSED, "The kernel refused the change."),
    )


def ctl_page(parser: argparse.ArgumentParser | None = None) -> str:
    """pyirqbalancectl(1); ``parser`` defaults to the command's own."""
    if parser is None:
        from .api import ctl  # deferred: it loads the API (Flask)

        parser = ctl._parser()
    options = "".join(_item(_action_tag(a), _action_text(a)) for a in _arguments(parser))
    commands = "".join(_command_entry(*c) for c in _subcommands(parser))
    return (
        _header("pyirqbalancectl", 1, "User Commands",
                "query and steer pyirqbalance through its API, or locally")
        + _section("SYNOPSIS", _lines(".B pyirqbalancectl",
                                      "[\\fIOPTION\\fR]... \\fICOMMAND\\fR [\\fIARG\\fR]..."))
        + _section("DESCRIPTION", *(_para(t) for t in _CTL_DESCRIPTION))
        + _section("OPTIONS", options)
        + _section("COMMANDS", commands)
        + _section("ENVIRONMENT", _tagged(_CTL_ENVIRONMENT))
        + _section("EXIT STATUS", _tagged(_ctl_exit()))
        + _section("SEE ALSO", _see_also("pyirqbalance(8)", "pyirqbalance.yaml(5)"))
    )


# --------------------------------------------------------------------------
# pyirqbalance.yaml(5)
# --------------------------------------------------------------------------


def yaml_value(value: Any) -> str:
    """A default as it is written in the YAML file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    return str(value)


def _key_entry(doc: KeyDoc) -> str:
    key = doc.key.split(".", 1)[1]
    text = " ".join(t for t in (
        doc.description,
        f"Allowed: {doc.allowed}." if doc.allowed else "",
        f"Default: {yaml_value(doc.default)}.",
    ) if t)
    return _item(f"\\fB{roff_text(key)}\\fR", text)


_YAML_DESCRIPTION = (
    "pyirqbalance reads its configuration from a YAML file (yaml.safe_load): a mapping of "
    "sections, each a mapping of keys. The file and every key are optional; a missing key "
    "has its default. --config=FILE names another file, which must then exist.",
    "The whole file is checked before anything starts: an unknown key (with a did-you-mean), "
    "a wrong type or a value out of range stops pyirqbalance with exit status 2 and one line "
    "naming the key, the value and what is allowed. On SIGHUP (systemctl reload pyirqbalance) "
    "the file is read again; a bad file is logged and the running configuration kept.",
    "Precedence, highest first: command line > IRQBALANCE_ARGS > environment (IRQBALANCE_*) "
    "> this file > defaults. --banirq and --banmod on the command line add to the lists here.",
    "YAML 1.1 reads bare on, off, yes and no as booleans (powerthresh accepts off either way); "
    'quote CPU lists ("0-3,8").',
)

_YAML_EXAMPLE = (
    "balancing:",
    "  interval: 10",
    "  banned_irqs: [25, 26]",
    '  banned_cpulist: "0"',
    "history:",
    "  enabled: true",
)


def yaml_page(docs: Sequence[KeyDoc] | None = None) -> str:
    """pyirqbalance.yaml(5); ``docs`` defaults to every key the configuration accepts."""
    docs = key_docs() if docs is None else docs
    sections: dict[str, list[KeyDoc]] = {}
    for doc in docs:
        sections.setdefault(doc.key.split(".", 1)[0], []).append(doc)
    body = "".join(
        _lines(f".SS {roff_text(name)}") + "".join(_key_entry(d) for d in keys)
        for name, keys in sections.items()
    )
    example = _lines(".PP", ".nf", ".RS 4", *(roff_text(t) for t in _YAML_EXAMPLE), ".RE", ".fi")
    return (
        _header("pyirqbalance.yaml", 5, "File Formats",
                "configuration file of pyirqbalance")
        + _section("SYNOPSIS", _lines(f".I {roff_text(DEFAULT_CONFIG_PATH)}"))
        + _section("DESCRIPTION", *(_para(t) for t in _YAML_DESCRIPTION))
        + _section("KEYS", body)
        + _section("EXAMPLE", example)
        + _section("SEE ALSO", _see_also("pyirqbalance(8)", "pyirqbalancectl(1)"))
    )


def pages() -> dict[str, str]:
    """File name -> roff text of every page."""
    return {
        "pyirqbalance.8": daemon_page(),
        "pyirqbalancectl.1": ctl_page(),
        "pyirqbalance.yaml.5": yaml_page(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python3 -m pyirqbalance.manpages DIR``: write the pages into DIR."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python3 -m pyirqbalance.manpages DIR\n")
        return 2
    try:
        os.makedirs(args[0], exist_ok=True)
        for name, text in pages().items():
            with open(os.path.join(args[0], name), "w", encoding="utf-8") as f:
                f.write(text)
    except OSError as err:
        sys.stderr.write(f"manpages: {args[0]}: {err.strerror or err}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
