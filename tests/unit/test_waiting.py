"""tests/waiting.py: the deadline helpers the suite waits with."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.waiting import is_dead, process_state, read_when_complete, wait_dead, wait_until


def test_wait_until_returns_the_first_true_value():
    calls = iter([0, "", None, "ready"])
    assert wait_until(lambda: next(calls), 10, "it is ready") == "ready"


def test_wait_until_names_what_never_happened():
    with pytest.raises(AssertionError, match=r"^the moon turns blue: still not so after 0.2 s$"):
        wait_until(lambda: False, 0.2, "the moon turns blue")


def test_a_child_is_dead_once_it_exited_even_unreaped():
    child = subprocess.Popen(["sleep", "60"])
    try:
        assert process_state(child.pid) in ("R", "S", "D")
        assert not is_dead(child.pid)
        child.kill()
        wait_dead(child.pid)  # a zombie until we reap it below
        assert process_state(child.pid) == "Z"
    finally:
        child.kill()
        child.wait()
    assert process_state(child.pid) is None and is_dead(child.pid)


def test_process_state_of_a_name_with_spaces_and_parentheses(tmp_path):
    weird = tmp_path / "a) b ("
    weird.symlink_to("/bin/sleep")
    child = subprocess.Popen([str(weird), "60"])
    try:
        wait_until(lambda: process_state(child.pid) == "S", what="the child sleeps")
    finally:
        child.kill()
        child.wait()


def test_read_when_complete_waits_for_the_newline(tmp_path):
    path = tmp_path / "pid"
    path.write_text("12")
    with pytest.raises(AssertionError, match="is written"):
        read_when_complete(path, 0.2)
    path.write_text(f"{os.getpid()}\n")
    assert read_when_complete(path) == f"{os.getpid()}\n"
