"""URLs the outside world keeps: absolute, canonical, stable."""

from __future__ import annotations

from flask import url_for

from archive.models import Version

from . import pligt


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
