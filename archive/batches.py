"""Things written in batches from a background thread, not one by one on the request path.

A download record and an access-log line are due for every request; a write
per request (a SQLite transaction, a logging call with its lock and write) made
concurrent requests queue behind each other. Items are collected in memory and
handed to ``write`` together: every ``interval`` seconds, as soon as
``max_items`` wait, and when the process exits. A crash loses at most the last
interval's items.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable
from typing import Generic
from typing import TypeVar

log = logging.getLogger("pligt")

T = TypeVar("T")


class Batches(Generic[T]):
    """Collect items; a thread started in the process that adds them writes them in batches."""

    def __init__(
        self, write: Callable[[list[T]], None], what: str, interval: float = 0.5, max_items: int = 500
    ) -> None:
        self.write = write
        self.what = what
        self.interval = interval
        self.max_items = max_items
        self._pending: list[T] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pid: int | None = None
        atexit.register(self.flush)

    def add(self, item: T) -> None:
        with self._lock:
            if self._pid != os.getpid():  # started lazily, where items come: a thread does not survive fork
                self._pid = os.getpid()
                threading.Thread(target=self._run, name=f"pligt-{self.what}", daemon=True).start()
            self._pending.append(item)
            if len(self._pending) >= self.max_items:
                self._wake.set()

    def flush(self) -> None:
        """Write every waiting item now (readers of what is written call this first)."""
        with self._lock:
            batch, self._pending = self._pending, []
        if batch:
            try:
                self.write(batch)
            except Exception:  # a lost batch must not take the server down
                log.exception("could not write %d %s", len(batch), self.what)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()
