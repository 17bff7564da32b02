"""Reading what the app answered: the links of a page, and a JSON error."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote

from werkzeug.test import TestResponse


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(value for name, value in attrs if name == "href" and value)


def links(html: str) -> list[str]:
    """Return the targets of every plain <a href> link of a page, percent-decoded."""
    parser = _Links()
    parser.feed(html)
    return [unquote(href) for href in parser.hrefs]


def assert_json_error(response: TestResponse, status: int, *words: str) -> dict[str, Any]:
    """Assert a JSON error answer with ``status`` whose description has every word; return its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    assert body["code"] == status
    for word in words:
        assert word in body["description"], body["description"]
    return body
