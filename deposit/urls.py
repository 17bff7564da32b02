"""URLs the outside world keeps: absolute, canonical, stable."""

from __future__ import annotations

from flask import url_for

from archive.models import Version

from . import pligt
from .settings import Settings


def external_url(endpoint: str, **values: object) -> str:
    """Return an absolute URL, on ``base_url`` when configured, else on the request's host."""
    base = pligt().settings.base_url
    if base:
        return base.rstrip("/") + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def version_path(version: Version) -> str:
    """Return the stable path of one version; it ends in the file's name."""
    return url_for("public.version_file", slug=version.slug, number=version.number, filename=version.filename)


def version_url(version: Version) -> str:
    """Return the stable absolute URL of one version."""
    return external_url("public.version_file", slug=version.slug, number=version.number, filename=version.filename)


def public_base(settings: Settings) -> str:
    """Return the instance's public base URL outside a request (the CLI, emails)."""
    if settings.base_url:
        return settings.base_url.rstrip("/")
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{settings.port}"


#: The release page's path; the access blueprint serves it.
RELEASE_PATH = "/access/release/"


def release_link(settings: Settings, token: str) -> str:
    """Return the single-use link that releases a credential's password."""
    return f"{public_base(settings)}{RELEASE_PATH}{token}"
