"""The shared objects of one app, kept in ``app.extensions["pligt"]``.

A leaf module: views import :func:`pligt` from here, never the factory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from flask import current_app

from pligt.core import Archive
from pligt.core.credentials.auth import Authenticator
from pligt.settings import Settings
from pligt.web.page_cache import PageCache
from pligt.web.throttle import RateLimit


@dataclass
class Pligt:
    """The shared objects of one app."""

    settings: Settings
    archive: Archive
    authenticator: Authenticator
    #: Access requests per client (in memory only).
    request_limit: RateLimit
    #: Rendered index pages, per catalog generation.
    index_cache: PageCache


def pligt() -> Pligt:
    """Return the current app's :class:`Pligt` objects."""
    return cast(Pligt, current_app.extensions["pligt"])
