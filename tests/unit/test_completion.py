"""Bash completion: every option of both commands, their commands, values and IRQ numbers."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pyirqbalance import completion
from pyirqbalance.api.ctl import _parser as ctl_parser
from pyirqbalance.service import cli

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
INTERRUPTS = FIXTURES / "proc" / "CRYP70N1CZ-syslogs" / "interrupts"
CTL_COMMANDS = ("status", "distribution", "cpu-summary", "summary", "irq", "set", "release",
                "report", "top")


@pytest.fixture(scope="module")
def script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "pyirqbalance"
    assert completion.main([str(path)]) == 0
    return path


def complete(script: Path, *words: str) -> list[str]:
    """What bash offers with the cursor at the end of the last word (COMP_WORDS as given)."""
    function = "_pyirqbalancectl" if words[0] == "pyirqbalancectl" else "_pyirqbalance"
    body = (f'source "{script}"; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); {function}; '
            'printf "%s\\n" "${COMPREPLY[@]}"')
    out = subprocess.run(["bash", "--norc", "--noprofile", "-c", body, "bash", *words],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    return [w for w in out.stdout.splitlines() if w]


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_script_is_valid_bash(script):
    out = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr


def test_daemon_offers_every_option(script):
    offered = set(complete(script, "pyirqbalance", "-"))
    # irqbalance's options (parse_command_line, 1.9 and 1.0-1.4) whatever the table says
    assert {"--oneshot", "-o", "--banirq", "-i", "--policyscript", "-l", "--hintpolicy",
            "--banscript", "-b", "--version", "-V"} <= offered
    for opt in cli.option_table():
        assert f"--{opt.long}" in offered
        if opt.short:
            assert f"-{opt.short}" in offered
    assert complete(script, "pyirqbalance", "--fo") == ["--foreground", "--format", "--force"]


@pytest.mark.parametrize("words,expected", [
    (("--format", "="), ["text", "json"]),
    (("--format", "=", "j"), ["json"]),
    (("--format=t",), ["text"]),
    (("--format", ""), ["text", "json"]),
    (("--hintpolicy", "=", ""), ["exact", "subset", "ignore"]),
    (("-p", ""), ["off"]),
    (("--interval", ""), []),
])
def test_daemon_option_values(script, words, expected):
    assert complete(script, "pyirqbalance", *words) == expected


def test_ctl_offers_every_global_option_and_command(script):
    parser = ctl_parser()
    offered = set(complete(script, "pyirqbalancectl", "-"))
    expected = {s for a in parser._actions for s in a.option_strings}
    assert {"--url", "--local", "--sysroot", "--json"} <= expected
    assert offered == expected
    assert tuple(complete(script, "pyirqbalancectl", "")) == CTL_COMMANDS
    assert tuple(complete(script, "pyirqbalancectl", "--json", "")) == CTL_COMMANDS


@pytest.mark.parametrize("command", CTL_COMMANDS)
def test_ctl_offers_every_option_of_each_command(script, command):
    sub = subparsers(ctl_parser())[command]
    expected = {s for a in sub._actions for s in a.option_strings}
    assert set(complete(script, "pyirqbalancectl", "--local", command, "-")) == expected


def irqs_of(path: Path) -> list[str]:
    """IRQ numbers of a /proc/interrupts file, by hand: rows starting with digits and a colon."""
    return re.findall(r"^\s*(\d+):", path.read_text(), re.M)


@pytest.fixture
def sysroot(tmp_path) -> Path:
    (tmp_path / "proc").mkdir()
    shutil.copy(INTERRUPTS, tmp_path / "proc" / "interrupts")
    return tmp_path


@pytest.mark.parametrize("words", [
    ("pyirqbalancectl", "--sysroot", "ROOT", "irq", ""),
    ("pyirqbalancectl", "--sysroot", "=", "ROOT", "set", ""),
    ("pyirqbalancectl", "--sysroot=ROOT", "--local", "release", ""),
    ("pyirqbalancectl", "--sysroot", "ROOT", "distribution", "--irq", ""),
    ("pyirqbalance", "--sysroot", "ROOT", "--banirq", ""),
    ("pyirqbalance", "--sysroot=ROOT", "-i", ""),
])
def test_irq_numbers_come_from_proc_interrupts(script, sysroot, words):
    expected = irqs_of(sysroot / "proc" / "interrupts")
    assert expected[:3] == ["1", "8", "9"] and len(expected) > 10
    words = tuple(w.replace("ROOT", str(sysroot)) for w in words)
    assert complete(script, *words) == expected
    ones = [i for i in expected if i.startswith("1")]
    assert complete(script, *words[:-1], "1") == ones


def test_irq_positional_is_offered_once(script, sysroot):
    got = complete(script, "pyirqbalancectl", "--sysroot", str(sysroot), "set", "8", "")
    assert got == ["-h", "--help", "--cpus", "--mask", "--force"]
    assert complete(script, "pyirqbalancectl", "--sysroot", str(sysroot), "set", "-") == got


def test_no_interrupts_file_offers_nothing(script, tmp_path):
    assert complete(script, "pyirqbalancectl", "--sysroot", str(tmp_path), "irq", "") == []


def test_ctl_option_values(script, tmp_path):
    assert complete(script, "pyirqbalancectl", "report", "--group", "=", "") == [
        "auto", "cpu", "node", "package"]
    (tmp_path / "saved-interrupts").write_text("")
    assert complete(script, "pyirqbalancectl", "report", "--file",
                    str(tmp_path / "saved-")) == [str(tmp_path / "saved-interrupts")]
    (tmp_path / "tree").mkdir()
    assert complete(script, "pyirqbalancectl", "--sysroot", str(tmp_path / "tr")) == [
        str(tmp_path / "tree")]
