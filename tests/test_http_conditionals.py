"""Conditional requests as RFC 9110 §13.2.2 orders them, on the fast path and the Flask path alike.

If-Match, then If-Unmodified-Since (only without If-Match), then If-None-Match
(304, weak comparison), then If-Modified-Since (only without If-None-Match),
then Range with If-Range compared strongly. Every test runs for a public and a
protected version (with a crawler credential), answered by the fast path and
by the Flask path; each request checks that the path it names answered it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from flask import Flask
from flask import request_started
from flask.testing import FlaskClient
from werkzeug.http import http_date
from werkzeug.test import TestResponse

from pligt.core import Archive
from pligt.core.models import Version
from tests.support.access import issue_credential
from tests.support.data import pdf_bytes
from tests.test_fastpath import through_flask

PATH = "/files/c/v1/c.pdf"
#: What only the Flask path answers, on either path (an error page).
FLASK_ONLY = (412, 416)


@dataclass
class Target:
    """The version under test and how to ask for it."""

    client: FlaskClient
    version: Version
    data: bytes
    auth: tuple[str, str] | None
    answered_by: str
    seen: list[str]

    @property
    def etag(self) -> str:
        return f'"{self.version.sha256}"'

    def date(self, **offset: float) -> str:
        return http_date(self.version.published_at + timedelta(**offset))

    def get(self, method: str = "GET", **headers: str) -> TestResponse:
        """Ask for the version; check that the path under test answered."""
        self.seen.clear()
        named = {name.replace("_", "-"): value for name, value in headers.items()}
        response = self.client.open(PATH, method=method, auth=self.auth, headers=named)
        if self.answered_by == "Flask path" or response.status_code in FLASK_ONLY:
            assert self.seen == [PATH], (named, response.status_code)
        else:
            assert self.seen == [], (named, response.status_code)
        return response

    def assert_whole(self, response: TestResponse) -> None:
        assert response.status_code == 200, response.status_code
        assert response.data == (b"" if response.request.method == "HEAD" else self.data)
        assert response.headers["Content-Length"] == str(len(self.data))
        assert "Content-Range" not in response.headers

    def assert_not_modified(self, response: TestResponse) -> None:
        assert response.status_code == 304, response.status_code
        assert response.data == b""
        assert response.headers["ETag"] == self.etag
        assert response.headers["Last-Modified"] == self.date()
        assert response.headers["Cache-Control"].startswith("max-age=")

    def assert_range(self, response: TestResponse, start: int, stop: int) -> None:
        assert response.status_code == 206, response.status_code
        assert response.data == self.data[start:stop]
        assert response.headers["Content-Range"] == f"bytes {start}-{stop - 1}/{len(self.data)}"


@pytest.fixture(params=["fast path", "Flask path"])
def answered_by(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "Flask path":
        with through_flask():
            yield request.param
    else:
        yield request.param


@pytest.fixture
def seen(app: Flask) -> Iterator[list[str]]:
    """The paths of the requests that went through Flask's request handling."""
    paths: list[str] = []

    def started(sender: Flask, **extra: object) -> None:
        from flask import request

        paths.append(request.path)

    request_started.connect(started, app)
    yield paths
    request_started.disconnect(started, app)


@pytest.fixture(params=["public", "protected"])
def target(
    request: pytest.FixtureRequest, client: FlaskClient, archive: Archive, answered_by: str, seen: list[str]
) -> Target:
    data = pdf_bytes("conditionals", pad=2000)
    version = archive.publish([data], filename="c.pdf", slug="c", visibility=request.param).version
    auth = None
    if request.param == "protected":
        credential, password = issue_credential(archive)
        auth = (credential.username, password)
        assert client.get(PATH, auth=auth).status_code == 200  # verified (and cached) once, as a crawler is
    return Target(client, version, data, auth, answered_by, seen)


# -- If-None-Match -------------------------------------------------------------------------------


def test_if_none_match_with_the_etag_gives_304_with_the_validators_and_no_body(target: Target) -> None:
    target.assert_not_modified(target.get(If_None_Match=target.etag))
    target.assert_not_modified(target.get("HEAD", If_None_Match=target.etag))


def test_if_none_match_compares_weakly(target: Target) -> None:
    target.assert_not_modified(target.get(If_None_Match=f"W/{target.etag}"))
    target.assert_not_modified(target.get(If_None_Match=f'"older", {target.etag}'))
    target.assert_not_modified(target.get(If_None_Match="*"))


def test_if_none_match_with_other_tags_gives_the_file(target: Target) -> None:
    target.assert_whole(target.get(If_None_Match='"older", W/"oldest"'))


# -- If-Modified-Since ---------------------------------------------------------------------------


def test_if_modified_since_at_or_after_last_modified_gives_304(target: Target) -> None:
    target.assert_not_modified(target.get(If_Modified_Since=target.date()))
    target.assert_not_modified(target.get(If_Modified_Since=target.date(days=30)))
    target.assert_not_modified(target.get("HEAD", If_Modified_Since=target.date()))


def test_if_modified_since_before_last_modified_gives_the_file(target: Target) -> None:
    target.assert_whole(target.get(If_Modified_Since=target.date(seconds=-1)))


