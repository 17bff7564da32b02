"""The catalog: every SQL statement of Pligt lives in this module.

SQLite in WAL mode, one connection per thread. The public methods are the
interface a PostgreSQL catalog will implement for deployments with several
app servers; keep SQL from leaking out of here.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from .errors import Conflict
from .errors import StorageError
from .models import Credential
from .models import Download
from .models import Item
from .models import Version
from .models import from_text
from .models import to_text

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
    CREATE TABLE credentials (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        revoked_at TEXT
    );
    CREATE TABLE owner (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        username TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    """,
]
SCHEMA_VERSION = len(_MIGRATIONS)

_VERSION_COLUMNS = """
    v.id, i.slug, i.title, i.visibility, v.number, v.filename, v.size, v.sha256,
    v.content_type, v.storage_key, v.published_at, v.retain_until, v.withdrawn_at
"""


class Catalog:
    """SQLite catalog of items, versions, crawler credentials and the owner."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()

    # -- connection and schema -------------------------------------------------

    @property
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
                db.row_factory = sqlite3.Row
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA foreign_keys=ON")
                db.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as e:
                raise StorageError(f"cannot open catalog {self.path}: {e}") from e
            self._local.db = db
        return db

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """Run a write transaction that takes the lock up front (no upgrade deadlocks)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

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
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number:d}")

    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def ping(self) -> None:
        """Raise :class:`StorageError` unless the catalog answers with the expected schema."""
        try:
            version = self.schema_version()
        except sqlite3.Error as e:
            raise StorageError(f"catalog {self.path} is not readable: {e}") from e
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
                """INSERT INTO versions (item_id, number, filename, size, sha256, content_type,
                       storage_key, published_at, retain_until)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    item_id,
                    number,
                    filename,
                    size,
                    sha256,
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

    def versions(self, *, visibility: str | None = None, include_withdrawn: bool = False) -> list[Version]:
        """Return versions ordered by slug and number (newest number last)."""
        sql = f"SELECT {_VERSION_COLUMNS} FROM versions v JOIN items i ON i.id = v.item_id WHERE 1=1"
        params: list[object] = []
        if visibility is not None:
            sql += " AND i.visibility = ?"
            params.append(visibility)
        if not include_withdrawn:
            sql += " AND v.withdrawn_at IS NULL"
        sql += " ORDER BY i.slug, v.number"
        return [_version(row) for row in self._db.execute(sql, params)]

    def item_versions(self, slug: str) -> list[Version]:
        """Return every version of ``slug``, withdrawn ones included."""
        rows = self._db.execute(
            f"SELECT {_VERSION_COLUMNS} FROM versions v JOIN items i ON i.id = v.item_id "
            "WHERE i.slug = ? ORDER BY v.number",
            (slug,),
        )
        return [_version(row) for row in rows]

    def find_download(self, slug: str, number: int | None, credential_id: int | None, now: datetime) -> Download | None:
        """Look up a version (``None``: the latest retained one) and the credential, in one query.

        This is the download hot path: one round trip to the catalog per request.
        """
        where = "v.number = :number" if number is not None else "v.withdrawn_at IS NULL"
        row = self._db.execute(
            f"""SELECT {_VERSION_COLUMNS},
                       c.id IS NOT NULL AND c.revoked_at IS NULL AND c.expires_at > :now AS active
                FROM items i JOIN versions v ON v.item_id = i.id
                LEFT JOIN credentials c ON c.id = :credential
                WHERE i.slug = :slug AND {where}
                ORDER BY v.number DESC LIMIT 1""",
            {"slug": slug, "number": number, "credential": credential_id, "now": to_text(now)},
        ).fetchone()
        if row is None:
            return None
        return Download(_version(row), None if credential_id is None else bool(row["active"]))

    def mark_withdrawn(self, version_id: int, now: datetime) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE versions SET withdrawn_at = ? WHERE id = ? AND withdrawn_at IS NULL",
                (to_text(now), version_id),
            )

    def latest_change(self) -> str | None:
        """Return a value that changes whenever a version is published or withdrawn."""
        row = self._db.execute("SELECT MAX(published_at), MAX(withdrawn_at), COUNT(*) FROM versions").fetchone()
        return f"{row[0]}|{row[1]}|{row[2]}"

    # -- crawler credentials ---------------------------------------------------

    def add_credential(
        self, username: str, password_hash: str, created_at: datetime, expires_at: datetime
    ) -> Credential:
        with self._write() as db:
            credential_id = db.execute(
                "INSERT INTO credentials (username, password_hash, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (username, password_hash, to_text(created_at), to_text(expires_at)),
            ).lastrowid
        found = self.get_credential(credential_id)
        assert found is not None
        return found

    def get_credential(self, credential_id: int) -> Credential | None:
        row = self._db.execute("SELECT * FROM credentials WHERE id = ?", (credential_id,)).fetchone()
        return _credential(row) if row else None

    def credential_by_username(self, username: str) -> Credential | None:
        row = self._db.execute("SELECT * FROM credentials WHERE username = ?", (username,)).fetchone()
        return _credential(row) if row else None

    def credentials(self) -> list[Credential]:
        return [_credential(row) for row in self._db.execute("SELECT * FROM credentials ORDER BY id")]

    def revoke_credential(self, credential_id: int, now: datetime) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE credentials SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (to_text(now), credential_id),
            )

    # -- owner -----------------------------------------------------------------

    def set_owner(self, username: str, password_hash: str, now: datetime) -> None:
        with self._write() as db:
            db.execute(
                """INSERT INTO owner (id, username, password_hash, created_at) VALUES (1, ?, ?, ?)
                   ON CONFLICT (id) DO UPDATE SET username = excluded.username,
                       password_hash = excluded.password_hash""",
                (username, password_hash, to_text(now)),
            )

    def owner(self) -> tuple[str, str] | None:
        """Return the owner's username and password hash, if the owner exists."""
        row = self._db.execute("SELECT username, password_hash FROM owner WHERE id = 1").fetchone()
        return (row["username"], row["password_hash"]) if row else None


def _item(row: sqlite3.Row) -> Item:
    return Item(
        id=row["id"],
        slug=row["slug"],
        title=row["title"],
        visibility=row["visibility"],
        created_at=from_text(row["created_at"]),  # type: ignore[arg-type]
    )


def _version(row: sqlite3.Row) -> Version:
    return Version(
        id=row["id"],
        slug=row["slug"],
        title=row["title"],
        visibility=row["visibility"],
        number=row["number"],
        filename=row["filename"],
        size=row["size"],
        sha256=row["sha256"],
        content_type=row["content_type"],
        storage_key=row["storage_key"],
        published_at=from_text(row["published_at"]),  # type: ignore[arg-type]
        retain_until=from_text(row["retain_until"]),  # type: ignore[arg-type]
        withdrawn_at=from_text(row["withdrawn_at"]),
    )


def _credential(row: sqlite3.Row) -> Credential:
    return Credential(
        id=row["id"],
        username=row["username"],
        password_hash=row["password_hash"],
        created_at=from_text(row["created_at"]),  # type: ignore[arg-type]
        expires_at=from_text(row["expires_at"]),  # type: ignore[arg-type]
        revoked_at=from_text(row["revoked_at"]),
    )
