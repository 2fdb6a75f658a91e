"""/proc/<pid>/: which program a process runs, by the three names the kernel shows.

* ``comm``: the executable's base name as the kernel recorded it at exec, cut to
  15 bytes (TASK_COMM_LEN - 1), newline-terminated; a thread may rename itself.
* ``cmdline``: argv as NUL-terminated strings; argv[0] is what the parent passed
  (a path, a bare name, or anything at all). Empty for kernel threads and zombies.
* ``exe``: a symlink to the executable; `` (deleted)`` is appended to the target
  when the file was replaced since (a package upgrade). Unreadable without
  ptrace rights over the process.

Every read goes through the :class:`~pyirqbalance.kernel.sysroot.SysRoot`, so a
fake tree can hold fake processes. A process that exits while it is being read
gives empty names, never an error.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from .sysroot import KernelReadError, SysRoot

__all__ = [
    "ProcessNames",
    "list_pids",
    "parse_argv0",
    "parse_comm",
    "parse_exe",
    "read_process_names",
]

_DELETED = " (deleted)"


class ProcessNames(NamedTuple):
    pid: int
    #: /proc/<pid>/comm without its newline ("" if unreadable).
    comm: str
    #: argv[0] from /proc/<pid>/cmdline ("" if empty or unreadable).
    argv0: str
    #: Target of /proc/<pid>/exe without the " (deleted)" mark ("" if unreadable).
    exe: str

    def basenames(self) -> frozenset[str]:
        """The program's names: comm and the base names of argv[0] and exe."""
        names = {self.comm, os.path.basename(self.argv0), os.path.basename(self.exe)}
        names.discard("")
        return frozenset(names)


def parse_comm(text: str) -> str:
    """The name in a ``comm`` file (one trailing newline dropped)."""
    return text[:-1] if text.endswith("\n") else text


def parse_argv0(data: bytes) -> str:
    """argv[0] of a ``cmdline`` file: the bytes up to the first NUL."""
    return data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def parse_exe(target: str) -> str:
    """The executable's path from the ``exe`` link's target."""
    return target[: -len(_DELETED)] if target.endswith(_DELETED) else target


def list_pids(root: SysRoot) -> list[int]:
    """The pids in /proc (its numeric entries), in readdir order."""
    names = root.listdir(root.proc()) or []
    return [int(name) for name in names if name.isdigit()]


def read_process_names(root: SysRoot, pid: int) -> ProcessNames:
    """The names of process ``pid``; empty strings for what cannot be read."""
    comm = root.try_read_text(root.proc(str(pid), "comm"))
    try:
        cmdline = root.read_bytes(root.proc(str(pid), "cmdline"))
    except KernelReadError:
        cmdline = b""
    exe = root.readlink(root.proc(str(pid), "exe"))
    return ProcessNames(
        pid,
        parse_comm(comm) if comm is not None else "",
        parse_argv0(cmdline),
        parse_exe(exe) if exe is not None else "",
    )
