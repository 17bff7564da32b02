"""The one download decision, as a table: what a GET or HEAD of a version's URL answers, and what is recorded.

:func:`pligt.web.decision.decide` is pure (no Flask, no sockets, no I/O), and
every path that answers a version asks it; tests/test_fastpath.py shows both
paths render its answers alike, and the HTTP tests show them end to end.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from werkzeug.http import http_date

from pligt.core.credentials.auth import CRAWLER
from pligt.core.credentials.auth import OWNER
from pligt.core.credentials.auth import Principal
from pligt.core.errors import Gone
from pligt.core.errors import NotFound
from pligt.core.models import PROTECTED
from pligt.core.models import PUBLIC
from pligt.core.models import Version
from pligt.web.decision import Answer
from pligt.web.decision import Seen
from pligt.web.decision import decide

PUBLISHED = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
SHA256 = "ab" * 32
CRAWLER_ACTIVE = Principal(CRAWLER, "crawler-1", 7)
THE_OWNER = Principal(OWNER, "owner")


def version(visibility: str = PUBLIC, size: int = 1000) -> Version:
    return Version(
        id=1,
        slug="brochure",
        title="Brochure",
        visibility=visibility,
        number=1,
        filename="brochure.pdf",
        size=size,
        sha256=SHA256,
        content_type="application/pdf",
        storage_key="brochure/x",
        published_at=PUBLISHED,
        retain_until=PUBLISHED + timedelta(days=183),
        withdrawn_at=None,
    )


def get(**headers: str) -> dict[str, str]:
    environ = {"REQUEST_METHOD": "GET"}
    environ.update({"HTTP_" + name.upper(): value for name, value in headers.items()})
    return environ


@pytest.mark.parametrize(
    ("environ", "principal", "seen", "expected"),
    [
        # The plain download, by anyone, of a public version: recorded.
        (get(), None, Seen(version()), Answer(200, record=True)),
        (get(), CRAWLER_ACTIVE, Seen(version(), True), Answer(200, record=True)),
        # The owner's downloads prove nothing and are not kept.
        (get(), THE_OWNER, Seen(version()), Answer(200)),
        # HEAD is answered, never recorded.
        ({"REQUEST_METHOD": "HEAD"}, None, Seen(version()), Answer(200)),
        # Protected: only an active credential or the owner reads it.
        (get(), None, Seen(version(PROTECTED)), Answer(401)),
        (get(), CRAWLER_ACTIVE, Seen(version(PROTECTED), False), Answer(401)),
        (get(), CRAWLER_ACTIVE, Seen(version(PROTECTED), True), Answer(200, record=True)),
        (get(), THE_OWNER, Seen(version(PROTECTED)), Answer(200)),
        # Missing or withdrawn: 404 and 410 only where the item is public or someone authenticated.
        (get(), None, Seen(None, None, NotFound("no such version")), Answer(401)),
        (get(), None, Seen(None, None, NotFound("no such version"), item_public=True), Answer(404)),
        (get(), None, Seen(None, None, Gone("withdrawn"), item_public=True), Answer(410)),
        (get(), CRAWLER_ACTIVE, Seen(None, True, Gone("withdrawn")), Answer(410)),
        # Preconditions and ranges.
        (get(if_none_match=f'"{SHA256}"'), None, Seen(version()), Answer(304, record=True)),
        (get(if_none_match="*"), None, Seen(version()), Answer(304)),
        (get(if_match='"other"'), None, Seen(version()), Answer(412)),
        (get(if_modified_since=http_date(PUBLISHED)), None, Seen(version()), Answer(304, record=True)),
        (get(if_unmodified_since=http_date(PUBLISHED - timedelta(days=1))), None, Seen(version()), Answer(412)),
        (get(range="bytes=0-99"), None, Seen(version()), Answer(206, (0, 100), record=True)),
        (get(range="bytes=5000-"), None, Seen(version()), Answer(416)),
        (get(range="bytes=0-1,5-6"), None, Seen(version()), Answer(200, record=True)),  # several: the whole file
        (get(range="bytes=0-99", if_range='"other"'), None, Seen(version()), Answer(200, record=True)),
    ],
)
def test_the_decision(environ: dict[str, str], principal: Principal | None, seen: Seen, expected: Answer) -> None:
    assert decide(environ, principal, seen, "brochure.pdf") == expected


def test_a_file_name_that_is_not_the_versions_is_not_found() -> None:
    assert decide(get(), None, Seen(version()), "other.pdf") == Answer(404)
    # ...but a protected version is concealed first: the challenge, whatever the name.
    assert decide(get(), None, Seen(version(PROTECTED)), "other.pdf") == Answer(401)
