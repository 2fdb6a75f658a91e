"""Reading the daemon's own small files without ever blocking on them.

A state, pid or token file can be replaced by anything: a FIFO (``open``
would wait for a writer forever), a directory, ``/dev/zero`` (a read would
never end) or a huge file. :func:`read_small` opens with ``O_NONBLOCK``,
checks that it is a regular file before reading, and reads at most
``limit`` bytes; anything else raises :class:`NotAStateFile`.
"""

from __future__ import annotations

import os
import stat
import time

from ..errors import PyirqbalanceError

__all__ = ["NotAStateFile", "read_small", "set_aside", "utc_stamp"]


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
    """Rename ``path`` to ``path.<why>-<UTC time>`` (kept, never deleted); the new name."""
    aside = f"{path}.{why}-{utc_stamp()}"
    n = 1
    while os.path.lexists(aside):
        n += 1
        aside = f"{path}.{why}-{utc_stamp()}.{n}"
    os.replace(path, aside)
    return aside
