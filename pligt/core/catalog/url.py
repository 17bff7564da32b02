"""The ``catalog`` setting: which engine, and where, from one string.

A plain path (absolute, or relative to the instance folder: never to the
folder a command happens to run in) or ``sqlite:///absolute/path`` is a
SQLite file; ``postgresql://user@host:port/database?…`` (libpq's URL, also
``postgres://``) a PostgreSQL database. Any other scheme, or a URL that does
not parse, is a configuration error naming the setting: before this,
``postgresql://…`` was silently taken for a relative file path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote
from urllib.parse import urlsplit

from pligt.core.catalog.base import Catalog
from pligt.core.catalog.base import redacted
from pligt.core.catalog.keys import KEY_STORE_FILE
from pligt.core.catalog.keys import KeyStore
from pligt.core.errors import InvalidOption

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
#: Something before a colon that looks like a URL scheme (a Windows drive letter is no concern here).
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_POSTGRES_SCHEMES = ("postgresql", "postgres")
_POSTGRES_PREFIXES = ("postgresql://", "postgres://")


@dataclass(frozen=True)
class CatalogLocation:
    """Where a catalog is: a SQLite file (``path``) or a PostgreSQL URL (``url``)."""

    kind: str
    path: Path | None = None
    url: str | None = None

    @property
    def label(self) -> str:
        """The location for messages and logs: the path, or the URL without its password."""
        if self.path is not None:
            return str(self.path)
        assert self.url is not None
        return redacted(self.url)


def locate_catalog(value: str, instance: Path) -> CatalogLocation:
    """Parse the ``catalog`` setting.

    :param instance: the instance folder, that a relative path is relative to.
    :raises InvalidOption: (option ``catalog``) for an unknown scheme or a malformed URL.
    """
    text = value.strip()
    if not text:
        return CatalogLocation(SQLITE, path=instance / "catalog.sqlite3")
    match = _SCHEME.match(text)
    if match is None:
        path = Path(text).expanduser()
        return CatalogLocation(SQLITE, path=path if path.is_absolute() else instance / path)
    scheme = match.group(1).lower()
    if scheme == SQLITE:
        return CatalogLocation(SQLITE, path=_sqlite_path(text))
    if scheme in _POSTGRES_SCHEMES:
        _check_postgres(text)
        return CatalogLocation(POSTGRESQL, url=text)
    raise InvalidOption(
        "catalog",
        f"{redacted(text)!r} has an unknown scheme {scheme + ':'!r}: use a file path, sqlite:///absolute/path "
        "or postgresql://user@host/database (a file name with a colon: write it as ./name)",
    )


def check_catalog_url(value: str, instance: Path) -> None:
    """Check the ``catalog`` setting without connecting anywhere.

    :raises InvalidOption: as :func:`locate_catalog`.
    """
    locate_catalog(value, instance)


def open_catalog(value: str, instance: Path, *, busy_timeout: float | None = None, key_store: str = "") -> Catalog:
    """Return the catalog the ``catalog`` setting names (connections open when first used).

    :param key_store: the ``key_store`` setting: where the keys of its personal data are
        (default: ``personal_keys.sqlite3`` in the instance folder, whatever the catalog).
    :raises InvalidOption: as :func:`locate_catalog`.
    """
    location = locate_catalog(value, instance)
    keys = open_key_store(key_store, instance)
    if location.kind == POSTGRESQL:
        from pligt.core.catalog.postgresql import PostgresCatalog  # psycopg is loaded only for a PostgreSQL catalog

        assert location.url is not None
        return PostgresCatalog(location.url, busy_timeout=busy_timeout, keys=keys)
    from pligt.core.catalog.sqlite import SqliteCatalog

    assert location.path is not None
    return SqliteCatalog(location.path, busy_timeout=busy_timeout, keys=keys)


def open_key_store(value: str, instance: Path) -> KeyStore:
    """Open the key store of personal data the ``key_store`` setting names ("": the file in the instance folder).

    A path (absolute, or relative to the instance folder) or ``sqlite:///path`` is a SQLite file;
    ``postgresql://…`` a table in that database (which should not be the catalog's: see docs/privacy.md).
    """
    if value.startswith(_POSTGRES_PREFIXES):
        from pligt.core.catalog.postgresql import PostgresKeyStore

        return PostgresKeyStore(value)
    from pligt.core.catalog.sqlite import SqliteKeyStore

    if value.startswith("sqlite:///"):
        return SqliteKeyStore(Path(unquote(value.removeprefix("sqlite://"))))
    path = Path(value) if value else Path(KEY_STORE_FILE)
    return SqliteKeyStore(path if path.is_absolute() else instance / path)


def _sqlite_path(text: str) -> Path:
    try:
        parts = urlsplit(text)
    except ValueError as e:
        raise InvalidOption("catalog", f"{text!r} is not a URL: {e}") from None
    if parts.netloc or not parts.path.startswith("/") or parts.query or parts.fragment:
        raise InvalidOption("catalog", f"{text!r}: a SQLite URL is sqlite:///absolute/path (or give a plain file path)")
    return Path(unquote(parts.path))


def _check_postgres(text: str) -> None:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as e:
        raise InvalidOption("catalog", f"{redacted(text)!r} is not a valid PostgreSQL URL: {e}") from None
    if not parts.hostname and "host=" not in parts.query:
        raise InvalidOption("catalog", f"{redacted(text)!r} names no host: postgresql://user@host:5432/database")
    if not parts.path.strip("/"):
        raise InvalidOption("catalog", f"{redacted(text)!r} names no database: postgresql://user@host:5432/database")
    if parts.fragment:
        raise InvalidOption("catalog", f"{redacted(text)!r}: a PostgreSQL URL has no #fragment")
