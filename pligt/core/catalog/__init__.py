"""The catalog, behind one interface, in SQLite (the embedded default) or PostgreSQL (several app servers).

:func:`open_catalog` picks the dialect from the ``catalog`` setting: a file path
or ``sqlite:///path`` is a SQLite file, ``postgresql://…`` a PostgreSQL
database; anything else is refused (:func:`check_catalog_url`).
"""

from __future__ import annotations

from pligt.core.catalog.base import BUSY_TIMEOUT
from pligt.core.catalog.base import REQUEST_BUSY_TIMEOUT
from pligt.core.catalog.base import SCHEMA_VERSION
from pligt.core.catalog.base import TABLES
from pligt.core.catalog.base import Catalog
from pligt.core.catalog.base import DownloadRow
from pligt.core.catalog.sqlite import _MIGRATIONS
from pligt.core.catalog.sqlite import SqliteCatalog
from pligt.core.catalog.url import CatalogLocation
from pligt.core.catalog.url import check_catalog_url
from pligt.core.catalog.url import locate_catalog
from pligt.core.catalog.url import open_catalog

__all__ = [
    "BUSY_TIMEOUT",
    "REQUEST_BUSY_TIMEOUT",
    "SCHEMA_VERSION",
    "TABLES",
    "_MIGRATIONS",
    "Catalog",
    "CatalogLocation",
    "DownloadRow",
    "SqliteCatalog",
    "check_catalog_url",
    "locate_catalog",
    "open_catalog",
]
