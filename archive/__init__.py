"""Pligt's archive core: storage, catalog, retention, content checks.

Nothing here imports Flask or knows of HTTP; the service (``deposit``) and
the CLI build on the :class:`Archive` API.
"""

from __future__ import annotations

from .archive import Archive
from .archive import Publication
from .catalog import Catalog
from .catalog import SqliteCatalog
from .catalog import open_catalog
from .storage import open_backend

__all__ = ["Archive", "Catalog", "Publication", "SqliteCatalog", "open_backend", "open_catalog"]
