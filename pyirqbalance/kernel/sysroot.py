"""The one door to /proc and /sys.

Every kernel file pyirqbalance reads or writes is reached through a
:class:`SysRoot`: ``SysRoot("/")`` is the running machine, ``SysRoot(DIR)``
a captured or generated tree with ``DIR/proc`` and ``DIR/sys`` (``--sysroot``,
like lscpu's ``-s``). No other module opens a kernel path.

Reads are whole-file ``os.read`` loops that never trust ``st_size`` (procfs
reports 0 or 4096, and the test harness serves some files from FIFOs).
Directory listings keep the raw ``readdir`` order: on kernfs that is name-hash
order, and irqbalance's tie-breaks depend on it, so nothing here sorts.
Failures are translated once, here: readers return ``None`` (or raise
:class:`KernelReadError` where the caller asked for it), the writer returns the
errno instead of raising.
"""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Iterator

from ..errors import KernelReadError

__all__ = ["KernelReadError", "SysRoot"]

_CHUNK = 1 << 20
#: First request for a file of unknown size (sysfs attributes are at most a page).
_FIRST = 1 << 14
#: What a pipe returns per read(2) at most (its default capacity).
_PIPE = 1 << 16
#: Room added after a file's last length when reading it into the same buffer.
_MARGIN = bytes(_PIPE)
#: Largest single read(2) asked for (pipes return 64 KiB at a time anyway).
_MAX_CHUNK = 1 << 26


