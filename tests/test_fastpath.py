"""The crawler's common requests skip Flask; they must answer exactly as the Flask path does.

The challenge (401), the download (200, 206) and the revisit (304) are pinned
here header for header against the Flask path (:func:`through_flask`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from flask import request_started
from flask.testing import FlaskClient
from werkzeug.http import http_date
from werkzeug.test import TestResponse

from pligt.core import Archive
from pligt.core.catalog import SqliteCatalog
from pligt.web.auth import FILE_CHALLENGE_BODY
from tests.support.access import issue_credential
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.data import pdf_bytes


@contextmanager
def through_flask() -> Iterator[None]:
    """Let the Flask path alone answer the requests made in this block (the fast path stands aside)."""
    from pligt.web.fastpath import FastDownloads

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FastDownloads, "_serve", lambda self, environ, start_response: None)
        yield


@pytest.fixture
def flask_requests(app: Flask) -> Iterator[list[str]]:
    """Count the requests that went through Flask's request handling."""
    seen: list[str] = []

    def started(sender: Flask, **extra: object) -> None:
        from flask import request

        seen.append(request.path)

    request_started.connect(started, app)
    yield seen
    request_started.disconnect(started, app)


def comparable(response: TestResponse) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in ("Date", "Server")}


@pytest.mark.parametrize(
    ("filename", "visibility"),
    [("brochure.pdf", "public"), ("Årsrapport (ny) æøå.pdf", "public"), ("kursus øvelser.pdf", "protected")],
)
def test_the_fast_path_answers_exactly_as_flask(
    client: FlaskClient, archive: Archive, flask_requests: list[str], filename: str, visibility: str
) -> None:
    version = archive.publish([pdf_bytes(filename)], filename=filename, visibility=visibility).version
    credential, password = issue_credential(archive)
    auth = (credential.username, password)
    path = f"/files/{version.slug}/v1/{filename}"
    client.get(path, auth=auth)  # the first verification goes through Flask and is cached
    flask_requests.clear()

    fast = client.get(path, auth=auth)
    fast_head = client.head(path, auth=auth)
    assert flask_requests == []
    with through_flask():
        slow = client.get(path, auth=auth)
        slow_head = client.head(path, auth=auth)
    assert flask_requests == [path, path]

    assert fast.status_code == slow.status_code == 200
    assert fast.data == slow.data == pdf_bytes(filename)
    assert comparable(fast) == comparable(slow)
    assert comparable(fast_head) == comparable(slow_head) == comparable(fast)
    assert fast_head.data == b""


def test_secure_requests_get_the_same_headers_too(instance: Instance, clock: Clock) -> None:
    from pligt.settings import load_settings
    from tests.support.app import make_app

    app = make_app(load_settings(instance.path, env={"PLIGT_TRUSTED_PROXIES": "1"}), clock)
    client = app.test_client()
    with app.app_context():
        from pligt.web.services import pligt

        version = pligt().archive.publish([pdf_bytes()], filename="a.pdf", visibility="public").version
        pligt().archive.publish([pdf_bytes()], filename="p.pdf", visibility="protected")
    proxied = {"X-Forwarded-Proto": "https"}
    revisit = {**proxied, "If-None-Match": f'"{version.sha256}"'}
    for path, headers, status in [
        ("/files/a/v1/a.pdf", proxied, 200),
        ("/files/a/v1/a.pdf", revisit, 304),
        ("/files/p/v1/p.pdf", proxied, 401),
    ]:
        fast = client.get(path, headers=headers)
        with through_flask():
            slow = client.get(path, headers=headers)
        assert fast.status_code == slow.status_code == status
        assert "Strict-Transport-Security" in fast.headers
        assert comparable(fast) == comparable(slow)


