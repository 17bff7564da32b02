"""A new worker prepares what the first visitors ask for before it takes requests.

Otherwise the first requests in each worker pay for compiling the templates,
Flask's first dispatch and rendering the indexes (measured: ~70 ms for the
first protected index of 1,000 items, ~25 ms for the other pages), and a
harvest begins with exactly those requests. ``pligt serve`` calls
:func:`warm_up` in each worker; nothing here writes anything.
"""

from __future__ import annotations

import logging

from flask import Flask

from pligt.core.models import PUBLIC
from pligt.web.listing import index_page

log = logging.getLogger("pligt")

#: Pages every harvest starts with (the protected index answers 401 without credentials).
FIRST_PAGES = ("/", "/robots.txt", "/protected/", "/access/", "/static/pligt.css")


def warm_up(app: Flask) -> None:
    """Compile the templates, answer the first pages, render both indexes' first page, read the versions."""
    try:
        for name in app.jinja_env.list_templates(extensions=["html"]):
            app.jinja_env.get_template(name)
        client = app.test_client()
        for path in FIRST_PAGES:
            client.get(path).close()
        with app.test_request_context("/"):
            index_page("index.html", visibility=PUBLIC)
        with app.test_request_context("/protected/"):
            index_page("protected.html", visibility=None)
        app.extensions["pligt"].archive.lookups.preload()
    except Exception:  # a worker that could not warm up still serves, only slower at first
        log.exception("could not prepare the first pages")
