"""The YAML configuration: shipped file, validation messages, did-you-mean."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pyirqbalance.engine.model import HintPolicy
from pyirqbalance.engine.topology import compute_banned_cpus
from pyirqbalance.kernel.sysfs import CpuFacts
from pyirqbalance.service.config import (
    Config,
    ConfigError,
    build_settings,
    check_banned_cpus_env,
    config_keys,
    load_config,
    parse_config,
)

SHIPPED = Path(__file__).resolve().parents[2] / "etc" / "pyirqbalance.yaml"


def test_shipped_file_is_the_defaults_and_documents_every_key():
    assert load_config(SHIPPED) == Config()
    data = yaml.safe_load(SHIPPED.read_text())
    assert {name: tuple(body) for name, body in data.items()} == config_keys()


def test_defaults_are_irqbalance_defaults():
    """irqbalance.c's defaults: interval 10, deepestcache 2, powerthresh off, migrateval 0;
    1.0-1.4's hint policy ignore."""
    b = Config().balancing
    assert (b.interval, b.deepestcache, b.powerthresh, b.migrateval, b.hintpolicy) == (
        10, 2, None, 0, HintPolicy.IGNORE)
    assert Config().hooks.timeout_s == 2
    assert Config().api.listen == "127.0.0.1:9199" and not Config().api.enabled
    assert Config().socket.enabled


def test_empty_file_gives_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("# nothing\n")
    assert load_config(path) == Config()


def test_values_are_read(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "balancing:\n  interval: 3\n  powerthresh: 2\n  banned_irqs: [9, 12]\n"
        "  banned_modules: [nvme]\n  banned_cpulist: '0-1'\n  hintpolicy: subset\n"
        "hooks:\n  timeout_s: 0.5\n  policyscript: /etc/p\n"
        "history: {enabled: true, retention_days: 7}\n"
    )
    c = load_config(path)
    assert c.balancing.interval == 3 and c.balancing.powerthresh == 2
    assert c.balancing.banned_irqs == (9, 12) and c.balancing.banned_modules == ("nvme",)
    assert c.balancing.banned_cpulist == "0-1" and c.balancing.hintpolicy is HintPolicy.SUBSET
    assert c.hooks.timeout_s == 0.5 and c.hooks.policyscript == "/etc/p"
    assert c.history.enabled and c.history.retention_days == 7


@pytest.mark.parametrize("text", ["off", "'off'", "null", "false"])
def test_powerthresh_off_spellings(text):
    """YAML 1.1 reads bare ``off`` as false: every spelling means off."""
    config = parse_config(yaml.safe_load(f"balancing:\n  powerthresh: {text}\n"))
    assert config.balancing.powerthresh is None


@pytest.mark.parametrize(
    "text, words",
    [
        ("balancing:\n  intervall: 5\n",
         ["unknown key 'balancing.intervall'", "did you mean 'interval'"]),
        ("balancin:\n  interval: 5\n", ["unknown key 'balancin'", "did you mean 'balancing'"]),
        ("hooks:\n  timout_s: 1\n", ["did you mean 'timeout_s'"]),
        ("balancing:\n  interval: 0\n",
         ["balancing.interval", "0", "out of range", "1 to 2147483647"]),
        ("balancing:\n  interval: yes\n", ["balancing.interval", "True", "an integer"]),
        ("balancing:\n  interval: '5'\n", ["balancing.interval", "'5'"]),
        ("balancing:\n  deepestcache: 0\n", ["balancing.deepestcache", "out of range"]),
        ("balancing:\n  powerthresh: -1\n", ["balancing.powerthresh", "out of range"]),
        ("balancing:\n  hintpolicy: sub\n",
         ["balancing.hintpolicy", "'sub'", "exact, subset or ignore"]),
        ("balancing:\n  banned_irqs: 5\n", ["balancing.banned_irqs", "a list"]),
        ("balancing:\n  banned_irqs: [1, x]\n", ["balancing.banned_irqs[1]", "'x'"]),
        ("balancing:\n  banned_cpulist: '0-'\n",
         ["balancing.banned_cpulist", "'0-'", "not a CPU list"]),
        ("hooks:\n  timeout_s: 0\n", ["hooks.timeout_s", "out of range"]),
        ("api:\n  listen: localhost\n", ["api.listen", "HOST:PORT"]),
        ("api:\n  listen: 'h:70000'\n", ["api.listen"]),
        ("socket: on\n", ["socket", "mapping"]),
        ("- a\n- b\n", ["mapping of sections"]),
    ],
)
def test_bad_values_name_key_value_and_range(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    message = str(exc.value)
    assert "\n" not in message and message.startswith(str(path))
    for word in words:
        assert word in message


def test_yaml_syntax_error_gives_the_position(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("balancing:\n  interval: [1,\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert "YAML error at line" in str(exc.value) and "\n" not in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="No such file"):
        load_config(tmp_path / "none.yaml")


@pytest.mark.parametrize("env", [
    {"IRQBALANCE_BANNED_CPULIST": "x"},
    {"IRQBALANCE_BANNED_CPULIST": "1-"},
    {"IRQBALANCE_BANNED_CPUS": "fg"},
    {"IRQBALANCE_BANNED_CPUS": "1,,2"},
])
def test_bad_banned_cpu_variables_are_refused(env):
    with pytest.raises(ConfigError) as exc:
        check_banned_cpus_env(env)
    assert next(iter(env)) in str(exc.value)


#: The machine's own choice, which a set variable replaces: CPU 5 is isolated.
_ISOLATED_5 = CpuFacts(dirs=(), online=0xFF, isolated=1 << 5, nohz_full=0)


@pytest.mark.parametrize("env, banned", [
    ({"IRQBALANCE_BANNED_CPULIST": "-"}, 0),                    # CRI-O's "ban nothing"
    ({"IRQBALANCE_BANNED_CPULIST": ""}, 1 << 5),                # empty: ignored (1.9)
    ({"IRQBALANCE_BANNED_CPULIST": "0-3,8,10-11"}, 0b1101_0000_1111),
    ({"IRQBALANCE_BANNED_CPUS": "0"}, 0),                       # the classic "ban nothing"
    ({"IRQBALANCE_BANNED_CPUS": "ff,00000000"}, 0xFF << 32),
])
def test_good_banned_cpu_variables_are_accepted_and_ban_what_they_say(env, banned):
    """cputree.c setup_banned_cpus: a non-empty variable replaces the isolated/nohz_full default."""
    check_banned_cpus_env(env)  # raises for a bad value
    settings = build_settings(Config().balancing, env, hz=100)
    assert compute_banned_cpus(settings, _ISOLATED_5).mask == banned


def test_environment_beats_the_file_for_the_banned_list():
    bal = Config().balancing.__class__(banned_cpulist="2")
    assert build_settings(bal, {}, hz=100).banned_cpulist_env == "2"
    assert build_settings(bal, {"IRQBALANCE_BANNED_CPULIST": "-"}, hz=100).banned_cpulist_env == "-"
    s = build_settings(bal, {"IRQBALANCE_BANNED_CPUS": "4"}, hz=250)
    assert s.banned_cpus_env == "4" and s.hz == 250
