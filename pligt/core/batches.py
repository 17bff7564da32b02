"""Things written in batches from a background thread, not one by one on the request path.

A download record and an access-log line are due for every request; a write
per request (a SQLite transaction, a logging call with its lock and write) made
concurrent requests queue behind each other. Items are collected in memory and
handed to ``write`` together: every ``interval`` seconds, as soon as
``max_items`` wait, and when the process exits. A crash loses at most the last
interval's items.

A write that fails for a reason that passes (a :class:`~pligt.core.errors.StorageError`:
the catalog's write lock held by another process, a full disk) loses nothing:
its items are kept in memory and written with the next ones once the write
succeeds, tried again after a pause that doubles up to :data:`MAX_PAUSE`. What
is bounded is memory, not time (a record written late still carries its own
time): past ``max_kept`` waiting items the oldest are dropped, and each loss
is logged as an error with its count, as is whatever still waits when the
process exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Generic
from typing import TypeVar

from pligt.core.errors import StorageError

log = logging.getLogger("pligt")

T = TypeVar("T")

#: Items kept while they cannot be written (a download record takes about 250 bytes).
MAX_KEPT = 50_000
#: The longest pause, in seconds, between two tries of a write that keeps failing.
MAX_PAUSE = 30.0


class Batches(Generic[T]):
    """Collect items; a thread started in the process that adds them writes them in batches."""

    def __init__(
        self,
        write: Callable[[list[T]], None],
        what: str,
        interval: float = 0.5,
        max_items: int = 500,
        max_kept: int = MAX_KEPT,
    ) -> None:
        self.write = write
        self.what = what
        self.interval = interval
        self.max_items = max_items
        self.max_kept = max_kept
        #: Items dropped because more than ``max_kept`` waited (or the process exited with them).
        self.lost = 0
        self._pending: list[T] = []
        self._lock = threading.Lock()
        #: Held while a batch is taken and written: a reader's flush waits for one under way.
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._pid: int | None = None
        self._pause = 0.0  # seconds between tries while writes fail (0: they do not)
        self._next_try = 0.0
        atexit.register(self._exit)

    def add(self, item: T) -> None:
        with self._lock:
            if self._pid != os.getpid():  # started lazily, where items come: a thread does not survive fork
                self._pid = os.getpid()
                threading.Thread(target=self._run, name=f"pligt-{self.what}", daemon=True).start()
            self._pending.append(item)
            if len(self._pending) >= self.max_items and not self._pause:
                self._wake.set()

    def waiting(self) -> int:
        """Return how many items wait to be written (kept ones included)."""
        with self._lock:
            return len(self._pending)

    def flush(self) -> None:
        """Write every waiting item now (readers of what is written call this first).

        A :class:`StorageError` keeps the items for the next try; any other error
        (a bug, not a passing condition) loses the batch, logged with its traceback.
        A batch the background thread is writing at that moment is waited for:
        otherwise a reader would find nothing waiting and read before it is written.
        """
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                self.write(batch)
            except StorageError as e:
                self._keep(batch, e)
            except Exception:  # a lost batch must not take the server down
                self.lost += len(batch)
                log.exception("could not write %d %s; they are lost", len(batch), self.what)
            else:
                if self._pause:
                    log.warning("wrote %d %s that had waited while they could not be written", len(batch), self.what)
                    self._pause = 0.0

    def _keep(self, batch: list[T], error: StorageError) -> None:
        """Put a batch that could not be written back in front of the queue, within ``max_kept``."""
        with self._lock:
            self._pending[:0] = batch
            lost = max(0, len(self._pending) - self.max_kept)
            del self._pending[:lost]
            waiting = len(self._pending)
            self._pause = min(MAX_PAUSE, max(self.interval, self._pause * 2))
            self._next_try = time.monotonic() + self._pause
        log.error(
            "could not write %d %s (%s); %d kept in memory, trying again in %g s",
            len(batch),
            self.what,
            error.message,
            waiting,
            self._pause,
        )
        if lost:
            self.lost += lost
            log.error("lost %d %s: more than %d waited to be written", lost, self.what, self.max_kept)

    def _exit(self) -> None:
        """Write what waits as the process exits; say how much is lost if that fails."""
        self.flush()
        left = self.waiting()
        if left:
            self.lost += left
            log.error("lost %d %s: the process exits and they could not be written", left, self.what)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            if time.monotonic() >= self._next_try:
                self.flush()
