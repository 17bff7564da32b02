"""The pages the service answers, taken in-process for ``pligt export``: bodies and headers as a client gets them.

The export writes the index pages beside the versions, so that a replay of
the package can be walked from the front page as the crawler walks the live
server. The pages are answered by the web app itself (the same views,
templates and after-request headers), not rebuilt: the public ones through
its test client, the whole WSGI stack; the protected index as the crawler
sees it once it has authenticated, rendered by the same view function
without a credential (none exists for the export, and making one would be a
credential without an approved request). A client sees the app's headers and
the WSGI server's ``Date``; the export adds ``Date`` (the moment of the
export), not ``Server`` or ``Connection``, which belong to whatever serves
the app (gunicorn, a proxy) and to the connection.

The pages are in Danish, as the crawler (which sends no Accept-Language) gets them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime

from flask import Flask
from flask.testing import FlaskClient

from pligt.core.export.warc import Page
from pligt.core.models import PUBLIC
from pligt.served import http_date
from pligt.settings import Settings
from pligt.web import create_app
from pligt.web.listing import PAGE_SIZE
from pligt.web.listing import index_page

#: What the pages need beside themselves, and what every crawler asks for first.
REQUISITES = ("/static/pligt.css", "/favicon.ico", "/robots.txt", "/sitemap.xml")


def captured_pages(settings: Settings, base_url: str, captured_at: datetime) -> Iterator[Page]:
    """Yield every page of both indexes, then the requisites, as the app answers them at ``base_url``.

    ``base_url`` may have a path (a proxy mounting the app lower); the pages then link under it.
    """
    app = create_app(settings)
    base = base_url.rstrip("/")
    catalog = app.extensions["pligt"].archive.catalog
    public_pages = max(1, math.ceil(catalog.count_versions(visibility=PUBLIC) / PAGE_SIZE))
    all_pages = max(1, math.ceil(catalog.count_versions(visibility=None) / PAGE_SIZE))
    client = app.test_client()
    for number in range(1, public_pages + 1):
        path = "/" if number == 1 else f"/?page={number}"
        title = "Offentligt materiale" + ("" if number == 1 else f", side {number}")
        yield _through_client(client, base, path, captured_at, title)
    for number in range(1, all_pages + 1):
        path = "/protected/" if number == 1 else f"/protected/?page={number}"
        title = "Beskyttet materiale" + ("" if number == 1 else f", side {number}")
        yield _protected_index(app, base, path, captured_at, title)
    for path in REQUISITES:
        yield _through_client(client, base, path, captured_at, None)


def _through_client(client: FlaskClient, base: str, path: str, captured_at: datetime, title: str | None) -> Page:
    response = client.get(path, base_url=base)
    try:
        headers = [("Date", http_date(captured_at)), *response.headers.items()]
        return Page(base + path, response.status, headers, response.get_data(), captured_at, title)
    finally:
        response.close()


def _protected_index(app: Flask, base: str, path: str, captured_at: datetime, title: str) -> Page:
    with app.test_request_context(path, base_url=base):
        response = app.process_response(app.make_response(index_page("protected.html", visibility=None)))
        headers = [("Date", http_date(captured_at)), *response.headers.items()]
        return Page(base + path, response.status, headers, response.get_data(), captured_at, title)
