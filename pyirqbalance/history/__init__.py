"""Interrupt history: a SQLite store fed by the balancer's passes."""

from .recorder import HistoryRecorder, boot_identity, read_boot_id, reading_from_snapshot
from .records import (
    Boot,
    HistoryConfig,
    HistoryError,
    IrqMeta,
    IrqTotal,
    Reading,
    SeriesRow,
    WindowSummary,
)
from .store import HistoryStore

__all__ = [
    "Boot",
    "HistoryConfig",
    "HistoryError",
    "HistoryRecorder",
    "HistoryStore",
    "IrqMeta",
    "IrqTotal",
    "Reading",
    "SeriesRow",
    "WindowSummary",
    "boot_identity",
    "read_boot_id",
    "reading_from_snapshot",
]
