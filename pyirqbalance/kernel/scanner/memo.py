"""What a scan keeps for the next one: the file or its lines' hashes, and each line's row."""

from __future__ import annotations

from collections.abc import Mapping

from ..irqcounts_ref import IrqCount
from .cells import Shape

__all__ = ["Memo", "resync"]


class Memo:
    """A scanned file kept for the next scan: its bytes and, per line after
    the header, the line's length, row (None: no colon), "MSI" flag and shape;
    and which lines were parsed anew (changed since the scan before).

    A file too big to keep has ``hashes`` instead of its bytes: per line,
    the 64-bit keyed hash of its bytes, or, when its shape names one changed
    cell, the hashes of the bytes before and after that cell, XORed.
    """

    __slots__ = (
        "cells",
        "data",
        "fresh",
        "hashes",
        "head",
        "lens",
        "msi",
        "ncells",
        "rows",
        "shapes",
    )

    def __init__(self, data: bytes | bytearray = b"", head: int = 0, ncells: int = 0) -> None:
        self.data, self.head, self.ncells = data, head, ncells
        self.lens: list[int] = []
        self.rows: list[IrqCount | None] = []
        self.msi: list[bool] = []
        self.shapes: list[Shape | None] = []
        #: Indexes of the lines parsed anew: the likeliest to change again.
        self.fresh: list[int] = []
        self.hashes: list[int] | None = None
        #: Hashed mode: line index -> its non-blank-"0" cells, for rows that
        #: changed with no one changed cell known.
        self.cells: dict[int, dict[int, bytes]] = {}

    def add(
        self, size: int, row: IrqCount | None, msi: bool, shape: Shape | None, fresh: bool = True
    ) -> None:
        if fresh:
            self.fresh.append(len(self.lens))
        self.lens.append(size)
        self.rows.append(row)
        self.msi.append(msi)
        self.shapes.append(shape)

    def take(self, old: Memo, k: int, j: int) -> None:
        """Lines k..j-1 of ``old``, unchanged."""
        self.lens += old.lens[k:j]
        self.rows += old.rows[k:j]
        self.msi += old.msi[k:j]
        self.shapes += old.shapes[k:j]


def resync(where: Mapping[int, int], irq: int, k: int) -> tuple[int, bool]:
    """Where the comparison with the last scan goes on after a row parsed anew.

    ``k`` is the old line the row was compared with; ``where`` maps the
    last scan's IRQs to their lines. Returns (the old line to compare the
    next line with, whether the row was in its old place): just after the
    IRQ's old line (the lines skipped to it vanished), or ``k`` again for an
    IRQ the last scan did not have (it was inserted before line ``k``).
    """
    i = where.get(irq)
    return (k if i is None else i + 1), i == k
