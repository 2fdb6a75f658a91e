"""Waiting for something another process, thread or the kernel does, with a deadline.

Signal delivery, process exit, a daemon's next pass and a file another process writes
all happen asynchronously: a test that looks once, right after causing them, can see the
state before. Tests wait for the outcome instead, polling until it holds or a generous
deadline passes, and then fail with a message that says what never happened.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Long enough for a busy 2-core machine; a passing test never waits this long.
DEFAULT_TIMEOUT_S = 30.0
POLL_S = 0.02


def wait_until(predicate: Callable[[], T], timeout: float = DEFAULT_TIMEOUT_S,
               what: str = "the condition") -> T:
    """Poll ``predicate`` until it returns something true and return that value.

    Raises AssertionError naming ``what`` if it is still false after ``timeout`` seconds.
    The predicate is always tried once more after the deadline, so a slow poll loop
    never fails a condition that holds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            value = predicate()
            if value:
                return value
            raise AssertionError(f"{what}: still not so after {timeout:g} s")
        time.sleep(POLL_S)


def process_state(pid: int) -> str | None:
    """The state letter of ``pid`` from /proc/<pid>/stat (``Z`` for a zombie), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # "pid (comm) S ...": comm may contain spaces and parentheses, the state follows the last ")"
    return data[data.rindex(b")") + 2 :].split(b" ", 1)[0].decode()


def is_dead(pid: int) -> bool:
    """True once ``pid`` has exited (gone, or a zombie nobody has reaped yet)."""
    return process_state(pid) in (None, "Z", "X")


def wait_dead(pid: int, timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Wait until ``pid`` has exited; AssertionError with its last state if it has not."""
    try:
        wait_until(lambda: is_dead(pid), timeout, f"process {pid} exits")
    except AssertionError as err:
        raise AssertionError(f"{err} (state {process_state(pid)!r})") from None


def read_when_complete(path: os.PathLike[str] | str, timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """The text of a file another process writes, once it exists and ends with a newline."""

    def complete() -> str | None:
        try:
            with open(path) as f:
                text = f.read()
        except FileNotFoundError:
            return None
        return text if text.endswith("\n") else None

    text = wait_until(complete, timeout, f"{path} is written")
    assert text is not None
    return text
