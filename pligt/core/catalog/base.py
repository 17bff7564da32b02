"""The catalog's interface and every portable SQL statement of Pligt, written once.

:class:`Catalog` holds the queries; a dialect subclass (:mod:`.sqlite`,
:mod:`.postgresql`) supplies only what differs between engines: connecting,
the write lock, turning engine errors into domain errors, placeholders, and
its migrations. The SQL here uses ``?`` and ``:name`` placeholders (SQLite's;
the PostgreSQL catalog rewrites them once per statement) and ``RETURNING id``.
A new table is one migration per dialect plus its queries here.
"""

from __future__ import annotations

import abc
import base64
import contextlib
import dataclasses
import functools
import json
import re
from collections.abc import Callable
from collections.abc import Hashable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from typing import Protocol
from typing import TypeVar
from typing import cast
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from pligt.core.errors import Conflict
from pligt.core.errors import StorageError
from pligt.core.models import ATTRIBUTIONS
from pligt.core.models import AccessRequest
from pligt.core.models import Credential
from pligt.core.models import Evidence
from pligt.core.models import HarvestRow
from pligt.core.models import Item
from pligt.core.models import Release
from pligt.core.models import StoredCheckpoint
from pligt.core.models import Version
from pligt.core.models import from_text
from pligt.core.models import to_text
from pligt.core.proof.audit import GENESIS
from pligt.core.proof.audit import AuditEntry
from pligt.core.proof.audit import canonical_json
from pligt.core.proof.audit import entry_hash
from pligt.core.proof.audit import seal_personal
from pligt.core.retention import checked_now

_R = TypeVar("_R")

#: The schema version both dialects' migrations lead to (each dialect's list ends here).
SCHEMA_VERSION = 6

#: Seconds a write waits for another process's write lock: long enough for the CLI,
#: cron jobs and the batch writer to outwait any other writer's burst (a purge, a
#: fixity run recording its SHA-1s, a migration).
BUSY_TIMEOUT = 30.0
#: Seconds a web request's write waits for it: someone at a browser or a crawler
#: with its own timeout is better told 503 with Retry-After after a few seconds
#: than held 30 s by a worker thread that other requests need meanwhile; no
#: writer of Pligt's own holds the lock anywhere near this long.
REQUEST_BUSY_TIMEOUT = 5.0

#: A rule for a per-client count: (count, last counted) before, delta, limit, quiet seconds, now
#: -> the count and when it was last counted after, and whether the client is refused.
CountRule = Callable[[tuple[int, float], int, int, float, float], tuple[int, float, bool]]

#: The tables of the catalog in an order that respects their references, each with its key
#: column: what a copy (``pligt migrate-catalog``, ``pligt backup``) moves and counts.
#: ``client_counts`` is left out: it holds only counters that lapse within the hour.
TABLES: tuple[tuple[str, str], ...] = (
    ("items", "id"),
    ("versions", "id"),
    ("access_requests", "id"),
    ("credentials", "id"),
    ("releases", "id"),
    ("downloads", "id"),
    ("audit_log", "seq"),
    ("checkpoints", "id"),
    ("meta", "key"),
    ("owner", "id"),
)


_VERSION_COLUMNS = """
    v.id, i.slug, i.title, i.visibility, v.number, v.filename, v.size, v.sha256,
    v.content_type, v.storage_key, v.published_at, v.retain_until, v.withdrawn_at, v.sha1
"""


class Row(Protocol):
    """A result row: by column name or position (``sqlite3.Row`` and the PostgreSQL catalog's rows)."""

    def __getitem__(self, key: str | int, /) -> Any: ...

    def keys(self) -> list[str]: ...


