"""The suite never reads the host's /etc/pyirqbalance/pyirqbalance.yaml (tests/hermetic.py)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from pyirqbalance.service import cli
from pyirqbalance.service.config import DEFAULT_CONFIG_PATH
from tests import hermetic

ROOT = Path(__file__).resolve().parents[2]
#: Test modules that start the product themselves: inside the QEMU guest (its own /etc),
#: every argv with its own ``--config=``.
OWN_ARGV = {"tests/hermetic.py", "tests/realkernel/inguest.py"}
#: Modules that name the default path only in text (manual pages, help).
TEXT_ONLY = {"pyirqbalance/service/config.py", "pyirqbalance/manpages.py"}


def test_in_process_default_is_the_suites_config():
    path, required = cli.config_path(cli.parse_command_line([], {}))
    assert (path, required) == (str(hermetic.DEFAULTS_CONFIG), False)
    assert hermetic.DEFAULTS_CONFIG.is_file()
    for module, name in hermetic.DEFAULT_CONFIG_READERS:
        assert getattr(importlib.import_module(module), name) != DEFAULT_CONFIG_PATH


def test_every_module_that_falls_back_to_the_default_file_is_redirected():
    readers = {m.replace(".", "/") + ".py" for m, _ in hermetic.DEFAULT_CONFIG_READERS}
    users = {str(p.relative_to(ROOT)) for p in (ROOT / "pyirqbalance").rglob("*.py")
             if "DEFAULT_CONFIG_PATH" in p.read_text()}
    assert users - TEXT_ONLY == readers


def test_no_test_starts_the_product_without_an_explicit_config():
    direct = re.compile(r'"-m",\s*"pyirqbalance"')
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("*.py")
                 if str(p.relative_to(ROOT)) not in OWN_ARGV and direct.search(p.read_text())]
    assert offenders == [], "start the product with tests.hermetic.pyirqbalance_argv"
