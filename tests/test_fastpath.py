"""The crawler's plain downloads skip Flask; they must answer exactly as the Flask path does."""

from __future__ import annotations

import pytest
from flask import request_started

from archive import Archive
from tests.support.access import issue_credential
from tests.support.app import Instance
from tests.support.data import pdf_bytes

#: Forces the Flask path without changing the answer (no ETag matches it).
THROUGH_FLASK = {"If-None-Match": '"not-this-one"'}


@pytest.fixture
def flask_requests(app):  # noqa: ANN001, ANN201
    """Count the requests that went through Flask's request handling."""
    seen: list[str] = []

    def started(sender, **extra) -> None:  # noqa: ANN001, ANN003
        from flask import request

        seen.append(request.path)

    request_started.connect(started, app)
    yield seen
    request_started.disconnect(started, app)


def comparable(response) -> dict[str, str]:  # noqa: ANN001
    return {k: v for k, v in response.headers.items() if k not in ("Date", "Server")}


@pytest.mark.parametrize(
    ("filename", "visibility"),
    [("brochure.pdf", "public"), ("Årsrapport (ny) æøå.pdf", "public"), ("kursus øvelser.pdf", "protected")],
)
def test_the_fast_path_answers_exactly_as_flask(
    client, archive: Archive, flask_requests: list[str], filename: str, visibility: str
) -> None:  # noqa: ANN001
    version = archive.publish([pdf_bytes(filename)], filename=filename, visibility=visibility).version
    credential, password = issue_credential(archive)
    auth = (credential.username, password)
    path = f"/files/{version.slug}/v1/{filename}"
    client.get(path, auth=auth)  # the first verification goes through Flask and is cached
    flask_requests.clear()

    fast = client.get(path, auth=auth)
    fast_head = client.head(path, auth=auth)
    assert flask_requests == []
    slow = client.get(path, auth=auth, headers=THROUGH_FLASK)
    slow_head = client.head(path, auth=auth, headers=THROUGH_FLASK)
    assert flask_requests == [path, path]

    assert fast.status_code == slow.status_code == 200
    assert fast.data == slow.data == pdf_bytes(filename)
    assert comparable(fast) == comparable(slow)
    assert comparable(fast_head) == comparable(slow_head) == comparable(fast)
    assert fast_head.data == b""


def test_secure_requests_get_the_same_headers_too(instance: Instance, clock) -> None:  # noqa: ANN001
    from deposit.settings import load_settings
    from tests.support.app import make_app

    app = make_app(load_settings(instance.path, env={"PLIGT_TRUSTED_PROXIES": "1"}), clock)
    client = app.test_client()
    with app.app_context():
        from deposit.web.services import pligt

        pligt().archive.publish([pdf_bytes()], filename="a.pdf", visibility="public")
    proxied = {"X-Forwarded-Proto": "https"}
    fast = client.get("/files/a/v1/a.pdf", headers=proxied)
    slow = client.get("/files/a/v1/a.pdf", headers={**proxied, **THROUGH_FLASK})
    assert "Strict-Transport-Security" in fast.headers
    assert comparable(fast) == comparable(slow)


def test_what_the_fast_path_leaves_to_flask(client, archive: Archive, flask_requests: list[str]) -> None:  # noqa: ANN001
    archive.publish([pdf_bytes()], filename="p.pdf", slug="p", visibility="protected")
    archive.publish([pdf_bytes()], filename="o.pdf", slug="o", visibility="public")
    credential, password = issue_credential(archive)
    cases = [
        ("/files/p/v1/p.pdf", {}, 401),  # the challenge
        ("/files/p/v1/p.pdf", {"Authorization": "Basic !!!"}, 401),  # malformed credentials
        ("/files/o/v1/wrong.pdf", {}, 404),
        ("/files/o/v2/o.pdf", {}, 404),
        ("/files/o/v1/o.pdf", {"Range": "bytes=0-3"}, 206),
        ("/files/p/v1/p.pdf", {"Authorization": _basic(credential.username, password)}, 200),  # first check
    ]
    for path, headers, status in cases:
        flask_requests.clear()
        assert client.get(path, headers=headers).status_code == status, (path, headers)
        assert flask_requests == [path], (path, headers)


def test_fast_downloads_are_recorded_like_the_others(client, archive: Archive) -> None:  # noqa: ANN001
    version = archive.publish([pdf_bytes()], filename="r.pdf", slug="r", visibility="protected").version
    credential, password = issue_credential(archive)
    auth = (credential.username, password)
    client.get("/files/r/v1/r.pdf", auth=auth, headers=THROUGH_FLASK)  # verified and cached through Flask
    client.get("/files/r/v1/r.pdf", auth=auth)  # the fast path
    [row] = [r for r in archive.harvest() if r.credential_id == credential.id and r.version.id == version.id]
    assert row.complete_at is not None


def _basic(username: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
