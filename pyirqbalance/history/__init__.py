"""Interrupt history: a SQLite store fed by the balancer's passes."""

from .recorder import HistoryRecorder, boot_identity, read_boot_id, reading_from_snapshot
from .store import (
    Boot,
    HistoryConfig,
    HistoryError,
    HistoryStore,
    IrqMeta,
    IrqTotal,
    Reading,
    SeriesRow,
    WindowSummary,
)

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
