"""Background threads that never die silently.

Every thread beside the balancing loop (control socket, API servers, history
writer) runs its body through :func:`supervise`: an exception is logged in
one line (the traceback at debug level), counted, and the body started
again after a pause; after :data:`MAX_RESTARTS` failures in a row the
feature is disabled and the reason kept. :class:`ThreadHealth` is what
``/api/v1/health`` and the metrics show for each of them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["MAX_RESTARTS", "RESTART_PAUSE", "StatusBoard", "ThreadHealth", "short", "supervise"]

#: Failures in a row after which a thread's feature is disabled.
MAX_RESTARTS = 3
#: Seconds between a failure and the restart.
RESTART_PAUSE = 1.0
#: A body that ran this long before failing starts the count again.
_HEALTHY_RUN = 60.0


def short(value: object, limit: int = 64) -> str:
    """A one-line, escaped prefix of ``value`` for log lines and error messages."""
    text = value if isinstance(value, str) else str(value)
    parts: list[str] = []
    size = 0
    for c in text:
        piece = c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii")
        if size + len(piece) > limit:
            return "".join(parts) + "..."
        parts.append(piece)
        size += len(piece)
    return "".join(parts)


class ThreadHealth:
    """The state of one supervised thread: running, restarted, disabled and why."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self.state = "starting"
        self.restarts = 0
        self.error: str | None = None

    def set(self, state: str, error: str | None = None) -> None:
        with self._lock:
            self.state = state
            if error is not None:
                self.error = error

    def recovered(self) -> None:
        """Running, and the last error is over (the thread did its work again)."""
        with self._lock:
            self.state = "running"
            self.error = None

    def failed(self, error: str) -> None:
        with self._lock:
            self.restarts += 1
            self.error = error

    @property
    def ok(self) -> bool:
        return self.state in ("starting", "running", "stopped")

    def to_json(self) -> dict[str, object]:
        with self._lock:
            return {"state": self.state, "restarts": self.restarts, "error": self.error}


class StatusBoard:
    """The daemon's own condition, as ``/api/v1/health`` and the metrics show it.

    ``threads``: every supervised thread's :class:`ThreadHealth`; ``flags``:
    named conditions, each a callable returning None when all is well or a
    one-line description of the problem.
    """

    def __init__(self) -> None:
        self.threads: list[ThreadHealth] = []
        self.flags: dict[str, Callable[[], str | None]] = {}
        self.facts: dict[str, Callable[[], object]] = {}
        #: time.monotonic() when the last completed pass ended (None: no pass yet).
        self.last_pass: float | None = None
        #: Seconds between passes (the daemon's interval, kept current across reloads).
        self.interval: float | None = None
        #: SIGHUP reloads, and those that failed (the running configuration was kept).
        self.reloads = 0
        self.reload_failures = 0
        self.last_reload_ok = True

    def pass_age(self) -> float | None:
        """Seconds since the last completed pass ended (None: no pass yet)."""
        last = self.last_pass
        return None if last is None else max(0.0, time.monotonic() - last)

    def problems(self) -> list[str]:
        out = [f"{t.name}: {t.state} ({t.error})" for t in self.threads if not t.ok]
        for name, check in self.flags.items():
            problem = check()
            if problem is not None:
                out.append(f"{name}: {problem}")
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "threads": {t.name: t.to_json() for t in self.threads},
            "flags": {name: check() for name, check in self.flags.items()},
            **{name: fact() for name, fact in self.facts.items()},
            "problems": self.problems(),
        }


def supervise(
    body: Callable[[], None],
    health: ThreadHealth,
    log: logging.Logger,
    *,
    stopping: Callable[[], bool],
    on_disable: Callable[[str], None] | None = None,
    max_restarts: int = MAX_RESTARTS,
    pause: float = RESTART_PAUSE,
) -> None:
    """Run ``body`` until it returns or ``stopping()``; restart it when it raises.

    Meant as a thread's target. A failure is logged with the exception's type
    and a short message; after ``max_restarts`` failures in a row (a body that
    ran for a minute resets the count) the thread gives up, ``on_disable`` is
    called with the reason and the health says ``disabled``.
    """
    in_a_row = 0
    while not stopping():
        health.set("running")
        started = time.monotonic()
        try:
            body()
        except Exception as err:  # the point: nothing escapes unseen
            reason = f"{type(err).__name__}: {short(err, 200)}"
            health.failed(reason)
            log.debug("%s thread failure details", health.name, exc_info=True)
            in_a_row = 1 if time.monotonic() - started > _HEALTHY_RUN else in_a_row + 1
            if in_a_row > max_restarts:
                why = f"failed {in_a_row} times in a row, last: {reason}"
                log.error("%s: disabled (%s); balancing continues", health.name, why)
                health.set("disabled", why)
                if on_disable is not None:
                    on_disable(why)
                return
            log.error("%s: thread failed (%s); restarting in %g s (%d of %d)",
                      health.name, reason, pause, in_a_row, max_restarts)
            health.set("restarting")
            deadline = time.monotonic() + pause
            while not stopping() and time.monotonic() < deadline:
                time.sleep(0.05)
            continue
        break
    if health.state != "disabled":  # the body may have disabled its feature itself
        health.set("stopped")
