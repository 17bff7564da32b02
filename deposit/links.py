"""The URLs Pligt hands out, defined once: the route, the pattern and the builder of each.

The web app registers :data:`VERSION_ROUTE`, the fast path matches
:data:`VERSION_PATTERN`, and everything that writes a version's address (pages,
the sitemap, the WARC export, reports, release emails) builds it with
:func:`version_path`, so that they cannot drift apart. Nothing here needs Flask.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from archive.models import Version

from .settings import Settings

#: The stable URL of one version (a werkzeug route).
VERSION_ROUTE = "/files/<slug>/v<int:number>/<filename>"
#: The same URL, as the fast path matches it (before any routing).
VERSION_PATTERN = re.compile(r"/files/([^/]+)/v([0-9]{1,9})/([^/]+)")
#: The item's newest retained version (a redirect).
LATEST_ROUTE = "/files/<slug>/latest"
#: The release page's path; the access blueprint serves it.
RELEASE_PATH = "/access/release/"

#: The characters werkzeug's router leaves unquoted in a path segment, so that
#: the paths made here are byte for byte the ones ``url_for`` makes.
_PATH_SAFE = "!$&'()*+,;=:@~"


def version_path(version: Version) -> str:
    """Return the stable path of one version; it ends in the file's name."""
    return f"/files/{quote(version.slug, safe='')}/v{version.number}/{quote(version.filename, safe=_PATH_SAFE)}"


def public_base(settings: Settings) -> str:
    """Return the instance's public base URL outside a request (the CLI, emails)."""
    if settings.base_url:
        return settings.base_url.rstrip("/")
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{settings.port}"


def release_link(settings: Settings, token: str) -> str:
    """Return the single-use link that releases a credential's password."""
    return f"{public_base(settings)}{RELEASE_PATH}{token}"
