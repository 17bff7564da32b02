"""Pligt's archive core: storage, catalog, retention, content checks.

Nothing here imports Flask or knows of HTTP; the service (``pligt``) and
the CLI build on the :class:`Archive` API.
"""

from __future__ import annotations

from pligt.core.catalog import Catalog
from pligt.core.catalog import SqliteCatalog
from pligt.core.catalog import open_catalog
from pligt.core.deposits import Archive
from pligt.core.deposits import Publication
from pligt.core.storage import open_backend

__all__ = ["Archive", "Catalog", "Publication", "SqliteCatalog", "open_backend", "open_catalog"]