def test_if_modified_since_counts_only_without_if_none_match(target: Target) -> None:
    target.assert_whole(target.get(If_None_Match='"older"', If_Modified_Since=target.date(days=30)))
    target.assert_not_modified(target.get(If_None_Match=target.etag, If_Modified_Since=target.date(days=-30)))


# -- a revisit wins over Range -------------------------------------------------------------------


def test_a_matching_if_none_match_wins_over_range(target: Target) -> None:
    target.assert_not_modified(target.get(If_None_Match=target.etag, Range="bytes=0-9"))
    target.assert_not_modified(target.get(If_None_Match=target.etag, Range="bytes=0-9", If_Range=target.etag))


def test_a_matching_if_modified_since_wins_over_range(target: Target) -> None:
    target.assert_not_modified(target.get(If_Modified_Since=target.date(), Range="bytes=0-9"))


def test_a_revisit_that_does_not_match_leaves_the_range(target: Target) -> None:
    target.assert_range(target.get(If_None_Match='"older"', Range="bytes=0-9"), 0, 10)
    size = len(target.data)
    target.assert_range(target.get(If_Modified_Since=target.date(days=-1), Range="bytes=-5"), size - 5, size)


# -- If-Match and If-Unmodified-Since ------------------------------------------------------------


def test_if_match_that_fails_gives_412(target: Target) -> None:
    assert target.get(If_Match='"another"').status_code == 412
    assert target.get(If_Match=f"W/{target.etag}").status_code == 412  # compared strongly
    assert target.get("HEAD", If_Match='"another"').status_code == 412


def test_if_match_with_the_etag_or_a_star_gives_the_file(target: Target) -> None:
    target.assert_whole(target.get(If_Match=target.etag))
    target.assert_whole(target.get(If_Match=f'"another", {target.etag}'))
    target.assert_whole(target.get(If_Match="*"))


def test_if_unmodified_since_before_last_modified_gives_412(target: Target) -> None:
    assert target.get(If_Unmodified_Since=target.date(days=-1)).status_code == 412


def test_if_unmodified_since_at_or_after_last_modified_gives_the_file(target: Target) -> None:
    target.assert_whole(target.get(If_Unmodified_Since=target.date()))
    target.assert_whole(target.get(If_Unmodified_Since=target.date(days=1)))


def test_if_unmodified_since_counts_only_without_if_match(target: Target) -> None:
    target.assert_whole(target.get(If_Match=target.etag, If_Unmodified_Since=target.date(days=-1)))


def test_if_match_and_if_unmodified_since_come_before_if_none_match(target: Target) -> None:
    assert target.get(If_Match='"another"', If_None_Match=target.etag).status_code == 412
    assert target.get(If_Unmodified_Since=target.date(days=-1), If_None_Match=target.etag).status_code == 412
    target.assert_not_modified(target.get(If_Match=target.etag, If_None_Match=target.etag))


# -- Range and If-Range --------------------------------------------------------------------------


def test_a_range_gives_206_with_those_bytes(target: Target) -> None:
    target.assert_range(target.get(Range="bytes=10-19"), 10, 20)
    target.assert_range(target.get(Range="bytes=2000-"), 2000, len(target.data))


def test_if_range_with_the_strong_etag_gives_206(target: Target) -> None:
    target.assert_range(target.get(Range="bytes=10-19", If_Range=target.etag), 10, 20)


def test_if_range_with_a_weak_or_another_etag_gives_the_whole_file(target: Target) -> None:
    target.assert_whole(target.get(Range="bytes=10-19", If_Range=f"W/{target.etag}"))
    target.assert_whole(target.get(Range="bytes=10-19", If_Range='"another"'))


def test_if_range_with_the_exact_date_gives_206_and_any_other_date_the_whole_file(target: Target) -> None:
    target.assert_range(target.get(Range="bytes=10-19", If_Range=target.date()), 10, 20)
    target.assert_whole(target.get(Range="bytes=10-19", If_Range=target.date(seconds=1)))
    target.assert_whole(target.get(Range="bytes=10-19", If_Range=target.date(days=-1)))


def test_a_range_beyond_the_end_gives_416(target: Target) -> None:
    response = target.get(Range=f"bytes={len(target.data) + 1}-")
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(target.data)}"


def test_head_ignores_range(target: Target) -> None:
    # RFC 9110 §14.2: GET is the only method Range is defined for.
    target.assert_whole(target.get("HEAD", Range="bytes=10-19"))


# -- without credentials, a protected version tells nothing -----------------------------------------


def test_a_protected_revisit_without_credentials_is_challenged(
    client: FlaskClient, archive: Archive, answered_by: str
) -> None:
    version = archive.publish([pdf_bytes()], filename="p.pdf", slug="p", visibility="protected").version
    for headers in ({"If-None-Match": f'"{version.sha256}"'}, {"If-Match": '"another"'}, {"Range": "bytes=0-1"}):
        response = client.get("/files/p/v1/p.pdf", headers=headers)
        assert response.status_code == 401, headers
        assert "ETag" not in response.headers
        assert "WWW-Authenticate" in response.headers
