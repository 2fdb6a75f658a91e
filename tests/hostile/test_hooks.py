"""Policy scripts that hang, leave children behind or print garbage, against the live daemon."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.hostile.conftest import sleeping, unique_seconds, wait_for


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_a_hanging_hook_does_not_stall_the_api_during_a_rescan(live, tmp_path):
    flag = tmp_path / "hang"
    hang = unique_seconds(3600)
    hook = _script(tmp_path / "policy",
                   f'if [ -e {flag} ]; then exec sleep {hang}; fi\necho balance_level=core\n')
    d = live(config=f"hooks:\n  policyscript: {hook}\n  timeout_s: 6\n").start()
    flag.touch()
    d.signal(signal.SIGHUP)
    # The rebuild now spends 3 x 6 s in timeouts (then the script is skipped).
    assert wait_for(lambda: "timed out after 6 s" in d.log())
    # Answered while the rebuild still waits on the hook (18 s in all): before its third
    # timeout is logged (the log, not a time limit, says when; a busy machine is slow).
    for irq in (127, 122):
        status, body = d.get(f"/api/v1/irqsummary/{irq}")
        assert status == 200 and body["irq"] == irq
    assert d.ask(b"setup").startswith(b"SLEEP 1 ")
    assert "not run again until reload" not in d.log()
    assert wait_for(lambda: "not run again until reload" in d.log(), 30)
    d.assert_balancing()
    assert wait_for(lambda: not sleeping(hang)), sleeping(hang)
    d.assert_clean_log()


def test_background_children_of_hooks_are_killed(live, tmp_path):
    mark = unique_seconds(987)
    hook = _script(tmp_path / "policy", f"(sleep {mark} &)\necho ban=false\n")
    d = live(config=f"hooks:\n  policyscript: {hook}\n").start()
    d.signal(signal.SIGHUP)  # one more build: every IRQ asked again
    d.assert_balancing(3)
    assert wait_for(lambda: not sleeping(mark)), sleeping(mark)
    assert "timed out" not in d.log()
    d.assert_clean_log()


def test_garbage_output_is_logged_short_escaped_and_once_per_build(live, tmp_path):
    hook = _script(tmp_path / "policy",
                   "head -c 200000 /dev/urandom >&2\nhead -c 2000000 /dev/zero | tr '\\0' x\n"
                   "echo\necho ban=false\n")
    d = live(config=f"hooks:\n  policyscript: {hook}\n").start()
    d.signal(signal.SIGHUP)
    d.assert_balancing(3)
    lines = d.log().splitlines()
    stderr_lines = [line for line in lines if "said on stderr" in line]
    output_lines = [line for line in lines if "Bad format for policy" in line]
    # One per build: start-up, then the SIGHUP rescan.
    assert len(stderr_lines) == 2 and len(output_lines) == 2, lines[-40:]
    for line in stderr_lines + output_lines:
        assert len(line) < 600 and line.isascii() and line.isprintable()
    d.assert_clean_log()
