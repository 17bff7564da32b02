"""Download records written in batches, off the download path.

Each crawler download is recorded (proof of deposit), but a write transaction
per request makes concurrent downloads queue for SQLite's single write lock
(measured: p99 of about a second at 16 connections). Records are written
together every half second, and when the process exits (:mod:`pligt.core.batches`).
A crash loses at most that half second of records, never a download. Records
that cannot be written (the catalog locked by another process, its disk full)
stay in memory and are written once the catalog takes them again.
"""

from __future__ import annotations

from datetime import datetime

from pligt.core.batches import Batches
from pligt.core.catalog import Catalog

#: (credential, version, status, bytes sent, complete, time, attributed by, crawler pattern).
Row = tuple[int | None, int, int, int, bool, datetime, str | None, str | None]


class DownloadRecorder:
    """Queue download records in memory; a background thread writes them in batches."""

    def __init__(self, catalog: Catalog, interval: float = 0.5, max_batch: int = 500) -> None:
        self._batches: Batches[Row] = Batches(catalog.record_downloads, "download records", interval, max_batch)

    def record(self, row: Row) -> None:
        """Queue one record (see :data:`Row`)."""
        self._batches.add(row)

    def flush(self) -> None:
        """Write every queued record now (readers of the records call this first)."""
        self._batches.flush()

    def waiting(self) -> int:
        """Return how many records wait to be written (those kept after a failed write included)."""
        return self._batches.waiting()