def test_what_the_fast_path_leaves_to_flask(
    client: FlaskClient, archive: Archive, instance: Instance, flask_requests: list[str]
) -> None:
    archive.publish([pdf_bytes()], filename="p.pdf", slug="p", visibility="protected")
    version = archive.publish([pdf_bytes()], filename="o.pdf", slug="o", visibility="public").version
    credential, password = issue_credential(archive)
    cases = [
        ("/files/p/v1/p.pdf", {"Authorization": _basic(credential.username, "wrong")}, 401),  # counted by Flask
        ("/files/p/v1/p.pdf", {"Authorization": _basic("crawler-unknown", "guess")}, 401),
        ("/files/p/v1/p.pdf", {"Authorization": "Basic !!!"}, 401),  # malformed credentials
        ("/files/p/v1/p.pdf", {"Authorization": ""}, 401),  # a header, if an empty one
        ("/files/o/v1/wrong.pdf", {}, 404),
        ("/files/o/v2/o.pdf", {}, 404),
        ("/files/o/v1/o.pdf", {"If-Match": '"another"'}, 412),
        ("/files/o/v1/o.pdf", {"If-Unmodified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}, 412),
        ("/files/o/v1/o.pdf", {"Range": f"bytes={version.size + 5}-"}, 416),
        ("/files/p/v1/p.pdf", {"Authorization": _basic(*instance.owner_auth)}, 200),  # the owner
        ("/files/p/v1/p.pdf", {"Authorization": _basic(credential.username, password)}, 200),  # first check
    ]
    for path, headers, status in cases:
        flask_requests.clear()
        assert client.get(path, headers=headers).status_code == status, (path, headers)
        assert flask_requests == [path], (path, headers)


def test_what_the_fast_path_answers_itself(client: FlaskClient, archive: Archive, flask_requests: list[str]) -> None:
    archive.publish([pdf_bytes()], filename="p.pdf", slug="p", visibility="protected")
    version = archive.publish([pdf_bytes()], filename="o.pdf", slug="o", visibility="public").version
    credential, password = issue_credential(archive)
    crawler = {"Authorization": _basic(credential.username, password)}
    client.get("/files/p/v1/p.pdf", headers=crawler)  # verified through Flask, and cached
    etag, modified = f'"{version.sha256}"', http_date(version.published_at)
    cases = [
        ("GET", "/files/p/v1/p.pdf", {}, 401),  # the challenge
        ("HEAD", "/files/p/v1/p.pdf", {}, 401),
        ("GET", "/files/p/v1/other-name.pdf", {}, 401),  # as Flask: no names told without credentials
        ("GET", "/files/o/v1/o.pdf", {"If-None-Match": etag}, 304),
        ("HEAD", "/files/o/v1/o.pdf", {"If-None-Match": etag}, 304),
        ("GET", "/files/o/v1/o.pdf", {"If-Modified-Since": modified}, 304),
        ("GET", "/files/o/v1/o.pdf", {"If-None-Match": '"another"'}, 200),
        ("GET", "/files/o/v1/o.pdf", {"Range": "bytes=0-3"}, 206),
        ("GET", "/files/o/v1/o.pdf", {"Range": "bytes=0-3", "If-None-Match": etag}, 304),
        ("GET", "/files/o/v1/o.pdf", {"Range": "bytes=0-3", "If-Range": f"W/{etag}"}, 200),
        ("GET", "/files/o/v1/o.pdf", {"If-Match": etag}, 200),
        ("GET", "/files/p/v1/p.pdf", {**crawler, "If-None-Match": f'"{_sha256_of(archive, "p")}"'}, 304),
        ("GET", "/files/p/v1/p.pdf", {**crawler, "Range": "bytes=2-"}, 206),
    ]
    for method, path, headers, status in cases:
        flask_requests.clear()
        assert client.open(path, method=method, headers=headers).status_code == status, (method, path, headers)
        assert flask_requests == [], (method, path, headers)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_challenge_answers_exactly_as_flask(
    client: FlaskClient, archive: Archive, instance: Instance, flask_requests: list[str], method: str
) -> None:
    archive.publish([pdf_bytes()], filename="p.pdf", slug="p", visibility="protected")
    credential, _ = issue_credential(archive)
    path = "/files/p/v1/p.pdf"

    fast = client.open(path, method=method)
    assert flask_requests == []
    with through_flask():
        slow = client.open(path, method=method)
    wrong = client.open(path, method=method, auth=(credential.username, "wrong"))  # Flask checks it
    assert flask_requests == [path, path]

    assert fast.status_code == slow.status_code == wrong.status_code == 401
    assert fast.headers["WWW-Authenticate"] == f'Basic realm="{instance.settings.realm}", charset="UTF-8"'
    assert comparable(fast) == comparable(slow) == comparable(wrong)
    assert fast.headers["Content-Length"] == str(len(FILE_CHALLENGE_BODY))
    assert fast.data == slow.data == wrong.data == (b"" if method == "HEAD" else FILE_CHALLENGE_BODY)


@pytest.mark.parametrize("visibility", ["public", "protected"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("validator", ["If-None-Match", "If-Modified-Since"])
def test_a_revisit_answers_exactly_as_flask(
    client: FlaskClient, archive: Archive, flask_requests: list[str], visibility: str, method: str, validator: str
) -> None:
    version = archive.publish([pdf_bytes()], filename="r.pdf", slug="r", visibility=visibility).version
    credential, password = issue_credential(archive)
    auth = (credential.username, password)
    path = "/files/r/v1/r.pdf"
    whole = client.get(path, auth=auth)  # the first verification goes through Flask and is cached
    headers = {validator: whole.headers["ETag" if validator == "If-None-Match" else "Last-Modified"]}
    flask_requests.clear()

    fast = client.open(path, method=method, auth=auth, headers=headers)
    assert flask_requests == []
    with through_flask():
        slow = client.open(path, method=method, auth=auth, headers=headers)

    assert fast.status_code == slow.status_code == 304
    assert fast.data == slow.data == b""
    assert comparable(fast) == comparable(slow)
    assert fast.headers["ETag"] == whole.headers["ETag"] == f'"{version.sha256}"'
    assert fast.headers["Last-Modified"] == whole.headers["Last-Modified"]
    assert fast.headers["Cache-Control"] == whole.headers["Cache-Control"]
    # A cache merges a 304's headers into what it stored: the file's sandbox must stay.
    assert fast.headers["Content-Security-Policy"] == whole.headers["Content-Security-Policy"]
    assert "Content-Length" not in fast.headers
    assert "Content-Type" not in fast.headers


@pytest.mark.parametrize("visibility", ["public", "protected"])
@pytest.mark.parametrize("if_range", [None, "etag", "date"])
def test_a_range_answers_exactly_as_flask(
    client: FlaskClient, archive: Archive, flask_requests: list[str], visibility: str, if_range: str | None
) -> None:
    data = pdf_bytes("ranges", pad=3000)
    archive.publish([data], filename="r.pdf", slug="r", visibility=visibility)
    credential, password = issue_credential(archive)
    auth = (credential.username, password)
    path = "/files/r/v1/r.pdf"
    whole = client.get(path, auth=auth)
    headers = {"Range": "bytes=100-199"}
    if if_range is not None:
        headers["If-Range"] = whole.headers["ETag" if if_range == "etag" else "Last-Modified"]
    flask_requests.clear()

    fast = client.get(path, auth=auth, headers=headers)
    assert flask_requests == []
    with through_flask():
        slow = client.get(path, auth=auth, headers=headers)

    assert fast.status_code == slow.status_code == 206
    assert fast.data == slow.data == data[100:200]
    assert comparable(fast) == comparable(slow)
    assert fast.headers["Content-Range"] == f"bytes 100-199/{len(data)}"


def test_the_crawlers_request_touches_the_catalog_at_most_once(client: FlaskClient, archive: Archive) -> None:
    """A download with the credential up front (the deposit crawler's every request), and the challenge."""
    archive.publish([pdf_bytes()], filename="p.pdf", slug="p", visibility="protected")
    credential, password = issue_credential(archive)
    auth = (credential.username, password)
    client.get("/files/p/v1/p.pdf", auth=auth)  # verified through Flask, and cached
    client.get("/files/p/v1/p.pdf")  # both answers' lookups are in memory now
    statements: list[str] = []
    assert isinstance(archive.catalog, SqliteCatalog)
    archive.catalog._db.set_trace_callback(statements.append)
    try:
        assert client.get("/files/p/v1/p.pdf", auth=auth).status_code == 200
        download = len(statements)
        statements.clear()
        assert client.get("/files/p/v1/p.pdf").status_code == 401
        challenge = len(statements)
    finally:
        archive.catalog._db.set_trace_callback(None)
    assert download <= 1, statements  # the lookups' generation, nothing else (the record is written in a batch)
    assert challenge <= 1


def test_fast_downloads_are_recorded_like_the_others(client: FlaskClient, archive: Archive) -> None:
    version = archive.publish([pdf_bytes()], filename="r.pdf", slug="r", visibility="protected").version
    credential, password = issue_credential(archive)
    auth = (credential.username, password)
    client.get("/files/r/v1/r.pdf", auth=auth)  # verified and cached through Flask
    client.get("/files/r/v1/r.pdf", auth=auth)  # the fast path
    [row] = [r for r in archive.harvest() if r.credential_id == credential.id and r.version.id == version.id]
    assert row.complete_at is not None


def _basic(username: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _sha256_of(archive: Archive, slug: str) -> str:
    return archive.find_download(slug, 1).version.sha256
