"""The challenge, as Heritrix meets it on every protected URL: a 401 with the realm, HEAD included.

Heritrix (since 3.4) sends no credentials until a 401 names a realm matching
the one in its credential store, so every 401 must carry the exact
``WWW-Authenticate`` challenge; a protected file's 401 has a small fixed body
whatever the client asks for, and one without any Authorization header is
answered without Flask (tests/test_fastpath.py pins it to the Flask path's).
"""

from __future__ import annotations

import base64

import pytest
from flask.testing import FlaskClient

from pligt.core import Archive
from pligt.web.auth import FILE_CHALLENGE_BODY
from tests.support.access import issue_credential
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.data import pdf_bytes
from tests.test_fastpath import through_flask

PROTECTED_FILE = "/files/p/v1/p.pdf"


@pytest.fixture
def credential(archive: Archive) -> tuple[int, str, str]:
    archive.publish([pdf_bytes("p")], filename="p.pdf", slug="p", visibility="protected")
    archive.publish([pdf_bytes("o")], filename="o.pdf", slug="o", visibility="public")
    credential, password = issue_credential(archive)
    return credential.id, credential.username, password


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def crawler_challenge(instance: Instance) -> str:
    return f'Basic realm="{instance.settings.realm}", charset="UTF-8"'


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("answered_by", ["fast path", "Flask path"])
def test_a_protected_file_without_credentials_gets_the_exact_challenge(
    client: FlaskClient, instance: Instance, credential: object, method: str, answered_by: str
) -> None:
    if answered_by == "Flask path":
        with through_flask():
            response = client.open(PROTECTED_FILE, method=method)
    else:
        response = client.open(PROTECTED_FILE, method=method)
    assert response.status_code == 401
    assert response.headers.getlist("WWW-Authenticate") == [crawler_challenge(instance)]
    assert "Location" not in response.headers
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.data == (b"" if method == "HEAD" else FILE_CHALLENGE_BODY)


def test_the_file_challenge_is_small_fixed_and_tells_nothing(
    client: FlaskClient, archive: Archive, credential: object
) -> None:
    bodies = {
        client.get(PROTECTED_FILE, headers=headers).data
        for headers in ({}, {"Accept-Language": "da"}, {"Accept": "application/json"}, {"Cookie": "pligt_lang=da"})
    }
    assert bodies == {FILE_CHALLENGE_BODY}
    assert len(FILE_CHALLENGE_BODY) < 512
    assert b"p.pdf" not in FILE_CHALLENGE_BODY
    assert client.get("/files/p/v1/another-name.pdf").data == FILE_CHALLENGE_BODY  # no name confirmed either


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_every_refusal_of_the_crawlers_credentials_carries_the_challenge(
    client: FlaskClient,
    archive: Archive,
    instance: Instance,
    clock: Clock,
    credential: tuple[int, str, str],
    method: str,
) -> None:
    credential_id, username, password = credential
    cases = {
        "wrong password": {"Authorization": basic(username, "wrong")},
        "unknown user": {"Authorization": basic("crawler-unknown", "guess")},
        "malformed": {"Authorization": "Basic !!!"},
        "another scheme": {"Authorization": "Bearer abc"},
        "empty": {"Authorization": ""},
        "wrong owner password": {"Authorization": basic(instance.owner.username, "wrong")},
    }
    for path in (PROTECTED_FILE, "/protected/", "/files/p/latest"):
        for name, headers in cases.items():
            response = client.open(path, method=method, headers=headers)
            assert response.status_code == 401, (path, name)
            assert response.headers["WWW-Authenticate"] == crawler_challenge(instance), (path, name)
        for name, headers in {"none": {}, "json": {"Accept": "application/json"}}.items():
            response = client.open(path, method=method, headers=headers)
            assert response.status_code == 401, (path, name)
            assert response.headers["WWW-Authenticate"] == crawler_challenge(instance), (path, name)

    auth = {"Authorization": basic(username, password)}
    assert client.open(PROTECTED_FILE, method=method, headers=auth).status_code == 200  # verified and cached
    archive.access.revoke(credential_id)
    for path in (PROTECTED_FILE, "/protected/", "/files/p/latest"):
        response = client.open(path, method=method, headers=auth)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"] == crawler_challenge(instance), path


def test_an_expired_credential_gets_the_challenge_on_both_paths(
    client: FlaskClient, archive: Archive, instance: Instance, clock: Clock
) -> None:
    archive.publish([pdf_bytes("p")], filename="p.pdf", slug="p", visibility="protected")
    credential, password = issue_credential(archive, valid_days=1)
    auth = (credential.username, password)
    assert client.get(PROTECTED_FILE, auth=auth).status_code == 200  # verified and cached
    clock.advance(days=2)
    fast = client.get(PROTECTED_FILE, auth=auth)
    with through_flask():
        slow = client.get(PROTECTED_FILE, auth=auth)
    for response in (fast, slow):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == crawler_challenge(instance)
        assert response.data == FILE_CHALLENGE_BODY


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_owner_api_challenges_for_the_owners_realm(client: FlaskClient, instance: Instance, method: str) -> None:
    owner_challenge = f'Basic realm="{instance.settings.realm} (owner)", charset="UTF-8"'
    for headers in ({}, {"Authorization": basic(instance.owner.username, "wrong")}):
        response = client.open("/api/items", method=method, headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == owner_challenge


def test_public_files_are_never_challenged(client: FlaskClient, credential: object) -> None:
    for headers in ({}, {"Authorization": basic("crawler-unknown", "guess")}, {"Authorization": "Basic !!!"}):
        response = client.get("/files/o/v1/o.pdf", headers=headers)
        assert response.status_code == 200, headers
        assert "WWW-Authenticate" not in response.headers
