"""The daemon's signal handlers never wait for a lock, so SIGTERM always stops the loop.

Python runs a handler on the main thread between two bytecodes, also while that
thread holds a lock. A handler that takes one (``threading.Event.set`` to wake
the loop) hangs for good when the signal lands while the loop itself is inside
that Event's ``wait`` or ``clear``. A second process sends a storm of signals
while the loop waits as the daemon does, so many land inside the waiting.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.waiting import DEFAULT_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from pyirqbalance.service.daemon import _Signals

    signals = _Signals()
    signals.install()
    me = os.getpid()
    child = os.fork()
    if child == 0:
        for _ in range(300000):
            os.kill(me, signal.SIGUSR1)
        os._exit(0)
    woken = 0
    while os.waitpid(child, os.WNOHANG) == (0, 0):
        if signals.wait(0.0005):
            woken += 1
    assert signals.dump and not signals.stop, (signals.dump, signals.stop)
    os.kill(me, signal.SIGTERM)
    while not signals.stop:
        signals.wait(1.0)
    signals.close()
    print("stopped", woken)
""")


def test_a_storm_of_signals_never_blocks_the_handler_and_sigterm_still_stops():
    try:
        out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                             cwd=ROOT, timeout=DEFAULT_TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        tail = (err.stderr or b"")[-2000:]
        raise AssertionError(f"the loop hung under a storm of signals: {tail!r}") from None
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("stopped "), out.stdout
    assert int(out.stdout.split()[1]) > 0  # the storm did wake the loop
