"""Malformed requests are answered 4xx, never 500: the checks no route should have to repeat.

- Numbers in paths (versions, requests, credentials) are bounded: a number SQLite
  cannot hold (≥ 2^63) is no such thing (404), not an ``OverflowError``.
- A ``Host`` header that is no host name (a label over 63 characters, a space, a
  control character) is a 400 before Flask builds a URL adapter from it.
- JSON nested deeper than Python's recursion allows is invalid JSON (400), not a
  ``RecursionError``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from werkzeug.routing import IntegerConverter

#: The largest number SQLite's INTEGER holds.
MAX_ID = 2**63 - 1

# A host name (labels of at most 63 letters, digits and hyphens), an IPv4 address,
# or a bracketed IPv6 address; then an optional port.
_HOST = re.compile(
    r"(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?))*\.?"
    r"|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?"
)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class BoundedInt(IntegerConverter):
    """werkzeug's ``int`` converter, refusing numbers the catalog cannot hold (the route then 404s)."""

    def __init__(self, map: Any, fixed_digits: int = 0, min: int | None = None, max: int | None = MAX_ID) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=False)


class ValidHost:
    """Answer 400 to a request whose ``Host`` is not a host name (before Flask routes it)."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST")
        if host is not None and (len(host) > 260 or not _HOST.fullmatch(host)):
            body = b"400 Bad Request: the Host header is not a host name.\n"
            start_response(
                "400 Bad Request",
                [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return self.app(environ, start_response)


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, with nesting too deep for the parser treated as invalid JSON."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def init_app(app: Flask) -> None:
    """Install the bounded converter and JSON parser (before any blueprint is registered)."""
    app.url_map.converters["int"] = BoundedInt
    app.json = BoundedJSONProvider(app)
