"""The catalog: every SQL statement of Pligt lives in this module.

SQLite in WAL mode, one connection per thread. The public methods are the
interface a PostgreSQL catalog will implement for deployments with several
app servers; keep SQL from leaking out of here.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import json
import sqlite3
import threading
from collections.abc import Callable
from collections.abc import Hashable
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from typing import TypeVar
from typing import cast

from .audit import GENESIS
from .audit import AuditEntry
from .audit import canonical_json
from .audit import entry_hash
from .audit import seal_personal
from .errors import ArchiveError
from .errors import CatalogBusy
from .errors import Conflict
from .errors import OutOfSpace
from .errors import StorageError
from .models import ATTRIBUTIONS
from .models import AccessRequest
from .models import Credential
from .models import Evidence
from .models import HarvestRow
from .models import Item
from .models import Release
from .models import StoredCheckpoint
from .models import Version
from .models import from_text
from .models import to_text
from .retention import checked_now

_R = TypeVar("_R")

#: Each entry upgrades the schema by one version (PRAGMA user_version).
_MIGRATIONS: list[str] = [
    """
    CREATE TABLE items (
        id INTEGER PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        visibility TEXT NOT NULL CHECK (visibility IN ('public', 'protected')),
        created_at TEXT NOT NULL
    );
    CREATE TABLE versions (
        id INTEGER PRIMARY KEY,
        item_id INTEGER NOT NULL REFERENCES items(id),
        number INTEGER NOT NULL,
        filename TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        content_type TEXT NOT NULL,
        storage_key TEXT NOT NULL UNIQUE,
        published_at TEXT NOT NULL,
        retain_until TEXT NOT NULL,
        withdrawn_at TEXT,
        UNIQUE (item_id, number)
    );
    CREATE TABLE access_requests (
        id INTEGER PRIMARY KEY,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'approved', 'denied', 'released', 'expired')),
        institution TEXT,
        contact_name TEXT,
        contact_email TEXT,
        legal_basis TEXT,
        message TEXT,
        created_at TEXT NOT NULL,
        decided_at TEXT,
        decision_reason TEXT,
        closed_at TEXT,
        purged_at TEXT
    );
    CREATE TABLE credentials (
        id INTEGER PRIMARY KEY,
        request_id INTEGER NOT NULL REFERENCES access_requests(id),
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        revoked_at TEXT
    );
    CREATE TABLE releases (
        id INTEGER PRIMARY KEY,
        request_id INTEGER NOT NULL REFERENCES access_requests(id),
        credential_id INTEGER NOT NULL REFERENCES credentials(id),
        token_hash TEXT NOT NULL UNIQUE,
        sealed_password TEXT,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        released_at TEXT
    );
    CREATE TABLE downloads (
        id INTEGER PRIMARY KEY,
        credential_id INTEGER REFERENCES credentials(id),
        version_id INTEGER NOT NULL REFERENCES versions(id),
        status INTEGER NOT NULL,
        bytes_sent INTEGER NOT NULL,
        complete INTEGER NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX downloads_by_credential ON downloads (credential_id, version_id);
    CREATE INDEX downloads_by_version ON downloads (version_id, complete);
    CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        action TEXT NOT NULL,
        data TEXT NOT NULL,
        personal TEXT,
        personal_key TEXT,
        personal_digest TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    INSERT INTO meta (key, value) VALUES ('versions_changed', 0);
    CREATE TABLE owner (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        username TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_log_no_rewrite
    BEFORE UPDATE OF seq, at, action, data, personal_digest, prev_hash, hash ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    # 2: a counter that every change to what a download depends on raises, from any
    # process, so that servers can keep those answers in memory (archive/lookups.py) and
    # their rendered indexes (deposit/web/listing.py). It replaces 'versions_changed', which
    # the code had to remember to raise.
    "INSERT INTO meta (key, value) VALUES ('lookups_changed', 0);\n"
    + "".join(
        f"CREATE TRIGGER {table}_{event.lower()}_changes_lookups AFTER {event} ON {table}\n"
        "BEGIN UPDATE meta SET value = value + 1 WHERE key = 'lookups_changed'; END;\n"
        for table in ("items", "versions", "credentials")
        for event in ("INSERT", "UPDATE", "DELETE")
    ),
    # 3: 'versions_changed' (the counter migration 2 replaced) is read by nothing.
    "DELETE FROM meta WHERE key = 'versions_changed';",
    # 4: the SHA-1 the deposit institution identifies files by (`pligt fixity` fills it in for
    # versions published before); how each download is tied to the deposit crawler, and the
    # listed User-Agent pattern the client matched (never the User-Agent itself).
    """
    ALTER TABLE versions ADD COLUMN sha1 TEXT;
    ALTER TABLE downloads ADD COLUMN via TEXT CHECK (via IN ('credential', 'connection', 'user-agent'));
    ALTER TABLE downloads ADD COLUMN crawler TEXT;
    UPDATE downloads SET via = 'credential' WHERE credential_id IS NOT NULL;
    """,
    # 5 (issue 15): signed checkpoints of the audit log's Merkle tree (archive/checkpoints.py),
    # each with its RFC 3161 time stamp once the TSA gave one (base64 DER: portable text).
    # Append-only like the log; a stamp is set once.
    """
    CREATE TABLE checkpoints (
        id INTEGER PRIMARY KEY,
        size INTEGER NOT NULL,
        root TEXT NOT NULL,
        note TEXT NOT NULL,
        created_at TEXT NOT NULL,
        stamp TEXT,
        stamp_chain TEXT,
        stamped_at TEXT,
        stamp_error TEXT
    );
    CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
    CREATE TRIGGER checkpoints_no_rewrite BEFORE UPDATE OF id, size, root, note, created_at ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
    CREATE TRIGGER checkpoints_stamped_once BEFORE UPDATE OF stamp, stamp_chain, stamped_at ON checkpoints
    WHEN OLD.stamp IS NOT NULL
    BEGIN SELECT RAISE(ABORT, 'a checkpoint is stamped once'); END;
    """,
]
SCHEMA_VERSION = len(_MIGRATIONS)


_VERSION_COLUMNS = """
    v.id, i.slug, i.title, i.visibility, v.number, v.filename, v.size, v.sha256,
    v.content_type, v.storage_key, v.published_at, v.retain_until, v.withdrawn_at, v.sha1
"""


#: Seconds a write waits for another process's write lock: long enough for the CLI,
#: cron jobs and the batch writer to outwait any other writer's burst (a purge, a
#: fixity run recording its SHA-1s, a migration).
BUSY_TIMEOUT = 30.0
#: Seconds a web request's write waits for it: someone at a browser or a crawler
#: with its own timeout is better told 503 with Retry-After after a few seconds
#: than held 30 s by a worker thread that other requests need meanwhile; no
#: writer of Pligt's own holds the lock anywhere near this long.
REQUEST_BUSY_TIMEOUT = 5.0


class _Connection(sqlite3.Connection):
    """A connection whose failures a person can act on arrive as domain errors.

    A full disk (SQLITE_FULL) becomes :class:`OutOfSpace`; a write lock held by
    another process past the busy timeout (SQLITE_BUSY, SQLITE_LOCKED)
    :class:`CatalogBusy`; a file that cannot be read or written
    :class:`StorageError`. Anything else (a constraint, an SQL mistake) stays
    the sqlite3 error it is. Every statement of the catalog passes here,
    BEGIN and COMMIT included.
    """

    label = "the catalog"
    busy_seconds = BUSY_TIMEOUT

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.DatabaseError as e:
            error = self.translated(e)
            if error is None:
                raise
            raise error from e

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        try:
            return super().executemany(sql, parameters)
        except sqlite3.DatabaseError as e:
            error = self.translated(e)
            if error is None:
                raise
            raise error from e

    def translated(self, e: sqlite3.DatabaseError) -> ArchiveError | None:
        """Return the domain error for ``e``, or None for an error that is no storage failure."""
        return _domain_error(e, self.label, self.busy_seconds)


def _domain_error(e: sqlite3.DatabaseError, label: str, busy_seconds: float) -> ArchiveError | None:
    """Return the domain error for a failure of the database ``label``, or None if it is no storage failure."""
    code = getattr(e, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_FULL:
        return OutOfSpace(f"no space left on the disk of {label}: nothing was changed ({e})")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return CatalogBusy(
            f"{label} is busy: another process has held its write lock for more than "
            f"{busy_seconds:g} s; nothing was changed, try again shortly"
        )
    if code in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CORRUPT,
                sqlite3.SQLITE_NOTADB):  # fmt: skip
        return StorageError(f"{label} failed: {e}")
    return None


class Catalog:
    """SQLite catalog of items, versions, crawler credentials and the owner."""

    def __init__(self, path: str | Path, *, busy_timeout: float | None = None) -> None:
        """Open (lazily, per thread) the catalog at ``path``.

        :param busy_timeout: seconds a write waits for another process's write
            lock before :class:`CatalogBusy`; default :data:`BUSY_TIMEOUT`, and
            :data:`REQUEST_BUSY_TIMEOUT` for the web app's requests.
        """
        self.path = Path(path)
        self.busy_timeout = BUSY_TIMEOUT if busy_timeout is None else busy_timeout
        self._local = threading.local()

    # -- connection and schema -------------------------------------------------

    @property
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout, factory=_Connection)
            except sqlite3.Error as e:
                raise StorageError(f"cannot open catalog {self.path}: {e}") from e
            assert isinstance(db, _Connection)
            db.label, db.busy_seconds = f"the catalog {self.path}", self.busy_timeout
            try:
                db.row_factory = sqlite3.Row
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA foreign_keys=ON")
                db.execute("PRAGMA synchronous=FULL")
                # Erased personal data must not linger in free pages of the file.
                db.execute("PRAGMA secure_delete=ON")
            except (sqlite3.Error, ArchiveError) as e:
                db.close()
                if isinstance(e, ArchiveError):
                    raise
                raise StorageError(f"cannot open catalog {self.path}: {e}") from e
            self._local.db = db
        return db

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several writes (and their audit entries) into one atomic transaction."""
        with self._write():
            yield

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """Run a write transaction that takes the lock up front (no upgrade deadlocks).

        Nested uses join the outermost transaction. A failure anywhere, the
        COMMIT's included (a full disk shows there), leaves nothing of the
        transaction behind.
        """
        db = self._db
        if db.in_transaction:
            yield db
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            _roll_back(db)
            raise

    def migrate(self) -> None:
        """Create or upgrade the schema to :data:`SCHEMA_VERSION`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._write() as db:
            current = db.execute("PRAGMA user_version").fetchone()[0]
            if current > SCHEMA_VERSION:
                raise StorageError(
                    f"catalog {self.path} has schema {current}, newer than this Pligt ({SCHEMA_VERSION})"
                )
            for number, script in enumerate(_MIGRATIONS[current:], start=current + 1):
                for statement in _statements(script):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number:d}")

    def backup_to(self, path: Path) -> None:
        """Write a consistent copy of the catalog to ``path`` with SQLite's online backup."""
        target = sqlite3.connect(path)
        try:
            self._db.backup(target)
        except sqlite3.DatabaseError as e:
            error = _domain_error(e, f"the catalog's copy {path}", self.busy_timeout)
            if error is None:
                raise
            raise error from e
        finally:
            target.close()

    def schema_version(self) -> int:
        return _scalar(self._db.execute("PRAGMA user_version"))

    def ping(self) -> None:
        """Raise :class:`StorageError` unless the catalog answers with the expected schema."""
        try:
            version = self.schema_version()
        except sqlite3.Error as e:
            raise StorageError(f"catalog {self.path} is not readable: {e}") from e
        if version < SCHEMA_VERSION:
            raise StorageError(
                f"catalog {self.path} has schema {version}, expected {SCHEMA_VERSION}: "
                "`pligt serve` upgrades it when it starts"
            )
        if version != SCHEMA_VERSION:
            raise StorageError(f"catalog {self.path} has schema {version}, expected {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- items and versions ----------------------------------------------------

    def get_item(self, slug: str) -> Item | None:
        row = self._db.execute("SELECT * FROM items WHERE slug = ?", (slug,)).fetchone()
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
        with self._write() as db:
            row = db.execute("SELECT id, visibility FROM items WHERE slug = ?", (slug,)).fetchone()
            if row is None:
                item_id = db.execute(
                    "INSERT INTO items (slug, title, visibility, created_at) VALUES (?, ?, ?, ?)",
                    (slug, title, visibility, to_text(published_at)),
                ).lastrowid
            elif row["visibility"] != visibility:
                raise Conflict(f"item {slug!r} is {row['visibility']}; a new version cannot make it {visibility}")
            else:
                item_id = row["id"]
                db.execute("UPDATE items SET title = ? WHERE id = ?", (title, item_id))
            number = db.execute(
                "SELECT COALESCE(MAX(number), 0) + 1 FROM versions WHERE item_id = ?", (item_id,)
            ).fetchone()[0]
            version_id = db.execute(
                """INSERT INTO versions (item_id, number, filename, size, sha256, sha1, content_type,
                       storage_key, published_at, retain_until)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
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
            ).lastrowid
            return _version(
                db.execute(
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
        return [_version(row) for row in self._db.execute(sql, params)]

    def count_versions(self, *, visibility: str | None = None, include_withdrawn: bool = False) -> int:
        where, params = self._versions_where(visibility, include_withdrawn)
        sql = f"SELECT COUNT(*) FROM versions v JOIN items i ON i.id = v.item_id {where}"
        return _scalar(self._db.execute(sql, params))

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
        rows = self._db.execute(
            f"SELECT {_VERSION_COLUMNS} FROM versions v JOIN items i ON i.id = v.item_id "
            "WHERE i.slug = ? ORDER BY v.number",
            (slug,),
        )
        return [_version(row) for row in rows]

    def download_version(self, slug: str, number: int | None) -> Version | None:
        """Return version ``number`` of ``slug``, withdrawn or not (``None``: the latest retained one)."""
        where = "v.number = :number" if number is not None else "v.withdrawn_at IS NULL"
        row = self._db.execute(
            f"""SELECT {_VERSION_COLUMNS} FROM items i JOIN versions v ON v.item_id = i.id
                WHERE i.slug = :slug AND {where} ORDER BY v.number DESC LIMIT 1""",
            {"slug": slug, "number": number},
        ).fetchone()
        return None if row is None else _version(row)

    def lookups_generation(self) -> int:
        """Return a number that triggers raise on every change to items, versions and credentials."""
        return _scalar(self._db.execute("SELECT value FROM meta WHERE key = 'lookups_changed'"))

    def set_sha1(self, version_id: int, sha1: str) -> None:
        """Record the SHA-1 of a version published before it was kept (never replaces one)."""
        with self._write() as db:
            db.execute("UPDATE versions SET sha1 = ? WHERE id = ? AND sha1 IS NULL", (sha1, version_id))

    def mark_withdrawn(self, version_id: int, now: datetime) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE versions SET withdrawn_at = ? WHERE id = ? AND withdrawn_at IS NULL",
                (to_text(now), version_id),
            )

    # -- access requests -----------------------------------------------------

    def add_request(self, fields: dict[str, str], now: datetime) -> AccessRequest:
        with self._write() as db:
            request_id = db.execute(
                """INSERT INTO access_requests
                       (institution, contact_name, contact_email, legal_basis, message, created_at)
                   VALUES (:institution, :contact_name, :contact_email, :legal_basis, :message, :now)""",
                {**fields, "now": to_text(now)},
            ).lastrowid
        assert request_id is not None
        found = self.get_request(request_id)
        assert found is not None
        return found

    def get_request(self, request_id: int) -> AccessRequest | None:
        row = self._db.execute("SELECT * FROM access_requests WHERE id = ?", (request_id,)).fetchone()
        return _request(row) if row else None

    def requests(self, status: str | None = None) -> list[AccessRequest]:
        sql, params = "SELECT * FROM access_requests", tuple[object, ...]()
        if status is not None:
            sql, params = sql + " WHERE status = ?", (status,)
        return [_request(row) for row in self._db.execute(sql + " ORDER BY id", params)]

    def count_requests(self, status: str) -> int:
        return _scalar(self._db.execute("SELECT COUNT(*) FROM access_requests WHERE status = ?", (status,)))

    def set_request_status(
        self, request_id: int, status: str, now: datetime, *, reason: str | None = None, decided: bool = False
    ) -> None:
        closed = status in ("denied", "expired")
        with self._write() as db:
            db.execute(
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
        with self._write() as db:
            row = db.execute("SELECT status FROM access_requests WHERE id = ?", (request_id,)).fetchone()
            if row is None or row["status"] not in ("approved", "released"):
                raise Conflict(f"request {request_id} is not approved: no credential without an approved request")
            credential_id = db.execute(
                """INSERT INTO credentials (request_id, username, password_hash, created_at, expires_at)
                   VALUES (?, ?, ?, ?, ?)""",
                (request_id, username, password_hash, to_text(created_at), to_text(expires_at)),
            ).lastrowid
            return _credential(db.execute("SELECT * FROM credentials WHERE id = ?", (credential_id,)).fetchone())

    def get_credential(self, credential_id: int) -> Credential | None:
        row = self._db.execute("SELECT * FROM credentials WHERE id = ?", (credential_id,)).fetchone()
        return _credential(row) if row else None

    def credential_by_username(self, username: str) -> Credential | None:
        row = self._db.execute("SELECT * FROM credentials WHERE username = ?", (username,)).fetchone()
        return _credential(row) if row else None

    def credentials(self, request_id: int | None = None) -> list[Credential]:
        sql, params = "SELECT * FROM credentials", tuple[object, ...]()
        if request_id is not None:
            sql, params = sql + " WHERE request_id = ?", (request_id,)
        return [_credential(row) for row in self._db.execute(sql + " ORDER BY id", params)]

    def revoke_credential(self, credential_id: int, now: datetime) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE credentials SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (to_text(now), credential_id),
            )

    # -- releases --------------------------------------------------------------

    def add_release(
        self, request_id: int, credential_id: int, token_hash: str, sealed: str, now: datetime, expires_at: datetime
    ) -> None:
        with self._write() as db:
            db.execute(
                """INSERT INTO releases (request_id, credential_id, token_hash, sealed_password, created_at, expires_at)
                   VALUES (?, ?, ?, ?, ?, ?)""",
                (request_id, credential_id, token_hash, sealed, to_text(now), to_text(expires_at)),
            )

    def release_by_token_hash(self, token_hash: str) -> Release | None:
        row = self._db.execute("SELECT * FROM releases WHERE token_hash = ?", (token_hash,)).fetchone()
        return _release(row) if row else None

    def releases(self, request_id: int) -> list[Release]:
        rows = self._db.execute("SELECT * FROM releases WHERE request_id = ? ORDER BY id", (request_id,))
        return [_release(row) for row in rows]

    def mark_released(self, release_id: int, now: datetime) -> bool:
        """Mark a release spent and erase its sealed password; False if it was spent already."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE releases SET released_at = ?, sealed_password = NULL WHERE id = ? AND released_at IS NULL",
                (to_text(now), release_id),
            )
            return cursor.rowcount == 1

    def discard_unreleased(self, credential_id: int) -> None:
        """Erase the sealed password of every unspent release of a credential."""
        with self._write() as db:
            db.execute(
                "UPDATE releases SET sealed_password = NULL WHERE credential_id = ? AND released_at IS NULL",
                (credential_id,),
            )

    # -- proof of deposit ------------------------------------------------------

    def record_downloads(self, rows: list[DownloadRow]) -> None:
        """Write download records in one transaction.

        Each: (credential, version, status, bytes, complete, time, attributed by, crawler pattern).
        """
        with self._write() as db:
            db.executemany(
                """INSERT INTO downloads (credential_id, version_id, status, bytes_sent, complete, at, via, crawler)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                [(c, v, status, sent, complete, to_text(at), via, crawler)
                 for c, v, status, sent, complete, at, via, crawler in rows],
            )  # fmt: skip

    def harvest(self) -> list[HarvestRow]:
        """Return, per access request with credentials and per retained version, the best evidence.

        The download records are summed up in SQL (first and last time per request,
        version, credential, attribution and kind); :func:`_harvest_rows` picks from those.
        """
        db = self._db
        requests: dict[int, tuple[str | None, list[tuple[int, str]]]] = {}
        for row in db.execute(
            """SELECT r.id, r.institution, c.id AS credential_id, c.username
               FROM access_requests r JOIN credentials c ON c.request_id = r.id ORDER BY r.id, c.id"""
        ):
            requests.setdefault(row["id"], (row["institution"], []))[1].append((row["credential_id"], row["username"]))
        summary = db.execute(
            """SELECT c.request_id, d.version_id, d.credential_id, d.via, d.crawler,
                      d.status = 304 AS revisit, d.complete, MIN(d.at) AS first_at, MAX(d.at) AS last_at
               FROM downloads d LEFT JOIN credentials c ON c.id = d.credential_id
               GROUP BY c.request_id, d.version_id, d.credential_id, d.via, d.crawler, d.status = 304, d.complete"""
        ).fetchall()
        return _harvest_rows(requests, self.versions(), summary)

    # -- personal data: purge, export, erasure ---------------------------------------

    def requests_by_email(self, email: str) -> list[AccessRequest]:
        rows = self._db.execute(
            "SELECT * FROM access_requests WHERE lower(contact_email) = lower(?) ORDER BY id", (email,)
        )
        return [_request(row) for row in rows]

    def erase_request_personal_data(self, request_id: int, now: datetime) -> None:
        """Erase a request's personal fields and those of its audit entries (with their keys).

        The audit chain covers only keyed digests of these fields, so it still verifies.
        """
        with self._write() as db:
            db.execute(
                """UPDATE access_requests SET institution = NULL, contact_name = NULL, contact_email = NULL,
                       legal_basis = NULL, message = NULL, purged_at = ?
                   WHERE id = ?""",
                (to_text(now), request_id),
            )
            db.execute(
                """UPDATE audit_log SET personal = NULL, personal_key = NULL
                   WHERE personal IS NOT NULL AND json_extract(data, '$.request') = ?""",
                (request_id,),
            )

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file and empty it (after an erasure)."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def downloads_before(self, moment: datetime, *, delete: bool) -> int:
        """Count (and with ``delete``, remove) download records older than ``moment``."""
        with self._write() as db:
            count = _scalar(db.execute("SELECT COUNT(*) FROM downloads WHERE at < ?", (to_text(moment),)))
            if delete:
                db.execute("DELETE FROM downloads WHERE at < ?", (to_text(moment),))
        return count

    def finished_releases(self, now: datetime, *, delete: bool) -> int:
        """Count (and with ``delete``, remove) release links that were spent or have expired."""
        where = "released_at IS NOT NULL OR expires_at <= ?"
        with self._write() as db:
            count = _scalar(db.execute(f"SELECT COUNT(*) FROM releases WHERE {where}", (to_text(now),)))
            if delete:
                db.execute(f"DELETE FROM releases WHERE {where}", (to_text(now),))
        return count

    def downloads_of(self, credential_ids: list[int]) -> list[dict[str, Any]]:
        """Return the download records of some credentials (for a data-subject export)."""
        if not credential_ids:
            return []
        marks = ",".join("?" * len(credential_ids))
        rows = self._db.execute(
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
        moved up to it; one long before is refused (:func:`~archive.retention.checked_now`).

        :raises ClockBehind: when ``now`` is well before the last entry.
        """
        key, digest = seal_personal(personal)
        with self._write() as db:
            last = db.execute("SELECT seq, hash, at FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last["seq"] + 1, last["hash"]) if last else (1, GENESIS)
            at = to_text(checked_now(now, from_text(last["at"]) if last else None))
            assert at is not None
            entry_digest = entry_hash(seq, prev, at, action, data, digest)
            db.execute(
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
        row = self._db.execute("SELECT at FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        return from_text(row["at"]) if row else None

    def latest_retention(self) -> datetime | None:
        """Return the latest retain-until date of any version ever published."""
        row = self._db.execute("SELECT MAX(retain_until) AS until FROM versions").fetchone()
        return from_text(row["until"]) if row and row["until"] else None

    def audit_entries(self, *, newest_first: bool = False, limit: int | None = None) -> Iterator[AuditEntry]:
        """Yield audit entries in sequence order (as stored: no checking here)."""
        sql = "SELECT * FROM audit_log ORDER BY seq" + (" DESC" if newest_first else "")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        for row in self._db.execute(sql):
            yield _audit_entry(row)

    # -- checkpoints (issue 15: signed, time-stamped checkpoints of the audit log) ----

    def add_checkpoint(self, size: int, root: str, note: str, now: datetime) -> StoredCheckpoint:
        """Keep a signed checkpoint (inside the current transaction, if any)."""
        with self._write() as db:
            checkpoint_id = db.execute(
                "INSERT INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)",
                (size, root, note, to_text(now)),
            ).lastrowid
            return _checkpoint(db.execute("SELECT * FROM checkpoints WHERE id = ?", (checkpoint_id,)).fetchone())

    def checkpoints(
        self, *, newest_first: bool = False, limit: int | None = None, unstamped: bool = False
    ) -> list[StoredCheckpoint]:
        """Return kept checkpoints in the order they were made (``unstamped``: only those without a stamp)."""
        sql = "SELECT * FROM checkpoints" + (" WHERE stamp IS NULL" if unstamped else "")
        sql += " ORDER BY id" + (" DESC" if newest_first else "")
        params: tuple[int, ...] = ()
        if limit is not None:
            sql, params = sql + " LIMIT ?", (limit,)
        return [_checkpoint(row) for row in self._db.execute(sql, params)]

    def set_stamp(self, checkpoint_id: int, stamp: bytes, chain: str, now: datetime) -> None:
        """Keep a checkpoint's time stamp (once: a stamped checkpoint keeps its first)."""
        with self._write() as db:
            db.execute(
                """UPDATE checkpoints SET stamp = ?, stamp_chain = ?, stamped_at = ?, stamp_error = NULL
                   WHERE id = ? AND stamp IS NULL""",
                (base64.b64encode(stamp).decode("ascii"), chain, to_text(now), checkpoint_id),
            )

    def audit_entries_after(self, seq: int) -> Iterator[AuditEntry]:
        """Yield the audit entries after number ``seq``, in order (a checkpoint reads only what is new)."""
        for row in self._db.execute("SELECT * FROM audit_log WHERE seq > ? ORDER BY seq", (seq,)):
            yield _audit_entry(row)

    def set_stamp_error(self, checkpoint_id: int, error: str) -> None:
        """Say why the last attempt to stamp a checkpoint failed (``pligt check`` reports it)."""
        with self._write() as db:
            db.execute("UPDATE checkpoints SET stamp_error = ? WHERE id = ? AND stamp IS NULL", (error, checkpoint_id))

    # -- owner -----------------------------------------------------------------

    def set_owner(self, username: str, password_hash: str, now: datetime) -> None:
        with self._write() as db:
            db.execute(
                """INSERT INTO owner (id, username, password_hash, created_at) VALUES (1, ?, ?, ?)
                   ON CONFLICT (id) DO UPDATE SET username = excluded.username,
                       password_hash = excluded.password_hash""",
                (username, password_hash, to_text(now)),
            )

    def console_epoch(self) -> int:
        """Return the counter that ending the console's sessions raises (a session names the one it began under)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'console_epoch'").fetchone()
        return int(row["value"]) if row else 0

    def end_console_sessions(self) -> None:
        """End every console session: each cookie names an older epoch from now on."""
        with self._write() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('console_epoch', 1) "
                "ON CONFLICT (key) DO UPDATE SET value = value + 1"
            )

    def owner(self) -> tuple[str, str] | None:
        """Return the owner's username and password hash, if the owner exists."""
        row = self._db.execute("SELECT username, password_hash FROM owner WHERE id = 1").fetchone()
        return (row["username"], row["password_hash"]) if row else None


#: What the recorder hands over per download (see :mod:`archive.recorder`).
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
    summary: list[sqlite3.Row],
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


def _roll_back(db: sqlite3.Connection) -> None:
    """End a failed transaction, if SQLite has not ended it already (it may, on a full disk)."""
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error, ArchiveError):  # the first error is the one to report
            db.execute("ROLLBACK")


def _statements(script: str) -> Iterator[str]:
    """Split a migration into complete statements (triggers contain semicolons)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        yield pending.strip()


#: Columns stored as text by ``to_text`` and handed out as datetimes.
_TIMES = {"created_at", "published_at", "retain_until", "withdrawn_at", "expires_at", "revoked_at",
          "decided_at", "closed_at", "purged_at", "released_at"}  # fmt: skip


@functools.cache
def _columns(cls: Hashable) -> tuple[tuple[str, bool], ...]:
    """A record's field names, each with whether it is a stored time (worked out once per class)."""
    return tuple((f.name, f.name in _TIMES) for f in dataclasses.fields(cast(Any, cls)))


def _scalar(cursor: sqlite3.Cursor) -> int:
    """The one whole number a query answers (a count, a version, a counter)."""
    return int(cursor.fetchone()[0])


def _record(cls: type[_R], row: sqlite3.Row) -> _R:
    """Build a model record from a row with the same column names."""
    columns = _columns(cast(Hashable, cls))
    return cls(**{name: from_text(row[name]) if is_time else row[name] for name, is_time in columns})


def _item(row: sqlite3.Row) -> Item:
    return _record(Item, row)


def _version(row: sqlite3.Row) -> Version:
    return _record(Version, row)


def _credential(row: sqlite3.Row) -> Credential:
    return _record(Credential, row)


def _request(row: sqlite3.Row) -> AccessRequest:
    return _record(AccessRequest, row)


def _release(row: sqlite3.Row) -> Release:
    return _record(Release, row)


def _audit_entry(row: sqlite3.Row) -> AuditEntry:
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


def _checkpoint(row: sqlite3.Row) -> StoredCheckpoint:
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
