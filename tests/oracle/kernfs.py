"""A SysRoot whose /sys listings come back in real kernfs order.

On a real machine, readdir of a sysfs directory returns entries in kernfs
name-hash order (fs/kernfs/dir.c), and irqbalance's tie-breaks depend on it.
A fake tree on ext4 or tmpfs lists in some other order, so tests that compare
with recorded irqbalance runs use this root: same files, kernel listing order,
no mounts needed. /proc listings stay numeric, as procfs lists them.
"""

from __future__ import annotations

import os

from pyirqbalance.kernel.sysroot import SysRoot

from .mkfake import kernfs_order

__all__ = ["KernfsSysRoot"]


def _natural(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


class KernfsSysRoot(SysRoot):
    """SysRoot over a fake tree, listing directories as the kernel would."""

    __slots__ = ()

    def _order(self, path: str, names: list[str]) -> list[str]:
        if os.path.abspath(path).startswith(os.path.abspath(self.sys()) + os.sep) or (
            os.path.abspath(path) == os.path.abspath(self.sys())
        ):
            return kernfs_order(names)
        return sorted(names, key=_natural)

    def listdir(self, path: str) -> list[str] | None:
        names = super().listdir(path)
        return None if names is None else self._order(path, names)

    def scandir_dirs(self, path: str) -> list[str] | None:
        names = super().scandir_dirs(path)
        return None if names is None else self._order(path, names)
