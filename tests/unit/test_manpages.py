"""Manual pages: generated from the option and key tables, complete, rendered cleanly by man."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pyirqbalance import manpages
from pyirqbalance.api.ctl import _parser as argument_parser
from pyirqbalance.service import cli
from pyirqbalance.service.config import KEY_DESCRIPTIONS, KeyDoc, config_keys, key_docs

REPO = Path(__file__).resolve().parents[2]

#: irqbalance 1.9's options and the legacy ones (parse_command_line of 1.9 and 1.0-1.4).
IRQBALANCE_OPTIONS = {
    "oneshot": "o", "debug": "d", "foreground": "f", "journal": "j", "banirq": "i",
    "powerthresh": "p", "banmod": "m", "deepestcache": "c", "policyscript": "l", "pid": "s",
    "interval": "t", "migrateval": "e", "version": "V", "hintpolicy": None, "banscript": "b",
}
#: pyirqbalancectl's commands as the README lists them.
CTL_COMMANDS = ("status", "distribution", "cpu-summary", "summary", "irq", "set", "release",
                "report", "top")


def plain(roff: str) -> str:
    """The roff source with the escapes the pages use turned back into text."""
    return re.sub(r"\\f[BIR]", "", roff).replace("\\-", "-").replace("\\e", "\\").replace(
        "\\&", "")


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return manpages.pages()


def test_the_three_pages_have_their_sections(pages):
    assert set(pages) == {"pyirqbalance.8", "pyirqbalancectl.1", "pyirqbalance.yaml.5"}
    assert pages["pyirqbalance.8"].startswith(".TH PYIRQBALANCE 8 ")
    assert pages["pyirqbalancectl.1"].startswith(".TH PYIRQBALANCECTL 1 ")
    assert pages["pyirqbalance.yaml.5"].startswith(".TH PYIRQBALANCE.YAML 5 ")
    for title in ("OPTIONS", "ENVIRONMENT", "FILES", "SIGNALS", "EXIT STATUS",
                  "SWITCHING FROM IRQBALANCE", "DIFFERENCES FROM IRQBALANCE", "SEE ALSO"):
        assert f"\n.SH {title}\n" in pages["pyirqbalance.8"], title


@pytest.mark.parametrize("long,short", sorted(IRQBALANCE_OPTIONS.items()))
def test_daemon_page_has_every_irqbalance_option(pages, long, short):
    text = plain(pages["pyirqbalance.8"])
    assert f"--{long}" in text
    if short:
        assert f"-{short}, --{long}" in text


def test_daemon_page_has_every_option_of_the_table(pages):
    text = plain(pages["pyirqbalance.8"])
    for opt in cli.option_table():
        tag = f"--{opt.long}" + (f"={opt.arg}" if opt.arg else "")
        assert f"\n{tag}\n" in text or f", {tag}\n" in text, opt.long
        assert opt.help, f"--{opt.long} has no description"
        assert plain(manpages.roff_text(opt.help)) in text


def test_daemon_page_lists_environment_signals_and_exit_codes(pages):
    text = plain(pages["pyirqbalance.8"])
    for name in ("IRQBALANCE_ARGS", "IRQBALANCE_ONESHOT", "IRQBALANCE_DEBUG",
                 "IRQBALANCE_BANNED_CPULIST", "IRQBALANCE_BANNED_CPUS", "INVOCATION_ID",
                 "SIGHUP", "SIGTERM", "SIGUSR1", "SIGUSR2",
                 "/etc/pyirqbalance/pyirqbalance.yaml", "/run/irqbalance/pyirqbalance.lock",
                 "/var/lib/pyirqbalance/original-affinity.json"):
        assert name in text, name
    exit_part = text.split(".SH EXIT STATUS\n", 1)[1].split(".SH ", 1)[0]
    assert re.findall(r"^\.TP\n(\d)$", exit_part, re.M) == ["0", "1", "2", "3"]


def test_yaml_page_has_every_key_of_the_shipped_file(pages):
    """The shipped etc/pyirqbalance.yaml is an independent list of the keys."""
    text = plain(pages["pyirqbalance.yaml.5"])
    shipped = yaml.safe_load((REPO / "etc" / "pyirqbalance.yaml").read_text())
    for section, keys in shipped.items():
        part = "\n" + text.split(f"\n.SS {section}\n", 1)[1].split("\n.S", 1)[0]
        for key in keys:
            assert f"\n.TP\n{key}\n" in part, f"{section}.{key}"


def test_yaml_page_has_every_key_of_the_schema_with_default_and_range(pages):
    text = plain(pages["pyirqbalance.yaml.5"])
    for section, keys in config_keys().items():
        part = text.split(f"\n.SS {section}\n", 1)[1].split("\n.S", 1)[0]
        entries = dict(re.findall(r"^\.TP\n(\S+)\n(.*)$", part, re.M))
        assert list(entries) == list(keys), section
        for key, entry in entries.items():
            assert "Allowed: " in entry and "Default: " in entry, f"{section}.{key}"


def test_yaml_page_values_by_hand(pages):
    text = plain(pages["pyirqbalance.yaml.5"])
    # parse_command_line: --interval is an int of at least 1, default 10; deepestcache 2
    assert "Allowed: an integer from 1 to 2147483647. Default: 10." in text
    assert "(--deepestcache, -c). Allowed: an integer from 1 to 18446744073709551614. " \
           "Default: 2." in text
    assert "Allowed: exact, subset or ignore. Default: ignore." in text
    assert "Default: 127.0.0.1:9199." in text
    assert "Default: /var/lib/pyirqbalance/history.sqlite." in text


def test_every_key_has_a_description():
    keys = {f"{s}.{k}" for s, ks in config_keys().items() for k in ks}
    assert keys - set(KEY_DESCRIPTIONS) == set(), "keys without a description"
    assert set(KEY_DESCRIPTIONS) - keys == set(), "descriptions of keys that do not exist"


def test_a_new_key_reaches_the_page_without_touching_the_generator():
    docs = (*key_docs(), KeyDoc("balancing.placement", "spread", "spread or pack", "How."))
    text = plain(manpages.yaml_page(docs))
    assert "\n.TP\nplacement\nHow. Allowed: spread or pack. Default: spread.\n" in text


def test_ctl_page_has_every_command_and_option(pages):
    text = plain(pages["pyirqbalancectl.1"])
    commands = text.split(".SH COMMANDS\n", 1)[1].split("\n.SH ", 1)[0]
    listed = re.findall(r"^\.TP\n([a-z][a-z-]*)(?: IRQ| \[IRQ\])?$", commands, re.M)
    assert tuple(listed) == CTL_COMMANDS
    parser = argument_parser()
    names = {s for a in parser._actions for s in a.option_strings}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                names |= {s for a in sub._actions for s in a.option_strings}
    assert {"--url", "--local", "--json", "--cpus", "--mask", "--threshold", "--group"} <= names
    for name in names - {"-h", "--help"}:
        assert re.search(rf"(^|, ){re.escape(name)}(=\S+)?$", text, re.M), name


@pytest.mark.parametrize("text,expected", [
    (".starts with a dot", "\\&.starts with a dot"),
    ("'quote", "\\&'quote"),
    ("back\\slash", "back\\eslash"),
    ("--oneshot", "\\-\\-oneshot"),
])
def test_roff_text_escapes(text, expected):
    assert manpages.roff_text(text) == expected


@pytest.mark.skipif(shutil.which("man") is None, reason="man is not installed")
@pytest.mark.parametrize("name", ["pyirqbalance.8", "pyirqbalancectl.1", "pyirqbalance.yaml.5"])
def test_man_renders_without_warnings(tmp_path, name):
    assert manpages.main([str(tmp_path)]) == 0
    env = {**os.environ, "MANWIDTH": "80", "MAN_KEEP_FORMATTING": "0", "LANG": "C.UTF-8"}
    out = subprocess.run(["man", "--warnings", "-l", str(tmp_path / name)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    rendered = re.sub(r".\x08", "", out.stdout)
    assert max(len(line) for line in rendered.splitlines()) <= 80
    if name == "pyirqbalance.8":
        assert "-i, --banirq=N" in rendered


def test_main_reports_a_bad_directory(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert manpages.main([str(blocker / "sub")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("manpages: ") and err.count("\n") == 1
    assert manpages.main([]) == 2