class SysRoot:
    """A machine's /proc and /sys, possibly under a prefix directory."""

    __slots__ = ("_irq", "_proc", "_sys", "base")

    def __init__(self, base: str | os.PathLike[str] = "/") -> None:
        self.base = os.fspath(base)
        self._proc = os.path.join(self.base, "proc")
        self._sys = os.path.join(self.base, "sys")
        self._irq = os.path.join(self._proc, "irq", "")

    def __repr__(self) -> str:
        return f"SysRoot({self.base!r})"

    @property
    def is_live(self) -> bool:
        """True for the running machine's own /proc and /sys."""
        return os.path.realpath(self.base) == "/"

    # ---------------- paths ----------------

    def proc(self, *parts: str) -> str:
        """Path of ``/proc/<parts>`` under this root."""
        return os.path.join(self._proc, *parts)

    def irq_file(self, irq: int, name: str) -> str:
        """Path of ``/proc/irq/<irq>/<name>`` (the per-pass one: no join)."""
        return f"{self._irq}{irq}/{name}"

    def sys(self, *parts: str) -> str:
        """Path of ``/sys/<parts>`` under this root."""
        return os.path.join(self._sys, *parts)

    # ---------------- reading ----------------

    @staticmethod
    def read_bytes(path: str, size_hint: int = 0) -> bytes:
        """Whole file as bytes; raises :class:`KernelReadError`.

        procfs reports a size of 0, so the first read asks for ``size_hint``
        (the caller's last size) plus a margin, or 16 KiB; seq_file fills the
        whole buffer in one call, so a big file usually arrives in one piece,
        without a join. A full buffer doubles the next request; a short read
        (a pipe: 64 KiB at a time) makes the next ones pipe-sized, so no
        read(2) gets a buffer much bigger than what it returns.
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            raise KernelReadError(err.errno, f"cannot open {path}: {err.strerror}") from err
        try:
            want = max(size_hint + 65536 if size_hint else _FIRST, os.fstat(fd).st_size + 1)
            chunks = []
            while True:
                data = os.read(fd, want)
                if not data:
                    break
                chunks.append(data)
                want = min(want * 2, _MAX_CHUNK) if len(data) == want else _PIPE
        except OSError as err:
            raise KernelReadError(err.errno, f"cannot read {path}: {err.strerror}") from err
        finally:
            os.close(fd)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @staticmethod
    def read_into(path: str, buf: bytearray) -> bytearray:
        """Whole file into ``buf``, which ends up exactly the file; raises :class:`KernelReadError`.

        For a big file read every pass (/proc/interrupts: 6 MB at 256 CPUs),
        with ``buf`` holding last pass's copy: a fresh multi-MB ``bytes``
        per read costs a page fault per 4 KiB (three times the read itself);
        a bytearray used again has its pages. It gets a margin for a file
        grown since last time (within its allocation after the first pass),
        doubles when even that is filled, and is cut back to the file.
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            raise KernelReadError(err.errno, f"cannot open {path}: {err.strerror}") from err
        try:
            buf += _MARGIN
            pos = 0
            while True:
                if pos == len(buf):
                    buf += bytes(pos)
                with memoryview(buf) as view:
                    got = os.readv(fd, (view[pos:],))
                if not got:
                    break
                pos += got
        except OSError as err:
            raise KernelReadError(err.errno, f"cannot read {path}: {err.strerror}") from err
        finally:
            os.close(fd)
        del buf[pos:]
        return buf

    @staticmethod
    def read_chunks(path: str, size: int = _CHUNK) -> Iterator[bytes]:
        """The file as consecutive pieces of at most ``size`` bytes (or :class:`KernelReadError`).

        For big files read once per pass (/proc/interrupts: 93 MB at 1024
        CPUs), so they are never whole in memory. A generator: the file is
        opened at the first ``next()`` and closed at the end, at ``close()``
        or when the generator is dropped.
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            raise KernelReadError(err.errno, f"cannot open {path}: {err.strerror}") from err
        try:
            while True:
                try:
                    data = os.read(fd, size)
                except OSError as err:
                    raise KernelReadError(err.errno, f"cannot read {path}: {err.strerror}") from err
                if not data:
                    return
                if len(data) < size:
                    size = _PIPE  # a short read: a pipe, which never returns more
                yield data
        finally:
            os.close(fd)

    @classmethod
    def read_text(cls, path: str) -> str:
        """Whole file as text; raises :class:`KernelReadError`."""
        return cls.read_bytes(path).decode("utf-8", "surrogateescape")

    @classmethod
    def try_read_text(cls, path: str, size_hint: int = 0) -> str | None:
        """Whole file as text, or ``None`` when it cannot be read."""
        try:
            return cls.read_bytes(path, size_hint).decode("utf-8", "surrogateescape")
        except KernelReadError:
            return None

    @classmethod
    def read_first_line(cls, path: str) -> str | None:
        """First line (newline kept, as irqbalance's getline) or ``None``.

        An empty file also gives ``None``: irqbalance leaves the default value
        when getline reads nothing.
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            data = os.read(fd, 4096)  # a mask of 8192 CPUs is 2304 bytes
            while b"\n" not in data:
                more = os.read(fd, 65536)
                if not more:
                    break
                data += more
        except OSError:
            return None
        finally:
            os.close(fd)
        if not data:
            return None
        line, nl, _ = data.partition(b"\n")
        return (line + nl).decode("utf-8", "surrogateescape")

    @staticmethod
    def listdir(path: str) -> list[str] | None:
        """Entry names in raw readdir order, or ``None`` if not a readable dir."""
        try:
            return os.listdir(path)
        except OSError:
            return None

    @staticmethod
    def scandir_dirs(path: str) -> list[str] | None:
        """Names of the sub-directories (d_type DT_DIR, symlinks not followed)."""
        try:
            with os.scandir(path) as it:
                return [e.name for e in it if e.is_dir(follow_symlinks=False)]
        except OSError:
            return None

    @staticmethod
    def readlink(path: str) -> str | None:
        """Target of a symlink, or ``None``."""
        try:
            return os.readlink(path)
        except OSError:
            return None

    @staticmethod
    def exists(path: str) -> bool:
        return os.path.exists(path)

    @staticmethod
    def isdir(path: str) -> bool:
        return os.path.isdir(path)

    @staticmethod
    def has_write_bit(path: str) -> bool:
        """Whether the file's mode allows writing at all (False if it is missing)."""
        try:
            return bool(os.stat(path).st_mode & 0o222)
        except OSError:
            return False

    # ---------------- writing ----------------

    @staticmethod
    def write(path: str, data: str) -> int:
        """Write ``data`` to an existing kernel file; return 0 or the errno.

        One ``write(2)`` of the whole text, so the kernel sees it in one piece
        and its verdict (EIO, EINVAL, ENOSPC ...) comes back here rather than
        at a later flush. The file is never created: a vanished IRQ is ENOENT.
        """
        try:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        except OSError as err:
            return err.errno or _errno.EIO
        payload = data.encode()
        try:
            written = os.write(fd, payload)
        except OSError as err:
            os.close(fd)
            return err.errno or _errno.EIO
        try:
            os.close(fd)
        except OSError as err:  # pragma: no cover - procfs reports errors at write()
            return err.errno or _errno.EIO
        return 0 if written == len(payload) else _errno.EIO
