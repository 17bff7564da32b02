"""The URLs Pligt hands out, defined once: the route, the pattern and the builder of each.

The web app registers :data:`VERSION_ROUTE`, the fast path matches
:data:`VERSION_PATTERN`, and everything that writes a version's address (pages,
the sitemap, the WARC export, reports, release emails) builds it with
:func:`version_path`, so that they cannot drift apart. Nothing here needs Flask.
"""

from __future__ import annotations

import dataclasses
import re
import socket
from urllib.parse import quote
from urllib.parse import urlsplit

from pligt.core.models import Version
from pligt.settings import Settings

#: Where every version's URL begins.
FILES_PREFIX = "/files/"
#: The stable URL of one version (a werkzeug route).
VERSION_ROUTE = FILES_PREFIX + "<slug>/v<int:number>/<filename>"
#: The same URL, as the fast path matches it (before any routing).
VERSION_PATTERN = re.compile(re.escape(FILES_PREFIX) + r"([^/]+)/v([0-9]{1,9})/([^/]+)")
#: The item's newest retained version (a redirect).
LATEST_ROUTE = "/files/<slug>/latest"
#: The release page's path; the access blueprint serves it.
RELEASE_PATH = "/access/release/"
#: The public key that verifies the audit log's checkpoints, and the newest checkpoint
#: (RFC 8615 well-known paths), for anyone to fetch and keep.
CHECKPOINT_KEY_PATH = "/.well-known/pligt/checkpoint-key"
CHECKPOINT_PATH = "/.well-known/pligt/checkpoint"

#: The characters werkzeug's router leaves unquoted in a path segment, so that
#: the paths made here are byte for byte the ones ``url_for`` makes.
_PATH_SAFE = "!$&'()*+,;=:@~"


def version_path(version: Version) -> str:
    """Return the stable path of one version; it ends in the file's name."""
    return f"/files/{quote(version.slug, safe='')}/v{version.number}/{quote(version.filename, safe=_PATH_SAFE)}"


#: Where a running ``pligt serve`` is reached (one line, in the instance folder), for the
#: commands run beside it; written as it starts, removed as it stops.
SERVED_AT = "serving.url"
#: Addresses that listen everywhere: they say nothing about how clients reach the server.
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})  # noqa: S104 - names, not a bind


def listening_base(settings: Settings) -> str:
    """Return ``http://host:port`` for the address the server listens on (a wildcard: this machine's name)."""
    host = socket.getfqdn() if settings.host in WILDCARD_HOSTS else settings.host
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"


def served_base(settings: Settings) -> str | None:
    """Return the address a running ``pligt serve`` of this instance said it is reached at, if any."""
    try:
        text = (settings.instance / SERVED_AT).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text if urlsplit(text).scheme in ("http", "https") else None


def public_base(settings: Settings) -> str:
    """Return the instance's public base URL outside a request (the CLI, emails).

    ``base_url`` when configured; else where the running server said it is
    reached; else where the settings say it would listen (see :func:`base_is_known`).
    """
    if settings.base_url:
        return settings.base_url.rstrip("/")
    return served_base(settings) or listening_base(settings)


def base_is_known(settings: Settings) -> bool:
    """Tell whether :func:`public_base` knows the public address rather than guessing it from the settings."""
    return bool(settings.base_url or served_base(settings))


def served_settings(settings: Settings) -> Settings:
    """Return the settings a server listening as ``settings`` says runs on: ``base_url`` filled in if it can be.

    Without ``base_url``, a server on one address (no wildcard) and without
    proxies in front is reached at ``http://host:port``, and nowhere else; with
    a wildcard or proxies, its pages follow the host each request came to.
    """
    if settings.base_url or settings.trusted_proxies or settings.host in WILDCARD_HOSTS:
        return settings
    return dataclasses.replace(settings, base_url=listening_base(settings))


def crawler_domain(base_url: str) -> str:
    """Return the credential domain Heritrix files a server under: ``host``, ``host:port``, ``host:443``.

    Heritrix keys credentials by the URL's authority, with the scheme's default
    port dropped (http:80; https:443), except that an https authority without a
    port gets ``:443`` (its ``CrawlServer.getServerKey``); the host in lower case.
    """
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    port = parts.port
    if parts.scheme == "https":
        return f"{host}:{port or 443}"
    return host if port in (None, 80) else f"{host}:{port}"


def release_link(base: str, token: str) -> str:
    """Return the single-use link that releases a credential's password, on the server at ``base``."""
    return f"{base.rstrip('/')}{RELEASE_PATH}{token}"
