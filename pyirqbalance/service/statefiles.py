"""Reading the daemon's own small files without ever blocking on them.

A state, pid or token file can be replaced by anything: a FIFO (``open``
would wait for a writer forever), a directory, ``/dev/zero`` (a read would
never end) or a huge file. :func:`read_small` opens with ``O_NONBLOCK``,
checks that it is a regular file before reading, and reads at most
``limit`` bytes; anything else raises :class:`NotAStateFile`.
"""

from __future__ import annotations

import os
import re
import stat
import time

from ..errors import PyirqbalanceError

__all__ = ["KEEP_SET_ASIDE", "NotAStateFile", "prune_set_aside", "read_small", "set_aside",
           "utc_stamp"]

#: Set-aside copies of one state file kept (the newest); older ones are deleted.
KEEP_SET_ASIDE = 5


class NotAStateFile(PyirqbalanceError, ValueError):
    """A path that is not a regular file of at most the size allowed."""


def read_small(path: str, limit: int) -> bytes | None:
    """The whole content of the regular file ``path`` (None if it does not exist).

    Raises :class:`NotAStateFile` for anything but a regular file of at most
    ``limit`` bytes, OSError for other failures to open or read it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotAStateFile(f"not a regular file ({_kind(st.st_mode)})")
        if st.st_size > limit:
            raise NotAStateFile(f"larger than {limit} bytes")
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise NotAStateFile(f"larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a file"


def utc_stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def set_aside(path: str, why: str) -> str:
    """Rename ``path`` to ``path.<why>-<UTC time>``; the new name.

    The :data:`KEEP_SET_ASIDE` newest such copies of ``path`` are kept, older
    ones deleted (:func:`prune_set_aside`).
    """
    stamp = utc_stamp()
    # After the copies of the same second already there, so that pruning keeps it.
    n = max((order[1] for order, _ in _copies(path) if order[0] == stamp), default=0) + 1
    aside = f"{path}.{why}-{stamp}" if n == 1 else f"{path}.{why}-{stamp}.{n}"
    while os.path.lexists(aside):
        n += 1
        aside = f"{path}.{why}-{stamp}.{n}"
    os.replace(path, aside)
    prune_set_aside(path)
    return aside


_ASIDE = re.compile(r"\.[a-z][a-z-]*-([0-9]{8}T[0-9]{6}Z)(?:\.([0-9]+))?")


def _copies(path: str) -> list[tuple[tuple[str, int], str]]:
    """((UTC time, N), path) of every set-aside copy of ``path``."""
    folder, base = os.path.split(path)
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return []
    found = []
    for name in names:
        m = _ASIDE.fullmatch(name[len(base):]) if name.startswith(base + ".") else None
        if m:
            found.append(((m[1], int(m[2] or 1)), os.path.join(folder, name)))
    return found


def prune_set_aside(path: str, keep: int = KEEP_SET_ASIDE) -> list[str]:
    """Delete all but the ``keep`` newest set-aside copies of ``path``; the paths deleted.

    Newest by the UTC time in their names (then the ``.N`` of copies of the
    same second). A copy that is a directory is left alone; one that cannot
    be deleted is skipped.
    """
    found = sorted(_copies(path), reverse=True)
    removed = []
    for _, full in found[keep:]:
        try:
            if stat.S_ISDIR(os.lstat(full).st_mode):
                continue
            os.unlink(full)
        except OSError:
            continue
        removed.append(full)
    return removed