class Result(Protocol):
    """What running a statement answers: its rows (one, all, or one by one) and how many it changed."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


@dataclass(frozen=True)
class Dialect:
    """The few SQL fragments that are spelled differently per engine."""

    name: str
    #: The request number an audit entry's data names, as an integer expression.
    audit_request: str


class Catalog(abc.ABC):
    """The catalog of items, versions, access requests, crawler credentials, downloads, audit log and owner."""

    dialect: Dialect
    #: Where the catalog is, for messages (a path, or a URL without its password).
    label: str
    #: Whether several machines can share this catalog (its per-client counters then live in it).
    shared_between_machines = False
    busy_timeout: float

    # -- what each dialect supplies ------------------------------------------------

    @abc.abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Result:
        """Run one statement (in the current transaction, if there is one)."""

    @abc.abstractmethod
    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per row of parameters."""

    def _insert_many(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Insert rows into a table of the schema's own (PostgreSQL: one ``COPY``, not a statement per row)."""
        marks = ", ".join("?" * len(columns))
        self._executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    @abc.abstractmethod
    def _write(self) -> contextlib.AbstractContextManager[None]:
        """Run a write transaction under the catalog's one write lock, taken up front.

        Nested uses join the outermost transaction. A failure anywhere, the
        COMMIT's included, leaves nothing of the transaction behind.
        """

    @abc.abstractmethod
    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        """Read everything inside the block from one consistent state of the catalog (for copies)."""

    @abc.abstractmethod
    def migrate(self) -> None:
        """Create or upgrade the schema to :data:`SCHEMA_VERSION`."""

    @abc.abstractmethod
    def schema_version(self) -> int:
        """Return the schema version the catalog is at (0: empty)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connections this object holds (it reconnects when used again)."""

    @abc.abstractmethod
    def backup_to(self, path: Path) -> None:
        """Write a consistent copy of the whole catalog to the new SQLite file ``path``."""

    @abc.abstractmethod
    def reset_keys(self) -> None:
        """After rows were copied in with their ids: make new rows' ids follow the highest copied."""

    # -- shared behaviour -------------------------------------------------------

    def _insert(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> int:
        """Run an ``INSERT … RETURNING id``; return the new row's id."""
        rows = self._execute(sql, params).fetchall()  # all: SQLite ends the statement only then
        return int(rows[0][0])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several writes (and their audit entries) into one atomic transaction."""
        with self._write():
            yield

    def ping(self) -> None:
        """Raise :class:`StorageError` unless the catalog answers with the expected schema."""
        version = self.schema_version()
        if version < SCHEMA_VERSION:
            raise StorageError(
                f"catalog {self.label} has schema {version}, expected {SCHEMA_VERSION}: "
                "`pligt serve` upgrades it when it starts"
            )
        if version != SCHEMA_VERSION:
            raise StorageError(f"catalog {self.label} has schema {version}, expected {SCHEMA_VERSION}")

    def count_rows(self, table: str) -> int:
        """Return how many rows one of :data:`TABLES` holds."""
        if table not in dict(TABLES):
            raise ValueError(f"no catalog table {table!r}")
        return _scalar(self._execute(f"SELECT COUNT(*) FROM {table}"))  # a name from TABLES only

    def rows(self, table: str) -> Iterator[Row]:
        """Yield every row of one of :data:`TABLES`, in key order (for copies)."""
        yield from self._execute(self._all_rows(table))

    @staticmethod
    def _all_rows(table: str) -> str:
        """The query for every row of one of :data:`TABLES`, in key order. :raises ValueError: another name."""
        key = dict(TABLES).get(table)
        if key is None:
            raise ValueError(f"no catalog table {table!r}")
        return f"SELECT * FROM {table} ORDER BY {key}"  # names from TABLES only

    def insert_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Insert rows as they are, ids included, in the current transaction (for copies)."""
        if table not in dict(TABLES):
            raise ValueError(f"no catalog table {table!r}")
        if table != "meta":
            self._insert_many(table, columns, rows)
            return
        marks = ", ".join("?" * len(columns))
        names = ", ".join(columns)
        # Every migrated catalog has its counters: the copied values replace them.
        sql = f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        self._executemany(sql, rows)

    # -- per-client counters (lock-out, request-form limit) across machines -------

    def count_client(
        self, digest: str, delta: int, limit: int, quiet: float, now: float, *, rule: CountRule
    ) -> tuple[int, float, bool]:
        """Change a client's count by ``delta`` as ``rule`` says, under the write lock.

        The catalog keeps the counts; the rule is the caller's (the password
        lock-out's is :func:`~pligt.core.credentials.shared_checks.failures_after`).
        ``digest`` is an HMAC of the client's address (never the address); ``now``
        is wall-clock seconds. Counts that have lapsed are deleted on the way.
        :return: the count, when the last one was counted, and whether the client is refused.
        """
        with self._write():
            self._execute("DELETE FROM client_counts WHERE lapses_at <= ?", (now,))
            row = self._execute("SELECT count, last FROM client_counts WHERE digest = ?", (digest,)).fetchone()
            counted = (int(row["count"]), float(row["last"])) if row else (0, 0.0)
            count, last, refused = rule(counted, delta, limit, quiet, now)
            if count:
                self._execute(
                    """INSERT INTO client_counts (digest, count, last, lapses_at) VALUES (?, ?, ?, ?)
                       ON CONFLICT (digest) DO UPDATE SET count = excluded.count, last = excluded.last,
                           lapses_at = excluded.lapses_at""",
                    (digest, count, last, last + quiet),
                )
            else:
                self._execute("DELETE FROM client_counts WHERE digest = ?", (digest,))
        return count, last, refused

    def forget_lapsed_counts(self, now: float) -> int:
        """Delete the per-client counts that lapsed by ``now`` (wall-clock seconds); return how many."""
        with self._write():
            return self._execute("DELETE FROM client_counts WHERE lapses_at <= ?", (now,)).rowcount

    # -- items and versions ----------------------------------------------------

    def get_item(self, slug: str) -> Item | None:
        row = self._execute("SELECT * FROM items WHERE slug = ?", (slug,)).fetchone()
        return _item(row) if row else None

    def add_version(
        self,
        *,
        slug: str,
        title: str,
        visibility: str,
        filename: str,
        size: int,
        sha256: str,
        content_type: str,
        storage_key: str,
        published_at: datetime,
        retain_until: datetime,
        sha1: str | None = None,
    ) -> Version:
        """Add the next version of ``slug``, creating the item on first publication.

        :raises Conflict: if the item exists with another visibility.
        """
        with self._write():
            row = self._execute("SELECT id, visibility FROM items WHERE slug = ?", (slug,)).fetchone()
            if row is None:
                item_id = self._insert(
                    "INSERT INTO items (slug, title, visibility, created_at) VALUES (?, ?, ?, ?) RETURNING id",
                    (slug, title, visibility, to_text(published_at)),
                )
            elif row["visibility"] != visibility:
                raise Conflict(f"item {slug!r} is {row['visibility']}; a new version cannot make it {visibility}")
            else:
                item_id = row["id"]
                self._execute("UPDATE items SET title = ? WHERE id = ?", (title, item_id))
            number = self._execute(
                "SELECT COALESCE(MAX(number), 0) + 1 FROM versions WHERE item_id = ?", (item_id,)
            ).fetchone()[0]
            version_id = self._insert(
                """INSERT INTO versions (item_id, number, filename, size, sha256, sha1, content_type,
                       storage_key, published_at, retain_until)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id""",
                (
                    item_id,
                    number,
                    filename,
                    size,
                    sha256,
                    sha1,
                    content_type,
                    storage_key,
                    to_text(published_at),
                    to_text(retain_until),
                ),
            )
            return _version(
                self._execute(
                    f"SELECT {_VERSION_COLUMNS} FROM versions v JOIN items i ON i.id = v.item_id WHERE v.id = ?",
                    (version_id,),
                ).fetchone()
            )

    def versions(
        self,
        *,
        visibility: str | None = None,
        include_withdrawn: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Version]:
        """Return versions ordered by slug and number (newest number last), a page at a time."""
        where, params = self._versions_where(visibility, include_withdrawn)
        sql = f"SELECT {_VERSION_COLUMNS} FROM versions v JOIN items i ON i.id = v.item_id {where}"
        sql += " ORDER BY i.slug, v.number"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        return [_version(row) for row in self._execute(sql, params)]

    def count_versions(self, *, visibility: str | None = None, include_withdrawn: bool = False) -> int:
        where, params = self._versions_where(visibility, include_withdrawn)
        sql = f"SELECT COUNT(*) FROM versions v JOIN items i ON i.id = v.item_id {where}"
        return _scalar(self._execute(sql, params))

    def stored_bytes(self) -> int:
        """Return the total size of the versions not withdrawn (what a publisher's quota counts)."""
        return _scalar(self._execute("SELECT COALESCE(SUM(size), 0) FROM versions WHERE withdrawn_at IS NULL"))

    @staticmethod
    def _versions_where(visibility: str | None, include_withdrawn: bool) -> tuple[str, list[object]]:
        clauses: list[str] = ["1=1"]
        params: list[object] = []
        if visibility is not None:
            clauses.append("i.visibility = ?")
            params.append(visibility)
        if not include_withdrawn:
            clauses.append("v.withdrawn_at IS NULL")
        return "WHERE " + " AND ".join(clauses), params

    def item_versions(self, slug: str) -> list[Version]:
        """Return every version of ``slug``, withdrawn ones included."""
        rows = self._execute(
            f"SELECT {_VERSION_COLUMNS} FROM versions v JOIN items i ON i.id = v.item_id "
            "WHERE i.slug = ? ORDER BY v.number",
            (slug,),
        )
        return [_version(row) for row in rows]

    def download_version(self, slug: str, number: int | None) -> Version | None:
        """Return version ``number`` of ``slug``, withdrawn or not (``None``: the latest retained one)."""
        where = "v.number = :number" if number is not None else "v.withdrawn_at IS NULL"
        row = self._execute(
            f"""SELECT {_VERSION_COLUMNS} FROM items i JOIN versions v ON v.item_id = i.id
                WHERE i.slug = :slug AND {where} ORDER BY v.number DESC LIMIT 1""",
            {"slug": slug, "number": number},
        ).fetchone()
        return None if row is None else _version(row)

    def lookups_generation(self) -> int:
        """Return the catalog's change counter: triggers raise it on every change to items, versions and credentials.

        Whichever process makes the change (a worker, the CLI, a cron job), the
        next request of every worker sees it (pligt/core/downloads/lookups.py).
        """
        return _scalar(self._execute("SELECT value FROM meta WHERE key = 'lookups_changed'"))

    def set_sha1(self, version_id: int, sha1: str) -> None:
        """Record the SHA-1 of a version published before it was kept (never replaces one)."""
        with self._write():
            self._execute("UPDATE versions SET sha1 = ? WHERE id = ? AND sha1 IS NULL", (sha1, version_id))

    def mark_withdrawn(self, version_id: int, now: datetime) -> None:
        with self._write():
            self._execute(
                "UPDATE versions SET withdrawn_at = ? WHERE id = ? AND withdrawn_at IS NULL",
                (to_text(now), version_id),
            )

    # -- access requests -----------------------------------------------------

    def add_request(self, fields: dict[str, str], now: datetime) -> AccessRequest:
        with self._write():
            request_id = self._insert(
                """INSERT INTO access_requests
                       (institution, contact_name, contact_email, legal_basis, message, created_at)
                   VALUES (:institution, :contact_name, :contact_email, :legal_basis, :message, :now) RETURNING id""",
                {**fields, "now": to_text(now)},
            )
        found = self.get_request(request_id)
        assert found is not None
        return found

    def get_request(self, request_id: int) -> AccessRequest | None:
        row = self._execute("SELECT * FROM access_requests WHERE id = ?", (request_id,)).fetchone()
        return _request(row) if row else None

    def requests(self, status: str | None = None) -> list[AccessRequest]:
        sql, params = "SELECT * FROM access_requests", tuple[object, ...]()
        if status is not None:
            sql, params = sql + " WHERE status = ?", (status,)
        return [_request(row) for row in self._execute(sql + " ORDER BY id", params)]

    def count_requests(self, status: str) -> int:
        return _scalar(self._execute("SELECT COUNT(*) FROM access_requests WHERE status = ?", (status,)))

    def set_request_status(
        self, request_id: int, status: str, now: datetime, *, reason: str | None = None, decided: bool = False
    ) -> None:
        closed = status in ("denied", "expired")
        with self._write():
            self._execute(
                """UPDATE access_requests SET status = :status,
                       decided_at = CASE WHEN :decided THEN :now ELSE decided_at END,
                       decision_reason = COALESCE(:reason, decision_reason),
                       closed_at = CASE WHEN :closed THEN :now ELSE closed_at END
                   WHERE id = :id""",
                {
                    "status": status,
                    "now": to_text(now),
                    "reason": reason,
                    "decided": decided,
                    "closed": closed,
                    "id": request_id,
                },
            )

    # -- crawler credentials ---------------------------------------------------

    def add_credential(
        self, request_id: int, username: str, password_hash: str, created_at: datetime, expires_at: datetime
    ) -> Credential:
        """Add a credential bound to an *approved* request (the catalog refuses otherwise)."""
        with self._write():
            row = self._execute("SELECT status FROM access_requests WHERE id = ?", (request_id,)).fetchone()
            if row is None or row["status"] not in ("approved", "released"):
                raise Conflict(f"request {request_id} is not approved: no credential without an approved request")
            credential_id = self._insert(
                """INSERT INTO credentials (request_id, username, password_hash, created_at, expires_at)
                   VALUES (?, ?, ?, ?, ?) RETURNING id""",
                (request_id, username, password_hash, to_text(created_at), to_text(expires_at)),
            )
            return _credential(self._execute("SELECT * FROM credentials WHERE id = ?", (credential_id,)).fetchone())

    def get_credential(self, credential_id: int) -> Credential | None:
        row = self._execute("SELECT * FROM credentials WHERE id = ?", (credential_id,)).fetchone()
        return _credential(row) if row else None

    def credential_by_username(self, username: str) -> Credential | None:
        row = self._execute("SELECT * FROM credentials WHERE username = ?", (username,)).fetchone()
        return _credential(row) if row else None

    def credentials(self, request_id: int | None = None) -> list[Credential]:
        sql, params = "SELECT * FROM credentials", tuple[object, ...]()
        if request_id is not None:
            sql, params = sql + " WHERE request_id = ?", (request_id,)
        return [_credential(row) for row in self._execute(sql + " ORDER BY id", params)]

    def revoke_credential(self, credential_id: int, now: datetime) -> None:
        with self._write():
            self._execute(
                "UPDATE credentials SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (to_text(now), credential_id),
            )

    # -- releases --------------------------------------------------------------

    def add_release(
        self, request_id: int, credential_id: int, token_hash: str, sealed: str, now: datetime, expires_at: datetime
    ) -> None:
        with self._write():
            self._execute(
                """INSERT INTO releases (request_id, credential_id, token_hash, sealed_password, created_at, expires_at)
                   VALUES (?, ?, ?, ?, ?, ?)""",
                (request_id, credential_id, token_hash, sealed, to_text(now), to_text(expires_at)),
            )

    def release_by_token_hash(self, token_hash: str) -> Release | None:
        row = self._execute("SELECT * FROM releases WHERE token_hash = ?", (token_hash,)).fetchone()
        return _release(row) if row else None

    def releases(self, request_id: int) -> list[Release]:
        rows = self._execute("SELECT * FROM releases WHERE request_id = ? ORDER BY id", (request_id,))
        return [_release(row) for row in rows]

    def mark_released(self, release_id: int, now: datetime) -> bool:
        """Mark a release spent and erase its sealed password; False if it was spent already."""
        with self._write():
            cursor = self._execute(
                "UPDATE releases SET released_at = ?, sealed_password = NULL WHERE id = ? AND released_at IS NULL",
                (to_text(now), release_id),
            )
            return cursor.rowcount == 1

    def discard_unreleased(self, credential_id: int) -> None:
        """Erase the sealed password of every unspent release of a credential."""
        with self._write():
            self._execute(
                "UPDATE releases SET sealed_password = NULL WHERE credential_id = ? AND released_at IS NULL",
                (credential_id,),
            )

    # -- proof of deposit ------------------------------------------------------

    def record_downloads(self, rows: list[DownloadRow]) -> None:
        """Write download records in one transaction.

        Each: (credential, version, status, bytes, complete, time, attributed by, crawler pattern).
        """
        with self._write():
            self._insert_many(
                "downloads",
                ("credential_id", "version_id", "status", "bytes_sent", "complete", "at", "via", "crawler"),
                [
                    (c, v, status, sent, int(complete), to_text(at), via, crawler)
                    for c, v, status, sent, complete, at, via, crawler in rows
                ],
            )

    def harvest(self) -> list[HarvestRow]:
        """Return, per access request with credentials and per retained version, the best evidence.

        The download records are summed up in SQL (first and last time per request,
        version, credential, attribution and kind); :func:`_harvest_rows` picks from those.
        """
        requests: dict[int, tuple[str | None, list[tuple[int, str]]]] = {}
        for row in self._execute(
            """SELECT r.id, r.institution, c.id AS credential_id, c.username
               FROM access_requests r JOIN credentials c ON c.request_id = r.id ORDER BY r.id, c.id"""
        ):
            requests.setdefault(row["id"], (row["institution"], []))[1].append((row["credential_id"], row["username"]))
        summary = self._execute(
            """SELECT c.request_id, d.version_id, d.credential_id, d.via, d.crawler,
                      d.status = 304 AS revisit, d.complete, MIN(d.at) AS first_at, MAX(d.at) AS last_at
               FROM downloads d LEFT JOIN credentials c ON c.id = d.credential_id
               GROUP BY c.request_id, d.version_id, d.credential_id, d.via, d.crawler, d.status = 304, d.complete"""
        ).fetchall()
        return _harvest_rows(requests, self.versions(), summary)

    # -- personal data: purge, export, erasure ---------------------------------------

    def requests_by_email(self, email: str) -> list[AccessRequest]:
        rows = self._execute(
            "SELECT * FROM access_requests WHERE lower(contact_email) = lower(?) ORDER BY id", (email,)
        )
        return [_request(row) for row in rows]

    def erase_request_personal_data(self, request_id: int, now: datetime) -> None:
        """Erase a request's personal fields and those of its audit entries (with their keys).

        The audit chain covers only keyed digests of these fields, so it still verifies.
        """
        with self._write():
            self._execute(
                """UPDATE access_requests SET institution = NULL, contact_name = NULL, contact_email = NULL,
                       legal_basis = NULL, message = NULL, purged_at = ?
                   WHERE id = ?""",
                (to_text(now), request_id),
            )
            self._execute(
                """UPDATE audit_log SET personal = NULL, personal_key = NULL
                   WHERE personal IS NOT NULL AND """
                + self.dialect.audit_request
                + " = ?",
                (request_id,),
            )

    @abc.abstractmethod
    def checkpoint(self) -> None:
        """Make erased personal data unreadable from the catalog's files too (after an erasure)."""

    def downloads_before(self, moment: datetime, *, delete: bool) -> int:
        """Count (and with ``delete``, remove) download records older than ``moment``."""
        with self._write():
            count = _scalar(self._execute("SELECT COUNT(*) FROM downloads WHERE at < ?", (to_text(moment),)))
            if delete:
                self._execute("DELETE FROM downloads WHERE at < ?", (to_text(moment),))
        return count

    def finished_releases(self, now: datetime, *, delete: bool) -> int:
        """Count (and with ``delete``, remove) release links that were spent or have expired."""
        where = "released_at IS NOT NULL OR expires_at <= ?"
        with self._write():
            count = _scalar(self._execute(f"SELECT COUNT(*) FROM releases WHERE {where}", (to_text(now),)))
            if delete:
                self._execute(f"DELETE FROM releases WHERE {where}", (to_text(now),))
        return count

    def downloads_of(self, credential_ids: list[int]) -> list[dict[str, Any]]:
        """Return the download records of some credentials (for a data-subject export)."""
        if not credential_ids:
            return []
        marks = ",".join("?" * len(credential_ids))
        rows = self._execute(
            f"""SELECT d.credential_id, i.slug, v.number AS version, d.status, d.bytes_sent, d.complete, d.at
                FROM downloads d JOIN versions v ON v.id = d.version_id JOIN items i ON i.id = v.item_id
                WHERE d.credential_id IN ({marks}) ORDER BY d.id""",
            credential_ids,
        )
        return [dict(row) for row in rows]

    # -- audit log -------------------------------------------------------------

    def append_audit(
        self, action: str, data: dict[str, Any], personal: dict[str, Any] | None, now: datetime
    ) -> AuditEntry:
        """Append one entry, chained to the last, inside the current transaction.

        Entries are in time order: a time a little before the last entry's is
        moved up to it; one long before is refused (:func:`~pligt.core.retention.checked_now`).

        :raises ClockBehind: when ``now`` is well before the last entry.
        """
        key, digest = seal_personal(personal)
        with self._write():
            last = self._execute("SELECT seq, hash, at FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last["seq"] + 1, last["hash"]) if last else (1, GENESIS)
            at = to_text(checked_now(now, from_text(last["at"]) if last else None))
            assert at is not None
            entry_digest = entry_hash(seq, prev, at, action, data, digest)
            self._execute(
                """INSERT INTO audit_log (seq, at, action, data, personal, personal_key, personal_digest,
                       prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    seq,
                    at,
                    action,
                    canonical_json(data).decode(),
                    canonical_json(personal).decode() if personal else None,
                    key,
                    digest,
                    prev,
                    entry_digest,
                ),
            )
        return AuditEntry(seq, at, action, data, personal, key, digest, prev, entry_digest)

    def newest_moment(self) -> datetime | None:
        """Return the latest time the catalog recorded (its audit log is in time order), if any."""
        row = self._execute("SELECT at FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        return from_text(row["at"]) if row else None

    def latest_retention(self) -> datetime | None:
        """Return the latest retain-until date of any version ever published."""
        row = self._execute("SELECT MAX(retain_until) AS until FROM versions").fetchone()
        return from_text(row["until"]) if row and row["until"] else None

    def audit_entries(self, *, newest_first: bool = False, limit: int | None = None) -> Iterator[AuditEntry]:
        """Yield audit entries in sequence order (as stored: no checking here)."""
        sql = "SELECT * FROM audit_log ORDER BY seq" + (" DESC" if newest_first else "")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        for row in self._execute(sql):
            yield _audit_entry(row)

    # -- checkpoints (issue 15: signed, time-stamped checkpoints of the audit log) ----

    def add_checkpoint(self, size: int, root: str, note: str, now: datetime) -> StoredCheckpoint:
        """Keep a signed checkpoint (inside the current transaction, if any)."""
        with self._write():
            checkpoint_id = self._insert(
                "INSERT INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?) RETURNING id",
                (size, root, note, to_text(now)),
            )
            return _checkpoint(self._execute("SELECT * FROM checkpoints WHERE id = ?", (checkpoint_id,)).fetchone())

    def checkpoints(
        self, *, newest_first: bool = False, limit: int | None = None, unstamped: bool = False
    ) -> list[StoredCheckpoint]:
        """Return kept checkpoints in the order they were made (``unstamped``: only those without a stamp)."""
        sql = "SELECT * FROM checkpoints" + (" WHERE stamp IS NULL" if unstamped else "")
        sql += " ORDER BY id" + (" DESC" if newest_first else "")
        params: tuple[int, ...] = ()
        if limit is not None:
            sql, params = sql + " LIMIT ?", (limit,)
        return [_checkpoint(row) for row in self._execute(sql, params)]

    def set_stamp(self, checkpoint_id: int, stamp: bytes, chain: str, now: datetime) -> None:
        """Keep a checkpoint's time stamp (once: a stamped checkpoint keeps its first)."""
        with self._write():
            self._execute(
                """UPDATE checkpoints SET stamp = ?, stamp_chain = ?, stamped_at = ?, stamp_error = NULL
                   WHERE id = ? AND stamp IS NULL""",
                (base64.b64encode(stamp).decode("ascii"), chain, to_text(now), checkpoint_id),
            )

    def audit_entries_after(self, seq: int) -> Iterator[AuditEntry]:
        """Yield the audit entries after number ``seq``, in order (a checkpoint reads only what is new)."""
        for row in self._execute("SELECT * FROM audit_log WHERE seq > ? ORDER BY seq", (seq,)):
            yield _audit_entry(row)

    def set_stamp_error(self, checkpoint_id: int, error: str) -> None:
        """Say why the last attempt to stamp a checkpoint failed (``pligt check`` reports it)."""
        with self._write():
            self._execute(
                "UPDATE checkpoints SET stamp_error = ? WHERE id = ? AND stamp IS NULL", (error, checkpoint_id)
            )

    # -- owner -----------------------------------------------------------------

    def set_owner(self, username: str, password_hash: str, now: datetime) -> None:
        with self._write():
            self._execute(
                """INSERT INTO owner (id, username, password_hash, created_at) VALUES (1, ?, ?, ?)
                   ON CONFLICT (id) DO UPDATE SET username = excluded.username,
                       password_hash = excluded.password_hash""",
                (username, password_hash, to_text(now)),
            )

    def console_epoch(self) -> int:
        """Return the counter that ending the console's sessions raises (a session names the one it began under)."""
        row = self._execute("SELECT value FROM meta WHERE key = 'console_epoch'").fetchone()
        return int(row["value"]) if row else 0

    def end_console_sessions(self) -> None:
        """End every console session: each cookie names an older epoch from now on."""
        with self._write():
            self._execute(
                "INSERT INTO meta (key, value) VALUES ('console_epoch', 1) "
                "ON CONFLICT (key) DO UPDATE SET value = meta.value + 1"
            )

    def owner(self) -> tuple[str, str] | None:
        """Return the owner's username and password hash, if the owner exists."""
        row = self._execute("SELECT username, password_hash FROM owner WHERE id = 1").fetchone()
        return (row["username"], row["password_hash"]) if row else None


#: What the recorder hands over per download (see :mod:`pligt.core.downloads.recorder`).
DownloadRow = tuple[int | None, int, int, int, bool, datetime, str | None, str | None]

#: Strongest attribution first.
_STRENGTH = {via: rank for rank, via in enumerate(ATTRIBUTIONS)}
_Key = tuple[int | None, int]  # (request, version); request None: attributed by User-Agent alone
_Order = Callable[[Evidence], tuple[int, float]]


def _first(evidence: Evidence) -> tuple[int, float]:
    """Order evidence by strength, then the earliest first."""
    return _STRENGTH[evidence.via], evidence.at.timestamp()


def _latest(evidence: Evidence) -> tuple[int, float]:
    """Order evidence by strength, then the latest first."""
    return _STRENGTH[evidence.via], -evidence.at.timestamp()


def _keep(found: dict[_Key, Evidence], key: _Key, new: Evidence, order: _Order) -> None:
    old = found.get(key)
    if old is None or order(new) < order(old):
        found[key] = new


def _harvest_rows(
    requests: dict[int, tuple[str | None, list[tuple[int, str]]]],
    versions: list[Version],
    summary: list[Row],
) -> list[HarvestRow]:
    """Pick, per request and version, the best first fetch, first complete fetch and latest revisit.

    Records with a credential count for its request; records attributed by
    User-Agent alone count for every request (they cannot tell which); other
    anonymous records only as ``anonymous_complete_at``.
    """
    fetched: dict[_Key, Evidence] = {}
    complete: dict[_Key, Evidence] = {}
    revisit: dict[_Key, Evidence] = {}
    anonymous: dict[int, datetime] = {}
    for row in summary:
        version_id = row["version_id"]
        first_at, last_at = datetime.fromisoformat(row["first_at"]), datetime.fromisoformat(row["last_at"])
        if row["credential_id"] is None and row["complete"]:
            anonymous[version_id] = min(first_at, anonymous.get(version_id, first_at))
        if row["via"] is None:
            continue  # anonymous, and nothing ties it to the deposit crawler
        key = (row["request_id"], version_id)
        if row["revisit"]:
            _keep(revisit, key, Evidence(last_at, row["via"], row["credential_id"], row["crawler"]), _latest)
            continue
        evidence = Evidence(first_at, row["via"], row["credential_id"], row["crawler"])
        _keep(fetched, key, evidence, _first)
        if row["complete"]:
            _keep(complete, key, evidence, _first)

    def best(found: dict[_Key, Evidence], order: _Order, request_id: int, version_id: int) -> Evidence | None:
        own, by_user_agent = found.get((request_id, version_id)), found.get((None, version_id))
        return min((e for e in (own, by_user_agent) if e is not None), key=order, default=None)

    return [
        HarvestRow(
            request_id=request_id,
            institution=institution,
            credentials=tuple(credentials),
            version=version,
            fetched=best(fetched, _first, request_id, version.id),
            complete=best(complete, _first, request_id, version.id),
            revisit=best(revisit, _latest, request_id, version.id),
            anonymous_complete_at=anonymous.get(version.id),
        )
        for request_id, (institution, credentials) in requests.items()
        for version in versions
    ]


#: Columns stored as text by ``to_text`` and handed out as datetimes.
_TIMES = {
    "created_at",
    "published_at",
    "retain_until",
    "withdrawn_at",
    "expires_at",
    "revoked_at",
    "decided_at",
    "closed_at",
    "purged_at",
    "released_at",
}


@functools.cache
def _columns(cls: Hashable) -> tuple[tuple[str, bool], ...]:
    """A record's field names, each with whether it is a stored time (worked out once per class)."""
    return tuple((f.name, f.name in _TIMES) for f in dataclasses.fields(cast(Any, cls)))


def _scalar(cursor: Result) -> int:
    """The one whole number a query answers (a count, a version, a counter)."""
    return int(cursor.fetchone()[0])


def _record(cls: type[_R], row: Row) -> _R:
    """Build a model record from a row with the same column names."""
    columns = _columns(cast(Hashable, cls))
    return cls(**{name: from_text(row[name]) if is_time else row[name] for name, is_time in columns})


def _item(row: Row) -> Item:
    return _record(Item, row)


def _version(row: Row) -> Version:
    return _record(Version, row)


def _credential(row: Row) -> Credential:
    return _record(Credential, row)


def _request(row: Row) -> AccessRequest:
    return _record(AccessRequest, row)


def _release(row: Row) -> Release:
    return _record(Release, row)


def _audit_entry(row: Row) -> AuditEntry:
    return AuditEntry(
        seq=row["seq"],
        at=row["at"],
        action=row["action"],
        data=json.loads(row["data"]),
        personal=json.loads(row["personal"]) if row["personal"] else None,
        personal_key=row["personal_key"],
        personal_digest=row["personal_digest"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def _checkpoint(row: Row) -> StoredCheckpoint:
    return StoredCheckpoint(
        id=row["id"],
        size=row["size"],
        root=row["root"],
        note=row["note"],
        created_at=datetime.fromisoformat(row["created_at"]),
        stamp=base64.b64decode(row["stamp"]) if row["stamp"] else None,
        stamp_chain=row["stamp_chain"],
        stamped_at=from_text(row["stamped_at"]),
        stamp_error=row["stamp_error"],
    )


def redacted(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return re.sub(r":[^:@/]*@", ":***@", url)
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))
