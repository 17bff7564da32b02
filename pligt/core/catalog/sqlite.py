"""The SQLite catalog: one file in WAL mode, one connection per thread; the embedded default."""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import threading
from collections.abc import Collection
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pligt.core.catalog.base import BUSY_TIMEOUT
from pligt.core.catalog.base import SCHEMA_VERSION
from pligt.core.catalog.base import Catalog
from pligt.core.catalog.base import Dialect
from pligt.core.catalog.base import Result
from pligt.core.catalog.keys import KEY_BATCH
from pligt.core.catalog.keys import KEY_STORE_FILE
from pligt.core.catalog.keys import KEY_STORE_SCHEMA
from pligt.core.catalog.keys import KeyStore
from pligt.core.errors import ArchiveError
from pligt.core.errors import CatalogBusy
from pligt.core.errors import KeyStoreUnavailable
from pligt.core.errors import OutOfSpace
from pligt.core.errors import StorageError
from pligt.core.models import to_text
from pligt.core.models import utcnow
from pligt.core.private import private_file
from pligt.core.private import private_folder
from pligt.core.proof.sealing import new_key

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
    # process, so that servers can keep those answers in memory (pligt/core/downloads/lookups.py) and
    # their rendered indexes (pligt/web/listing.py). It replaces 'versions_changed', which
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
    # 5: counts per client (an HMAC of its address, never the address) for the lock-out and the
    # request-form limit, for catalogs shared by several machines (pligt/core/catalog/base.py,
    # count_client); a single machine counts in shared memory instead, but the schema is one.
    """
    CREATE TABLE client_counts (
        digest TEXT PRIMARY KEY,
        count INTEGER NOT NULL,
        last REAL NOT NULL,
        lapses_at REAL NOT NULL
    );
    CREATE INDEX client_counts_lapse ON client_counts (lapses_at);
    """,
    # 6 (issue 15): signed checkpoints of the audit log's Merkle tree (pligt/core/proof/checkpoints.py),
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
    # 7 (issue 23): each request's personal fields sealed under a key of its own (the key's id
    # here, the key in the key store); Catalog.seal_clear_requests empties the clear columns.
    """
    ALTER TABLE access_requests ADD COLUMN key_id TEXT;
    ALTER TABLE access_requests ADD COLUMN sealed TEXT;
    """,
    # 8 (issue 23, cost): the audit entries of one action (the harvest report's deposit.harvest)
    # found without reading every entry, whose sealed personal fields make the log long to scan.
    """
    CREATE INDEX audit_log_by_action ON audit_log (action, seq);
    """,
]

DIALECT = Dialect(name="sqlite", audit_request="json_extract(data, '$.request')")


assert len(_MIGRATIONS) == SCHEMA_VERSION


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
    busy_seconds = 30.0

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
    if code in (
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
    ):
        return StorageError(f"{label} failed: {e}")
    return None


