"""Command line: getopt_long semantics, irqbalance's checks (irqbalance.c parse_command_line,
main), precedence."""

from __future__ import annotations

import pytest

from pyirqbalance.engine.model import HintPolicy
from pyirqbalance.service import cli
from pyirqbalance.service.cli import UsageError, main, parse_command_line, resolve
from pyirqbalance.service.config import Config, ConfigError, load_config

ULONG_MAX = 2**64 - 1


def opts(*argv: str, env: dict | None = None, config: Config | None = None):
    return resolve(list(argv), env or {}, config or Config())


# --------------------------------------------------------------------------
# getopt_long
# --------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["--oneshot"], ["--one"], ["--o"], ["-o"], ["-of"], ["x", "--oneshot", "y"],
])
def test_oneshot_spellings(argv):
    assert opts(*argv).oneshot


@pytest.mark.parametrize("argv", [
    ["--interval=5"], ["--interval", "5"], ["--inter=5"], ["--i=5"], ["-t5"], ["-t", "5"],
    ["-ot5"],
])
def test_interval_spellings(argv):
    assert opts(*argv).interval == 5


def test_irqbalance_prefixes_keep_their_meaning():
    """``--f`` is --foreground in irqbalance; --force/--format must not make it ambiguous."""
    assert opts("--f").foreground and not opts("--f").force
    assert opts("--fore").foreground
    assert opts("--forc").force and opts("--form=json").output_format == "json"
    assert opts("--h=s").settings.hintpolicy is HintPolicy.SUBSET
    assert opts("--dr").dry_run


@pytest.mark.parametrize("argv, message", [
    (["--bogus"], "unrecognized option '--bogus'"),
    (["--ban=1"],
     "option '--ban' is ambiguous; possibilities: '--banirq' '--banmod' '--banscript'"),
    (["--d"], "option '--d' is ambiguous; possibilities: '--debug' '--deepestcache' '--dry-run'"),
    (["--p=1"],
     "option '--p' is ambiguous; possibilities: '--powerthresh' '--policyscript' '--pid' "
     "'--placement'"),
    (["--oneshot=1"], "option '--oneshot' doesn't allow an argument"),
    (["--interval"], "option '--interval' requires an argument"),
    (["-t"], "option requires an argument -- 't'"),
    (["-x"], "invalid option -- 'x'"),
    (["-h"], "invalid option -- 'h'"),
])
def test_getopt_errors(argv, message):
    with pytest.raises(UsageError) as exc:
        parse_command_line(argv, {})
    assert str(exc.value) == message


def test_value_may_start_with_a_dash_and_double_dash_ends_options():
    assert opts("--migrateval", "-1").balancing.migrateval == ULONG_MAX
    assert not opts("--", "--oneshot").oneshot


def test_last_value_wins_and_lists_add_up():
    o = opts("-t", "3", "-t", "4", "-i", "5", "--banirq=6", "-m", "nvme", "--banmod", "ahci")
    assert o.interval == 4
    assert o.settings.banned_irqs == (5, 6) and o.settings.banmod == ("nvme", "ahci")


# --------------------------------------------------------------------------
# irqbalance's validation (irqbalance.c parse_command_line)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("arg, banned", [("5", 5), ("5x", 5), (" 7", 7), ("4294967301", 5)])
def test_banirq_values(arg, banned):
    assert opts(f"--banirq={arg}").settings.banned_irqs == (banned,)


@pytest.mark.parametrize("argv", [
    ["--banirq="], ["-i", "x"], ["-i", "-1"], ["--deepestcache=0"], ["-c", "x"],
    ["--interval=0"], ["-t", "-1"], ["-t", "x"], ["-e", ""], ["-p", "x"], ["-p", "-1"],
    ["--hintpolicy=x"], ["--format=xml"], ["--sysroot="],
])
def test_rejected_values(argv):
    with pytest.raises(UsageError):
        opts(*argv)


def test_accepted_odd_values():
    # legal: powersave when none is overloaded
    assert opts("-p", "0").settings.powerthresh == 0
    assert opts("-p", "offline").settings.powerthresh is None  # anything starting with "off"
    assert opts("-c", "-2").settings.deepestcache == ULONG_MAX - 1  # huge, accepted
    assert opts("-e", "-1").settings.migrateval == ULONG_MAX


@pytest.mark.parametrize("arg, policy", [
    ("", HintPolicy.EXACT), ("e", HintPolicy.EXACT), ("exact", HintPolicy.EXACT),
    ("s", HintPolicy.SUBSET), ("sub", HintPolicy.SUBSET), ("i", HintPolicy.IGNORE),
])
def test_hintpolicy_prefixes(arg, policy):
    """irqbalance 1.0-1.4: a prefix of exact, then subset, then ignore; empty selects exact."""
    assert opts(f"--hintpolicy={arg}").settings.hintpolicy is policy


