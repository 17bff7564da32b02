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

from pligt.core.catalog.keys import KeyStore
from pligt.core.errors import Conflict
from pligt.core.errors import KeyStoreUnavailable
from pligt.core.errors import StorageError
from pligt.core.models import APPROVED
from pligt.core.models import ATTRIBUTIONS
from pligt.core.models import PERSONAL_FIELDS
from pligt.core.models import RELEASED
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
from pligt.core.proof.sealing import is_sealed
from pligt.core.proof.sealing import seal
from pligt.core.proof.sealing import sealed_key_id
from pligt.core.proof.sealing import unseal
from pligt.core.retention import checked_now

_R = TypeVar("_R")

#: The schema version both dialects' migrations lead to (each dialect's list ends here).
SCHEMA_VERSION = 8

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
    #: Where the keys of the personal data are (apart from the catalog and its backups); None: nowhere,
    #: so personal fields are unreadable and no request can be filed.
    keys: KeyStore | None

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
    def _migrate_schema(self) -> None:
        """Create or upgrade the schema to :data:`SCHEMA_VERSION` (SQL alone)."""

    def migrate(self) -> None:
        """Create or upgrade the schema to :data:`SCHEMA_VERSION`, then seal personal fields still in clear."""
        self._migrate_schema()
        if self.seal_clear_requests():
            self.checkpoint()  # the clear text, overwritten, leaves no copy in the write-ahead log

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

    def version_sizes(self) -> list[tuple[str, int, str, int]]:
        """Return (slug, number, file name, size) of every version not withdrawn: what a harvest fetches."""
        rows = self._execute(
            """SELECT i.slug, v.number, v.filename, v.size FROM versions v JOIN items i ON i.id = v.item_id
               WHERE v.withdrawn_at IS NULL ORDER BY i.slug, v.number"""
        )
        return [(row["slug"], row["number"], row["filename"], row["size"]) for row in rows]

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

    def _key_store(self) -> KeyStore:
        if self.keys is None:
            raise KeyStoreUnavailable(f"the catalog {self.label} has no key store for personal data")
        return self.keys

    def add_request(self, fields: dict[str, str], now: datetime) -> AccessRequest:
        """File a request, its personal fields sealed under a new key of its own (never stored in clear).

        :raises KeyStoreUnavailable: when no key can be kept (nothing is filed).
        """
        with self._write():
            key_id, key = self._key_store().create()
            request_id = self._insert(
                "INSERT INTO access_requests (key_id, created_at) VALUES (?, ?) RETURNING id", (key_id, to_text(now))
            )
            sealed = seal(key_id, key, _request_context(request_id), {f: fields.get(f) for f in PERSONAL_FIELDS})
            self._execute("UPDATE access_requests SET sealed = ? WHERE id = ?", (sealed, request_id))
        found = self.get_request(request_id)
        assert found is not None
        return found

    def get_request(self, request_id: int) -> AccessRequest | None:
        rows = self._execute("SELECT * FROM access_requests WHERE id = ?", (request_id,)).fetchall()
        return self._unsealed_requests(rows)[0] if rows else None

    def requests(self, status: str | None = None, *, personal: bool = True) -> list[AccessRequest]:
        """Return requests in filing order; ``personal=False`` leaves their personal fields sealed (None).

        :raises KeyStoreUnavailable: never: a key store that cannot be read leaves the fields unreadable.
        """
        sql, params = "SELECT * FROM access_requests", tuple[object, ...]()
        if status is not None:
            sql, params = sql + " WHERE status = ?", (status,)
        rows = self._execute(sql + " ORDER BY id", params).fetchall()
        return self._unsealed_requests(rows) if personal else [_request(row, {}, unreadable=False) for row in rows]

    def requests_page(
        self, status: str | None = None, *, before: int | None = None, limit: int
    ) -> tuple[list[AccessRequest], bool]:
        """Return the newest ``limit`` requests filed before request ``before`` (all: None), in filing order.

        Only the requests on the page have their personal fields opened (one key-store
        read, ``limit`` decryptions, whatever the number of requests); the second value
        tells whether older requests remain. Paged by id (keyset), so a request filed
        while someone pages is on the first page, not seen twice.
        """
        clauses, params = [], list[object]()
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        if before is not None:
            clauses.append("id < ?")
            params.append(before)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._execute(
            f"SELECT * FROM access_requests{where} ORDER BY id DESC LIMIT ?", (*params, limit + 1)
        ).fetchall()
        return self._unsealed_requests(rows[:limit][::-1]), len(rows) > limit

    def _keys_for(self, key_ids: Iterable[str | None]) -> dict[str, bytes]:
        """The keys of these ids that the key store holds (none when it cannot be read: said by the caller)."""
        wanted = [k for k in key_ids if k]
        if not wanted or self.keys is None:
            return {}
        try:
            return self.keys.get(wanted)
        except KeyStoreUnavailable:
            return {}

    def _unsealed_requests(self, rows: Sequence[Row]) -> list[AccessRequest]:
        """Build requests from rows, their personal fields opened with their keys (one key-store read)."""
        keys = self._keys_for(row["key_id"] for row in rows if row["sealed"])
        found = []
        for row in rows:
            fields: dict[str, Any] = {}
            unreadable = False
            if row["sealed"]:
                opened = unseal(row["sealed"], keys, _request_context(row["id"]))
                unreadable = opened is None
                fields = opened or {}
            found.append(_request(row, fields, unreadable=unreadable))
        return found

    def seal_clear_requests(self) -> int:
        """Seal the personal fields still stored in clear (a catalog from before schema 7); return how many.

        Each request gets its key; its audit entries' fields (and their HMAC keys) are sealed under it.
        """
        clear = self._execute(
            "SELECT id FROM access_requests WHERE sealed IS NULL AND purged_at IS NULL AND "
            "(contact_email IS NOT NULL OR institution IS NOT NULL OR contact_name IS NOT NULL)"
        ).fetchall()
        if not clear:
            return 0
        with self._write():
            for found in clear:
                request_id = found[0]
                row = self._execute("SELECT * FROM access_requests WHERE id = ?", (request_id,)).fetchone()
                key_id, key = self._key_store().create()
                fields = {f: row[f] for f in PERSONAL_FIELDS}
                self._execute(
                    "UPDATE access_requests SET key_id = ?, sealed = ?, institution = NULL, contact_name = NULL, "
                    "contact_email = NULL, legal_basis = NULL, message = NULL WHERE id = ?",
                    (key_id, seal(key_id, key, _request_context(request_id), fields), request_id),
                )
                self._seal_audit_entries(request_id, key_id, key)
        return len(clear)

    def _seal_audit_entries(self, request_id: int, key_id: str, key: bytes) -> None:
        entries = self._execute(
            "SELECT seq, personal, personal_key FROM audit_log WHERE personal IS NOT NULL AND "
            + self.dialect.audit_request
            + " = ?",
            (request_id,),
        ).fetchall()
        for entry in entries:
            if is_sealed(entry["personal"]):
                continue
            value = {"fields": json.loads(entry["personal"]), "digest_key": entry["personal_key"]}
            self._execute(
                "UPDATE audit_log SET personal = ?, personal_key = NULL WHERE seq = ?",
                (seal(key_id, key, _audit_context(entry["seq"]), value), entry["seq"]),
            )

    def personal_data_report(self) -> dict[str, int]:
        """Count requests by what became of their personal fields; the unreadable ones split by why.

        ``erased_since``: their keys were destroyed (an erasure or purge after this copy was made);
        ``without_key``: the key store has never heard of their keys (lost, or another instance's).
        """
        rows = self._execute("SELECT id, key_id, sealed, purged_at FROM access_requests").fetchall()
        sealed = {row["key_id"] for row in rows if row["sealed"] and row["key_id"]}
        present = set(self._keys_for(sealed))
        missing = sealed - present
        try:
            destroyed = self.keys.destroyed(missing) if self.keys is not None and missing else set()
        except KeyStoreUnavailable:
            destroyed = set()
        return {
            "requests": len(rows),
            "readable": sum(1 for row in rows if row["purged_at"] is None and row["key_id"] not in missing),
            "erased": sum(1 for row in rows if row["purged_at"] is not None),
            "erased_since": len(destroyed),
            "without_key": len(missing - destroyed),
        }

    def requests_erased_elsewhere(self) -> list[int]:
        """Return the requests whose fields are still here, sealed, but whose keys were destroyed since.

        A catalog restored from a backup taken before an erasure (or a purge) holds them: the
        erasure is carried over by erasing them here too (:meth:`Privacy.carry_over`).
        """
        rows = self._execute(
            "SELECT id, key_id FROM access_requests WHERE sealed IS NOT NULL AND key_id IS NOT NULL ORDER BY id"
        ).fetchall()
        if not rows or self.keys is None:
            return []
        missing = {row["key_id"] for row in rows} - set(self._keys_for(row["key_id"] for row in rows))
        if not missing:
            return []
        try:
            destroyed = self.keys.destroyed(missing)
        except KeyStoreUnavailable:
            return []
        return [row["id"] for row in rows if row["key_id"] in destroyed]

    def rectify_request(self, request_id: int, changes: dict[str, str], now: datetime) -> AccessRequest:
        """Replace some personal fields of a readable request: all sealed anew under a new key, the old key destroyed.

        The request's audit entries held the old values (sealed under the old key): their
        fields are erased here, and with the old key every earlier copy of them is unreadable.
        :raises Conflict: if the request's fields are erased or unreadable.
        """
        with self._write():
            current = self.get_request(request_id)
            if current is None or current.personal_data != "readable":
                raise Conflict(f"request {request_id}'s personal fields are not readable: nothing to rectify")
            old = self._execute("SELECT key_id FROM access_requests WHERE id = ?", (request_id,)).fetchone()
            fields = {f: changes.get(f, getattr(current, f)) for f in PERSONAL_FIELDS}
            key_id, key = self._key_store().create()
            self._execute(
                "UPDATE access_requests SET key_id = ?, sealed = ? WHERE id = ?",
                (key_id, seal(key_id, key, _request_context(request_id), fields), request_id),
            )
            self._execute(
                "UPDATE audit_log SET personal = NULL, personal_key = NULL WHERE personal IS NOT NULL AND "
                + self.dialect.audit_request
                + " = ?",
                (request_id,),
            )
            if old is not None and old["key_id"]:
                self._key_store().destroy([old["key_id"]])
        found = self.get_request(request_id)
        assert found is not None
        return found

    def key_ids(self) -> set[str]:
        """Return the ids of the keys this catalog's sealed fields need (for restoring keys)."""
        ids = {row[0] for row in self._execute("SELECT key_id FROM access_requests WHERE key_id IS NOT NULL")}
        for row in self._execute("SELECT personal FROM audit_log WHERE personal IS NOT NULL"):
            if is_sealed(row[0]):
                ids.add(sealed_key_id(row[0]))
        return ids

    def key_store_label(self) -> str:
        """Where the key store is, for messages."""
        return self.keys.label if self.keys is not None else "(none)"

    def open_request_ends(self) -> dict[int, list[datetime]]:
        """Map each request that can still lapse to when what it waits on ends (two queries, however many).

        An approved request: the expiry of each of its release links not yet spent; a
        released one: the expiry of each of its credentials not revoked. A request with
        none is not listed (nothing of it can lapse).
        """
        ends: dict[int, list[datetime]] = {}
        for sql, status in (
            (
                "SELECT r.id, x.expires_at FROM access_requests r JOIN releases x ON x.request_id = r.id "
                "WHERE r.status = ? AND x.released_at IS NULL ORDER BY r.id",
                APPROVED,
            ),
            (
                "SELECT r.id, c.expires_at FROM access_requests r JOIN credentials c ON c.request_id = r.id "
                "WHERE r.status = ? AND c.revoked_at IS NULL ORDER BY r.id",
                RELEASED,
            ),
        ):
            for row in self._execute(sql, (status,)):
                ends.setdefault(row["id"], []).append(datetime.fromisoformat(row["expires_at"]))
        return ends

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

    def harvested(self, version_id: int) -> bool:
        """Tell whether the deposit institution fetched any of the version: by a credential, or under its User-Agent.

        Any recorded answer counts, whole or in part, or a revisit that held it.
        """
        row = self._execute(
            "SELECT 1 FROM downloads WHERE version_id = ? "
            "AND (credential_id IS NOT NULL OR crawler IS NOT NULL) LIMIT 1",
            (version_id,),
        ).fetchone()
        return row is not None

    def harvest(self, *, personal: bool = True) -> list[HarvestRow]:
        """Return, per access request with credentials and per retained version, the best evidence.

        The download records are summed up in SQL (first and last time per request,
        version, credential, attribution and kind); :func:`_harvest_rows` picks from those.
        ``personal=False`` leaves each request's institution sealed (None): for callers
        that do not show it, no key is read and nothing decrypted.
        """
        requests: dict[int, tuple[str | None, list[tuple[int, str]]]] = {}
        rows = self._execute(
            """SELECT r.id, r.institution, r.key_id, r.sealed, c.id AS credential_id, c.username
               FROM access_requests r JOIN credentials c ON c.request_id = r.id ORDER BY r.id, c.id"""
        ).fetchall()
        institutions = self._institutions(rows) if personal else {}
        for row in rows:
            requests.setdefault(row["id"], (institutions.get(row["id"]), []))[1].append(
                (row["credential_id"], row["username"])
            )
        summary = self._execute(
            """SELECT c.request_id, d.version_id, d.credential_id, d.via, d.crawler,
                      d.status = 304 AS not_modified, d.complete, MIN(d.at) AS first_at, MAX(d.at) AS last_at
               FROM downloads d LEFT JOIN credentials c ON c.id = d.credential_id
               GROUP BY c.request_id, d.version_id, d.credential_id, d.via, d.crawler, d.status = 304, d.complete"""
        ).fetchall()
        return _harvest_rows(requests, self.versions(), summary)

    def _institutions(self, rows: Sequence[Row]) -> dict[int, str | None]:
        """Open each request's institution once (one key-store read for all), from rows that may repeat a request."""
        first = {row["id"]: row for row in rows}.values()
        keys = self._keys_for(row["key_id"] for row in first if row["sealed"])
        institutions: dict[int, str | None] = {}
        for row in first:
            opened = unseal(row["sealed"], keys, _request_context(row["id"])) if row["sealed"] else None
            institutions[row["id"]] = opened.get("institution") if opened else row["institution"]
        return institutions

    # -- personal data: purge, export, erasure ---------------------------------------

    def requests_by_email(self, email: str) -> list[AccessRequest]:
        """Return the requests whose contact email is ``email`` (any case), among those still readable.

        The address is sealed: every readable request is opened and compared (no index of
        addresses exists to outlive an erasure).
        """
        wanted = email.lower()
        return [r for r in self.requests() if r.contact_email is not None and r.contact_email.lower() == wanted]

    def erase_request_personal_data(self, request_id: int, now: datetime) -> None:
        """Erase a request's personal fields and those of its audit entries, and destroy its key.

        The audit chain covers only keyed digests of these fields, so it still verifies.
        Destroying the key makes every earlier copy (backups, dumps, write-ahead logs) unreadable.
        """
        with self._write():
            row = self._execute("SELECT key_id FROM access_requests WHERE id = ?", (request_id,)).fetchone()
            self._execute(
                """UPDATE access_requests SET institution = NULL, contact_name = NULL, contact_email = NULL,
                       legal_basis = NULL, message = NULL, sealed = NULL, key_id = NULL, purged_at = ?
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
            if row is not None and row["key_id"]:
                # Last, inside the transaction: if the key cannot be destroyed nothing is erased (run
                # again); once it is, every copy of the fields made before, anywhere, is unreadable.
                self._key_store().destroy([row["key_id"]])

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
            stored = self._sealed_personal(data, personal, key, seq)
            self._execute(
                """INSERT INTO audit_log (seq, at, action, data, personal, personal_key, personal_digest,
                       prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    seq,
                    at,
                    action,
                    canonical_json(data).decode(),
                    stored,
                    None,
                    digest,
                    prev,
                    entry_digest,
                ),
            )
        return AuditEntry(seq, at, action, data, personal, key, digest, prev, entry_digest)

    def _sealed_personal(
        self, data: dict[str, Any], personal: dict[str, Any] | None, digest_key: str | None, seq: int
    ) -> str | None:
        """Seal an entry's personal fields, with the key of their HMAC, under the request's own key.

        :raises KeyStoreUnavailable: when the request has no key to be had (nothing is appended).
        """
        if not personal:
            return None
        row = self._execute("SELECT key_id FROM access_requests WHERE id = ?", (data.get("request"),)).fetchone()
        if row is None or not row["key_id"]:
            raise KeyStoreUnavailable(f"no key for the personal fields of request {data.get('request')}")
        keys = self._key_store().get([row["key_id"]])
        if row["key_id"] not in keys:
            raise KeyStoreUnavailable(
                f"the key of request {data.get('request')} is not in the key store {self.key_store_label()}"
            )
        value = {"fields": personal, "digest_key": digest_key}
        return seal(row["key_id"], keys[row["key_id"]], _audit_context(seq), value)

    def _unsealed_entries(self, rows: Sequence[Row]) -> list[AuditEntry]:
        """Build audit entries from rows, their personal fields opened with their requests' keys."""
        keys = self._keys_for(sealed_key_id(row["personal"]) for row in rows if is_sealed(row["personal"]))
        return [_audit_entry(row, keys) for row in rows]

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
        yield from self._unsealed_entries(self._execute(sql).fetchall())

    def audit_entries_of(self, action: str) -> Iterator[AuditEntry]:
        """Yield the audit entries of one action, in sequence order (as stored: no checking here)."""
        yield from self._unsealed_entries(
            self._execute("SELECT * FROM audit_log WHERE action = ? ORDER BY seq", (action,)).fetchall()
        )

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
        yield from self._unsealed_entries(
            self._execute("SELECT * FROM audit_log WHERE seq > ? ORDER BY seq", (seq,)).fetchall()
        )

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
    """Pick, per request and version, the best first fetch, first whole download and latest 304.

    Records with a credential count for its request; records attributed by
    User-Agent alone count for every request (they cannot tell which); other
    anonymous records only as ``anonymous_complete_at``.
    """
    fetched: dict[_Key, Evidence] = {}
    complete: dict[_Key, Evidence] = {}
    not_modified: dict[_Key, Evidence] = {}
    anonymous: dict[int, datetime] = {}
    for row in summary:
        version_id = row["version_id"]
        first_at, last_at = datetime.fromisoformat(row["first_at"]), datetime.fromisoformat(row["last_at"])
        if row["credential_id"] is None and row["complete"]:
            anonymous[version_id] = min(first_at, anonymous.get(version_id, first_at))
        if row["via"] is None:
            continue  # anonymous, and nothing ties it to the deposit crawler
        key = (row["request_id"], version_id)
        if row["not_modified"]:
            _keep(not_modified, key, Evidence(last_at, row["via"], row["credential_id"], row["crawler"]), _latest)
            continue
        evidence = Evidence(first_at, row["via"], row["credential_id"], row["crawler"])
        _keep(fetched, key, evidence, _first)
        if row["complete"]:
            _keep(complete, key, evidence, _first)

    def best(found: dict[_Key, Evidence], order: _Order, request_id: int, version_id: int) -> Evidence | None:
        own, by_user_agent = found.get((request_id, version_id)), found.get((None, version_id))
        if by_user_agent is None:  # most rows (the report is requests x versions): its own or nothing
            return own
        return by_user_agent if own is None else min(own, by_user_agent, key=order)

    return [
        HarvestRow(
            request_id=request_id,
            institution=institution,
            credentials=tuple(credentials),
            version=version,
            fetched=best(fetched, _first, request_id, version.id),
            complete=best(complete, _first, request_id, version.id),
            not_modified=best(not_modified, _latest, request_id, version.id),
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


def _request_context(request_id: int) -> str:
    """What a request's sealed fields are bound to: they open only in their own row."""
    return f"access_requests:{int(request_id)}"


def _audit_context(seq: int) -> str:
    return f"audit_log:{int(seq)}"


def _request(row: Row, opened: dict[str, Any], *, unreadable: bool) -> AccessRequest:
    """A request from its row; personal fields from ``opened`` (sealed) or the row's clear columns (older)."""
    sealed = bool(row["sealed"])
    personal = {f: (opened.get(f) if sealed else row[f]) for f in PERSONAL_FIELDS}
    return AccessRequest(
        id=row["id"],
        status=row["status"],
        **personal,
        created_at=datetime.fromisoformat(row["created_at"]),
        decided_at=from_text(row["decided_at"]),
        decision_reason=row["decision_reason"],
        closed_at=from_text(row["closed_at"]),
        purged_at=from_text(row["purged_at"]),
        unreadable=unreadable,
    )


def _release(row: Row) -> Release:
    return _record(Release, row)


def _audit_entry(row: Row, keys: dict[str, bytes]) -> AuditEntry:
    """An entry from its row; a seal that does not open is told to the chain's check, in the chain's order."""
    personal, personal_key, unreadable, seal_broken = None, row["personal_key"], False, False
    if is_sealed(row["personal"]):
        try:
            opened = unseal(row["personal"], keys, _audit_context(row["seq"]))
        except StorageError:
            opened, seal_broken = None, True
        unreadable = opened is None and not seal_broken
        if opened is not None:
            personal, personal_key = opened["fields"], opened["digest_key"]
    elif row["personal"]:
        personal = json.loads(row["personal"])  # a catalog from before schema 7, not yet sealed
    return AuditEntry(
        seq=row["seq"],
        at=row["at"],
        action=row["action"],
        data=json.loads(row["data"]),
        personal=personal,
        personal_key=personal_key,
        personal_digest=row["personal_digest"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
        unreadable=unreadable,
        seal_broken=seal_broken,
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
