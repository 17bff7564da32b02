"""Rendered index pages kept in memory, each valid for one catalog generation.

Its own module so that :mod:`pligt.web.services` (which holds one per app) and
:mod:`pligt.web.listing` (which fills it) need not import each other.
"""

from __future__ import annotations

import threading

#: Rendered pages kept per process (a few languages × pages × two indexes).
CACHE_ENTRIES = 64


class PageCache:
    """Rendered index pages, valid for one catalog generation."""

    def __init__(self) -> None:
        self._pages: dict[tuple[object, ...], tuple[int, str]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...], generation: int) -> str | None:
        with self._lock:
            found = self._pages.get(key)
        return found[1] if found and found[0] == generation else None

    def put(self, key: tuple[object, ...], generation: int, html: str) -> None:
        with self._lock:
            if len(self._pages) >= CACHE_ENTRIES:
                self._pages.clear()
            self._pages[key] = (generation, html)
