"""Product invocations that never read the host's configuration.

pyirqbalance and pyirqbalancectl read ``/etc/pyirqbalance/pyirqbalance.yaml`` when no
``--config`` is given; a file there (``banned_cpulist: '1'``, an API section) would change
what the tests see. So every invocation in the suite gets an explicit configuration:

* a subprocess is started with :func:`pyirqbalance_argv` (``python -m pyirqbalance
  --config=DEFAULTS ARGS``; a ``--config`` in ARGS comes later and wins);
* in-process calls (``cli.main``, ``ctl.main``) find :data:`DEFAULTS_CONFIG` where they
  would look for the default file (the autouse fixture ``hermetic_default_config`` in
  tests/conftest.py).

tests/unit/test_hermetic.py checks that no test starts the product any other way.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: An empty configuration: every value is the built-in default.
DEFAULTS_CONFIG = Path(__file__).resolve().parent / "fixtures" / "config" / "defaults.yaml"

#: The modules that fall back to the default file, and the name they read it from.
DEFAULT_CONFIG_READERS = (
    ("pyirqbalance.service.cli", "DEFAULT_CONFIG_PATH"),
    ("pyirqbalance.api.ctl", "DEFAULT_CONFIG_PATH"),
)


def pyirqbalance_argv(*args: str) -> list[str]:
    """``python -m pyirqbalance --config=DEFAULTS ARGS`` (a later ``--config`` wins)."""
    return [sys.executable, "-m", "pyirqbalance", f"--config={DEFAULTS_CONFIG}", *args]