def test_defaults():
    o = opts()
    assert (o.interval, o.oneshot, o.foreground, o.debug, o.journal) == (
        10, False, False, False, False)
    assert o.settings.hintpolicy is HintPolicy.IGNORE and o.settings.powerthresh is None
    assert o.state_dir == "/var/lib/pyirqbalance" and o.run_dir == "/run/irqbalance"


# --------------------------------------------------------------------------
# environment and precedence
# --------------------------------------------------------------------------


def test_presence_of_a_variable_turns_it_on():
    """irqbalance.c main: any value, even empty."""
    assert opts(env={"IRQBALANCE_ONESHOT": ""}).oneshot
    d = opts(env={"IRQBALANCE_DEBUG": "0"})
    assert d.debug and d.foreground
    j = opts(env={"INVOCATION_ID": "abc"})
    assert j.journal and j.foreground and not j.debug


def test_irqbalance_args_sit_below_the_command_line():
    env = {"IRQBALANCE_ARGS": "--interval=3 -i 9 --policyscript '/a b'"}
    assert opts(env=env).interval == 3
    o = opts("--interval=5", "-i", "10", env=env)
    assert o.interval == 5 and o.settings.banned_irqs == (9, 10) and o.policyscript == "/a b"


@pytest.mark.parametrize("value", ["--bogus", "--interval", "'unbalanced"])
def test_bad_irqbalance_args_name_the_variable(value):
    with pytest.raises(UsageError, match="IRQBALANCE_ARGS"):
        opts(env={"IRQBALANCE_ARGS": value})


def test_bad_banned_cpulist_is_a_config_error():
    with pytest.raises(ConfigError, match="IRQBALANCE_BANNED_CPULIST"):
        opts(env={"IRQBALANCE_BANNED_CPULIST": "0-x"})


def test_precedence_cli_over_env_over_file_over_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "balancing: {interval: 7, banned_irqs: [1], banned_cpulist: '3'}\n"
        "daemon: {oneshot: true}\nhooks: {policyscript: /from/file, timeout_s: 5}\n"
    )
    config = load_config(path)
    o = opts(config=config)
    assert o.interval == 7 and o.oneshot and o.policyscript == "/from/file" and o.hook_timeout == 5
    assert o.settings.banned_cpulist_env == "3"
    o = opts("-t", "2", "-i", "4", "-l", "/cli", config=config,
             env={"IRQBALANCE_BANNED_CPULIST": "5", "IRQBALANCE_ARGS": "-t 3"})
    assert o.interval == 2 and o.policyscript == "/cli"
    assert o.settings.banned_irqs == (1, 4) and o.settings.banned_cpulist_env == "5"


def test_sysroot_keeps_state_and_sockets_inside_the_tree(tmp_path):
    o = opts("--sysroot", str(tmp_path))
    assert o.state_dir == str(tmp_path / "var" / "lib" / "pyirqbalance")
    assert o.run_dir == str(tmp_path / "run" / "irqbalance")
    config = load_config_text(tmp_path, "daemon: {state_dir: /x/state, run_dir: /x/run}\n")
    o = opts("--sysroot", str(tmp_path), config=config)
    assert (o.state_dir, o.run_dir) == ("/x/state", "/x/run")


def load_config_text(tmp_path, text):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return load_config(path)


# --------------------------------------------------------------------------
# main(): exit status and messages
# --------------------------------------------------------------------------


def test_bad_option_exit_1_one_line_and_usage(capsys):
    assert main(["--bogus"], {}) == 1
    out, err = capsys.readouterr()
    assert err == "pyirqbalance: unrecognized option '--bogus'\n"
    assert out == cli.USAGE and out.startswith("Usage: pyirqbalance [OPTION]...")
    assert out.endswith("Try 'pyirqbalance --help' for more information.\n")


def test_bad_config_exit_2_one_line(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("balancing:\n  interval: 0\n")
    assert main(["--config", str(path)], {}) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "balancing.interval" in err


def test_missing_config_given_on_the_command_line_is_exit_2(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "none.yaml")], {}) == 2
    assert "No such file" in capsys.readouterr().err


def test_help_and_version(capsys):
    assert main(["--help"], {}) == 0
    text = capsys.readouterr().out
    for word in ("--oneshot", "--banscript", "--hintpolicy", "--restore", "IRQBALANCE_ARGS",
                 "SIGHUP", "Exit status"):
        assert word in text
    assert main(["-V"], {}) == 0
    assert capsys.readouterr().out.startswith("pyirqbalance version ")


def test_api_listen_turns_the_api_on():
    from pyirqbalance.service.cli import resolve
    from pyirqbalance.service.config import Config

    opts = resolve(["--api-listen=127.0.0.1:9300"], {}, Config())
    assert opts.config.api.enabled and opts.config.api.listen == "127.0.0.1:9300"
    with pytest.raises(UsageError):
        resolve(["--api-listen=nohost"], {}, Config())