class SqliteCatalog(Catalog):
    """The catalog in one SQLite file (WAL): for one machine, however many processes."""

    dialect = DIALECT

    def __init__(self, path: str | Path, *, busy_timeout: float | None = None, keys: KeyStore | None = None) -> None:
        """Open (lazily, per thread) the catalog at ``path``.

        :param busy_timeout: seconds a write waits for another process's write
            lock before :class:`CatalogBusy`; default :data:`~pligt.core.catalog.BUSY_TIMEOUT`, and
            :data:`~pligt.core.catalog.REQUEST_BUSY_TIMEOUT` for the web app's requests.
        :param keys: the key store of personal data (default: ``personal_keys.sqlite3`` beside
            the file; made only when the first key is).
        """
        self.path = Path(path)
        self.keys = keys if keys is not None else SqliteKeyStore(self.path.parent / KEY_STORE_FILE)
        self.label = str(self.path)
        self.busy_timeout = BUSY_TIMEOUT if busy_timeout is None else busy_timeout
        self._local = threading.local()

    @property
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                _create_private(self.path)
                db = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout, factory=_Connection)
            except (sqlite3.Error, OSError) as e:
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

    def _execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Result:
        return self._db.execute(sql, params)

    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """Run a write transaction that takes the lock up front (BEGIN IMMEDIATE: no upgrade deadlocks)."""
        db = self._db
        if db.in_transaction:
            yield
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
            db.execute("COMMIT")
        except BaseException:
            _roll_back(db)
            raise

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Read inside one read transaction: WAL keeps its state while writers go on."""
        db = self._db
        if db.in_transaction:
            yield
            return
        db.execute("BEGIN")
        try:
            yield
        finally:
            _roll_back(db)

    def _migrate_schema(self) -> None:
        private_folder(self.path.parent)
        with self._write():
            db = self._db
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
        _create_private(path)
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
        try:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.Error as e:
            raise StorageError(f"catalog {self.path} is not readable: {e}") from e

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file and empty it (after an erasure)."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def reset_keys(self) -> None:
        """Nothing to do: SQLite gives a new row the highest id in its table plus one."""

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
        if self.keys is not None:
            self.keys.close()


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


def _create_private(path: Path) -> None:
    """Create a new catalog file owner-only before SQLite opens it: its -wal and -shm take the same mode.

    It holds requesters' names and email addresses. An existing file keeps its mode; without its
    folder, nothing is made here and SQLite says what is wrong.
    """
    if str(path) != ":memory:" and not path.exists() and path.parent.is_dir():
        private_file(path)


class SqliteKeyStore(KeyStore):
    """The keys in a SQLite file of their own; made on the first key, never on a read."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.label = str(self.path)
        self._local = threading.local()

    @contextlib.contextmanager
    def _db(self, *, create: bool) -> Iterator[sqlite3.Connection | None]:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None and getattr(self._local, "pid", None) != os.getpid():
            db = None  # opened before a fork (gunicorn's workers): a SQLite connection is not shared
        if db is None:
            if not create and not self.path.is_file():
                yield None
                return
            try:
                if create:  # owner-only from the start, whatever the umask
                    private_folder(self.path.parent)
                    private_file(self.path)
                db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
                # A destroyed key is overwritten in the file, not left in a free page; the
                # rollback journal is deleted after each write (no write-ahead log to hold it).
                db.execute("PRAGMA secure_delete=ON")
                db.execute("PRAGMA journal_mode=DELETE")
                db.execute("PRAGMA synchronous=FULL")
                for statement in KEY_STORE_SCHEMA:
                    db.execute(statement)
            except sqlite3.Error as e:
                raise KeyStoreUnavailable(f"cannot open the key store {self.path}: {e}") from e
            self._local.db, self._local.pid = db, os.getpid()
        try:
            yield db
        except sqlite3.Error as e:
            raise KeyStoreUnavailable(f"the key store {self.path} failed: {e}") from e

    def create(self) -> tuple[str, bytes]:
        key_id, key = secrets.token_hex(16), new_key()
        with self._db(create=True) as db:
            assert db is not None
            db.execute(
                "INSERT INTO personal_keys (id, key, created_at) VALUES (?, ?, ?)", (key_id, key, to_text(utcnow()))
            )
        return key_id, key

    def get(self, ids: Collection[str]) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(i for i in ids if i))
        if not wanted:
            return {}
        with self._db(create=False) as db:
            if db is None:
                return {}
            if len(wanted) > KEY_BATCH:  # a listing of thousands: one scan beats many lookups
                rows = db.execute("SELECT id, key FROM personal_keys").fetchall()
                chosen = set(wanted)
                return {i: bytes(k) for i, k in rows if i in chosen}
            marks = ",".join("?" * len(wanted))
            rows = db.execute(f"SELECT id, key FROM personal_keys WHERE id IN ({marks})", wanted).fetchall()
        return {i: bytes(k) for i, k in rows}

    def destroy(self, ids: Collection[str]) -> None:
        wanted = [i for i in ids if i]
        if not wanted:
            return
        now = to_text(utcnow())
        with self._db(create=True) as db:
            assert db is not None
            db.execute("BEGIN IMMEDIATE")
            try:
                for key_id in wanted:
                    db.execute("DELETE FROM personal_keys WHERE id = ?", (key_id,))
                    db.execute("INSERT OR IGNORE INTO destroyed_keys (id, destroyed_at) VALUES (?, ?)", (key_id, now))
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise

    def destroyed(self, ids: Collection[str]) -> set[str]:
        wanted = list(dict.fromkeys(i for i in ids if i))
        with self._db(create=False) as db:
            if db is None or not wanted:
                return set()
            rows = db.execute("SELECT id FROM destroyed_keys").fetchall()
        chosen = set(wanted)
        return {i for (i,) in rows if i in chosen}

    def exists(self) -> bool:
        return self.path.is_file()

    def export(self) -> tuple[list[tuple[str, bytes, str]], list[tuple[str, str]]]:
        with self._db(create=False) as db:
            if db is None:
                return [], []
            keys = [(i, bytes(k), c) for i, k, c in db.execute("SELECT id, key, created_at FROM personal_keys")]
            tombstones = [(i, d) for i, d in db.execute("SELECT id, destroyed_at FROM destroyed_keys")]
        return keys, tombstones

    def load(self, keys: list[tuple[str, bytes, str]], tombstones: list[tuple[str, str]]) -> None:
        with self._db(create=True) as db:
            assert db is not None
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT OR IGNORE INTO destroyed_keys (id, destroyed_at) VALUES (?, ?)", tombstones)
                dead = {i for i, _ in tombstones}
                db.executemany(
                    "INSERT OR IGNORE INTO personal_keys (id, key, created_at) VALUES (?, ?, ?)",
                    [k for k in keys if k[0] not in dead],
                )
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
