"""The instance lock and the pid file.

``run_dir/pyirqbalance.lock`` is held (``flock``) for the daemon's life and
names its pid, so a second daemon is refused with the holder's pid; the pid
file (``--pid``) is written as irqbalance writes it, without replacing the
file of a live process.
"""

from __future__ import annotations

import logging
import os

from ..errors import StartError
from .statefiles import NotAStateFile, read_small

__all__ = ["LOCK_FILE", "InstanceLock", "remove_pidfile", "write_pidfile"]

LOCK_FILE = "pyirqbalance.lock"
#: The pid file's mode, as irqbalance creates it.
PID_MODE = 0o644
#: The lock's mode: root writes it, its group may read the holder's pid.
LOCK_MODE = 0o640


class InstanceLock:
    """``run_dir/pyirqbalance.lock``, held (fcntl.flock) for the daemon's life."""

    def __init__(self, run_dir: str) -> None:
        self.path = os.path.join(run_dir, LOCK_FILE)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise StartError naming the holder."""
        import fcntl

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, LOCK_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.fchmod(fd, LOCK_MODE)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise StartError(
                f"another pyirqbalance is already running (pid {holder}, lock {self.path})"
            ) from None
        self._fd = fd

    def write_pid(self, pid: int) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{pid}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_pidfile(path: str, pid: int, log: logging.Logger) -> bool:
    """Write ``"<pid>\\n"`` atomically; an existing file of a live process is left alone.

    irqbalance never replaces an existing pid file (``O_EXCL``); a file naming
    a dead process is stale and replaced here, since the instance lock is ours.
    """
    tmp = f"{path}.{pid}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(f"{pid}\n")
            os.fchmod(f.fileno(), PID_MODE)  # irqbalance's world-readable pid file, any umask
        try:
            os.link(tmp, path)  # fails if the file exists: create-if-absent, complete
            return True
        except FileExistsError:
            try:
                # Without blocking: a FIFO or a device may be in its place.
                data = read_small(path, 4096)
            except NotAStateFile as err:
                log.warning("pid file %s: %s: not replaced", path, err)
                return False
            try:
                other = int((data or b"").split()[0])
            except (ValueError, IndexError):
                other = None
            if other is not None and other != pid and _pid_alive(other):
                log.warning("pid file %s names running process %d: not replaced", path, other)
                return False
            os.replace(tmp, path)
            return True
    except OSError as err:
        log.warning("cannot write pid file %s: %s", path, err.strerror)
        return False
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def remove_pidfile(path: str, pid: int) -> None:
    try:
        mine = (read_small(path, 4096) or b"").split()[:1] == [str(pid).encode()]
        if mine:
            os.unlink(path)
    except (OSError, ValueError):
        pass
