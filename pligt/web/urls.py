"""Absolute URLs inside a request: on ``base_url`` when configured, else on the request's host."""

from __future__ import annotations

from typing import Any

from flask import request
from flask import url_for

from pligt import links
from pligt.core.models import Version
from pligt.web.services import pligt


def public_base() -> str:
    """Return the server's public address: ``base_url`` when configured, else the one the request came to."""
    base = pligt().settings.base_url
    return base.rstrip("/") if base else request.url_root.rstrip("/")


def external_url(endpoint: str, **values: Any) -> str:
    """Return an absolute URL, on ``base_url`` when configured, else on the request's host."""
    base = pligt().settings.base_url
    if base:
        return base.rstrip("/") + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def version_path(version: Version) -> str:
    """Return the stable path of one version under the app's root (a proxy may mount it lower)."""
    return request.script_root + links.version_path(version)


def version_url(version: Version) -> str:
    """Return the stable absolute URL of one version."""
    base = pligt().settings.base_url
    if base:
        return base.rstrip("/") + version_path(version)
    return request.host_url.rstrip("/") + version_path(version)
