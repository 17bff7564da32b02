"""What the download path asks the catalog, answered from memory until the catalog changes.

A crawler fetches thousands of files in a burst, and every request asks the
same two questions: which version is behind this URL, and is this credential
still valid. The answers are kept in memory, tagged with the catalog's
*lookups generation*: the catalog's one change counter, which triggers raise
on every change to items, versions and credentials, whichever process makes
it (a worker, the CLI, a cron job). A lookup reads that counter (one small
query: the download path's one touch of the catalog), and asks the catalog
again only after a change or for a URL not seen before. So a withdrawal or a revocation counts
from the next request, as before, whichever app server made it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any

from pligt.core.catalog import Catalog
from pligt.core.models import Credential
from pligt.core.models import Version

#: Enough for every version a deposit server holds; beyond it, answers are dropped and asked again.
MAX_ENTRIES = 20_000
#: How many versions :meth:`DownloadLookups.preload` reads at most (about 1 KiB of memory each).
PRELOAD_VERSIONS = 10_000


@dataclass
class _Answers:
    """Answers read while the catalog was at ``generation`` (or later)."""

    generation: int
    versions: dict[tuple[str, int | None], Version] = field(default_factory=dict)
    credentials: dict[int, Credential] = field(default_factory=dict)


class DownloadLookups:
    """Versions and credentials for downloads, kept per catalog generation (thread-safe)."""

    def __init__(
        self, catalog: Catalog, clock: Callable[[], datetime], on_change: Callable[[], None] | None = None
    ) -> None:
        self.catalog = catalog
        self.clock = clock
        self.on_change = on_change
        self._answers = _Answers(-1)
        self._lock = threading.Lock()

    def find(self, slug: str, number: int | None, credential_id: int | None) -> tuple[Version | None, bool | None]:
        """Return the version (or None) and whether the credential is active (None without one)."""
        answers = self._current()
        version = answers.versions.get((slug, number))
        if version is None:
            version = self.catalog.download_version(slug, number)
            if version is None:
                return None, None
            self._keep(answers.versions, (slug, number), version)
        if credential_id is None:
            return version, None
        return version, self._credential_active(answers, credential_id)

    def credential_active(self, credential_id: int) -> bool:
        """Tell whether a crawler credential is still valid (not revoked, not expired)."""
        return self._credential_active(self._current(), credential_id)

    def _credential_active(self, answers: _Answers, credential_id: int) -> bool:
        credential = answers.credentials.get(credential_id)
        if credential is None:
            credential = self.catalog.get_credential(credential_id)
            if credential is None:
                return False
            self._keep(answers.credentials, credential_id, credential)
        return credential.active(self.clock())

    def preload(self) -> int:
        """Read the retained versions in one query, before a harvest asks for them one by one.

        A new worker does this (pligt/warm.py): a harvest fetches every file once,
        so each would otherwise be a lookup of its own. Returns how many were read.
        """
        answers = self._current()
        versions = self.catalog.versions(limit=PRELOAD_VERSIONS)
        for version in versions:
            self._keep(answers.versions, (version.slug, version.number), version)
        return len(versions)

    def _current(self) -> _Answers:
        """The answers for the catalog as it is now: afresh if its change counter moved.

        Answers read after the generation was read are at least that new, so an
        answer is never older than its tag; a thread that read an older
        generation never replaces newer answers.
        """
        generation = self.catalog.lookups_generation()
        answers = self._answers
        if generation > answers.generation:
            with self._lock:
                if generation > self._answers.generation:
                    self._answers = _Answers(generation)
                    if self.on_change is not None:
                        self.on_change()
                answers = self._answers
        return answers

    @staticmethod
    def _keep(table: dict[Any, Any], key: object, value: object) -> None:
        if len(table) >= MAX_ENTRIES:
            table.clear()
        table[key] = value
