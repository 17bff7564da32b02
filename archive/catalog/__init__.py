"""The catalog, behind one interface, in SQLite (the embedded default) or PostgreSQL (several app servers).

:func:`open_catalog` picks the dialect from the ``catalog`` setting: a file path
or ``sqlite:///path`` is a SQLite file, ``postgresql://…`` a PostgreSQL
database; anything else is refused (:func:`check_catalog_url`).
"""

from __future__ import annotations

from .base import BUSY_TIMEOUT
from .base import REQUEST_BUSY_TIMEOUT
from .base import SCHEMA_VERSION
from .base import TABLES
from .base import Catalog
from .base import DownloadRow
from .base import GenerationQuestion
from .base import QuestionFailed
from .sqlite import _MIGRATIONS
from .sqlite import SqliteCatalog
from .url import CatalogLocation
from .url import check_catalog_url
from .url import locate_catalog
from .url import open_catalog

__all__ = [
    "BUSY_TIMEOUT",
    "REQUEST_BUSY_TIMEOUT",
    "SCHEMA_VERSION",
    "TABLES",
    "_MIGRATIONS",
    "Catalog",
    "CatalogLocation",
    "DownloadRow",
    "GenerationQuestion",
    "QuestionFailed",
    "SqliteCatalog",
    "check_catalog_url",
    "locate_catalog",
    "open_catalog",
]
