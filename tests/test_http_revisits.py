"""What a harvest leaves in the proof of deposit: revisits (304) and public files fetched anonymously.

A 304 to a request that presented the version's ETag, or an If-Modified-Since
at or after its Last-Modified, is recorded like a download (status 304, no
bytes); a public file fetched without credentials on a connection that had
carried a crawler credential is recorded for that credential ("connection").
No address is ever recorded. Both paths, fast and Flask, record alike.
"""

from __future__ import annotations

import gc
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.http import http_date

from pligt.core import Archive
from pligt.core import SqliteCatalog
from pligt.core.models import Version
from pligt.settings import load_settings
from pligt.web.downloads import ConnectionCredentials
from pligt.web.services import pligt
from tests.support.access import issue_credential
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.app import make_app
from tests.support.data import pdf_bytes
from tests.support.net import stop_process
from tests.support.servers import Server
from tests.test_fastpath import through_flask


@pytest.fixture(params=["fast path", "Flask path"])
def answered_by(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "Flask path":
        with through_flask():
            yield request.param
    else:
        yield request.param


@pytest.fixture
def files(archive: Archive) -> dict[str, Version]:
    return {
        "public": archive.publish([pdf_bytes("o")], filename="o.pdf", slug="o", visibility="public").version,
        "protected": archive.publish([pdf_bytes("p")], filename="p.pdf", slug="p", visibility="protected").version,
    }


@pytest.fixture
def crawler(client: FlaskClient, archive: Archive) -> tuple[int, tuple[str, str]]:
    """A crawler credential, verified once (so that the fast path knows it): (id, auth)."""
    credential, password = issue_credential(archive)
    with through_flask():
        assert client.head("/files/p/v1/p.pdf", auth=(credential.username, password)).status_code == 200
    return credential.id, (credential.username, password)


def records(archive: Archive) -> list[dict[str, Any]]:
    """Every download record: (credential, version, status, bytes, via, crawler pattern)."""
    archive.recorder.flush()
    assert isinstance(archive.catalog, SqliteCatalog)
    rows = archive.catalog._db.execute(
        "SELECT credential_id, version_id, status, bytes_sent, via, crawler FROM downloads ORDER BY id"
    )
    return [dict(row) for row in rows]


def path_of(version: Version) -> str:
    return f"/files/{version.slug}/v{version.number}/{version.filename}"


# -- revisits ------------------------------------------------------------------------------------


@pytest.mark.parametrize("visibility", ["public", "protected"])
def test_a_revisit_with_the_etag_is_recorded_as_a_304(
    client: FlaskClient,
    archive: Archive,
    files: dict[str, Version],
    crawler: tuple[int, Any],
    answered_by: str,
    visibility: str,
) -> None:
    credential_id, auth = crawler
    version = files[visibility]
    for validator in (f'"{version.sha256}"', f'W/"{version.sha256}"', f'"older", "{version.sha256}"'):
        response = client.get(path_of(version), auth=auth, headers={"If-None-Match": validator})
        assert response.status_code == 304
    assert (
        records(archive)
        == [
            {
                "credential_id": credential_id,
                "version_id": version.id,
                "status": 304,
                "bytes_sent": 0,
                "via": "credential",
                "crawler": None,
            },
        ]
        * 3
    )


def test_a_revisit_with_a_date_at_or_after_last_modified_is_recorded(
    client: FlaskClient, archive: Archive, files: dict[str, Version], crawler: tuple[int, Any], answered_by: str
) -> None:
    credential_id, auth = crawler
    version = files["protected"]
    for moment in (version.published_at, version.published_at.replace(year=2030)):
        response = client.get(path_of(version), auth=auth, headers={"If-Modified-Since": http_date(moment)})
        assert response.status_code == 304
    assert [(r["credential_id"], r["status"]) for r in records(archive)] == [(credential_id, 304)] * 2


def test_an_anonymous_revisit_of_a_public_file_is_recorded_as_anonymous(
    client: FlaskClient, archive: Archive, files: dict[str, Version], answered_by: str
) -> None:
    version = files["public"]
    response = client.get(path_of(version), headers={"If-None-Match": f'"{version.sha256}"'})
    assert response.status_code == 304
    assert records(archive) == [
        {"credential_id": None, "version_id": version.id, "status": 304, "bytes_sent": 0, "via": None, "crawler": None}
    ]


def test_304s_that_prove_nothing_are_not_recorded(
    client: FlaskClient,
    archive: Archive,
    instance: Instance,
    files: dict[str, Version],
    crawler: tuple[int, Any],
    answered_by: str,
) -> None:
    _, auth = crawler
    version = files["protected"]
    etag = {"If-None-Match": f'"{version.sha256}"'}
    assert client.get(path_of(version), auth=auth, headers={"If-None-Match": "*"}).status_code == 304
    assert client.head(path_of(version), auth=auth, headers=etag).status_code == 304  # HEAD, as for 200s
    assert client.get(path_of(version), auth=instance.owner_auth, headers=etag).status_code == 304  # the owner
    assert client.get(path_of(version), headers=etag).status_code == 401  # the challenge
    assert records(archive) == []


def test_a_whole_download_is_still_recorded_as_before(
    client: FlaskClient, archive: Archive, files: dict[str, Version], crawler: tuple[int, Any], answered_by: str
) -> None:
    credential_id, auth = crawler
    version = files["protected"]
    assert client.get(path_of(version), auth=auth).status_code == 200
    assert client.get(path_of(version), auth=auth, headers={"Range": "bytes=0-9"}).status_code == 206
    assert [(r["credential_id"], r["status"], r["bytes_sent"]) for r in records(archive)] == [
        (credential_id, 200, version.size),
        (credential_id, 206, 10),
    ]


def test_a_listed_crawlers_user_agent_is_kept_as_its_pattern_only(
    client: FlaskClient, archive: Archive, files: dict[str, Version], answered_by: str
) -> None:
    version = files["public"]
    agent = "Mozilla/5.0 (compatible; heritrix/3.4.0 +https://www.kb.dk/netarkivindsamling)"
    assert client.get(path_of(version), headers={"User-Agent": agent}).status_code == 200
    [row] = records(archive)
    assert (row["credential_id"], row["via"], row["crawler"]) == (None, "user-agent", "kb.dk/netarkivindsamling")


# -- the connection's credential -----------------------------------------------------------------


class Connection:
    """Stands for gunicorn's socket of one kept-alive connection (``environ["gunicorn.socket"]``)."""

    def environ(self) -> dict[str, object]:
        return {"gunicorn.socket": self}


def test_a_public_file_fetched_anonymously_on_the_crawlers_connection_is_attributed_to_it(
    client: FlaskClient, archive: Archive, files: dict[str, Version], crawler: tuple[int, Any], answered_by: str
) -> None:
    credential_id, auth = crawler
    public = files["public"]
    connection, other = Connection(), Connection()
    # Heritrix: the protected file without credentials (401), then with them, then a public file.
    assert client.get(path_of(files["protected"]), environ_overrides=connection.environ()).status_code == 401
    assert client.get(path_of(files["protected"]), auth=auth, environ_overrides=connection.environ()).status_code == 200
    assert client.get(path_of(public), environ_overrides=connection.environ()).status_code == 200
    revisit = {"If-None-Match": f'"{public.sha256}"'}
    assert client.get(path_of(public), headers=revisit, environ_overrides=connection.environ()).status_code == 304
    assert client.get(path_of(public), environ_overrides=other.environ()).status_code == 200  # another client
    assert client.get(path_of(public)).status_code == 200  # no connection known

    rows = records(archive)
    assert [(r["credential_id"], r["version_id"], r["status"], r["via"]) for r in rows] == [
        (credential_id, files["protected"].id, 200, "credential"),
        (credential_id, public.id, 200, "connection"),
        (credential_id, public.id, 304, "connection"),
        (None, public.id, 200, None),
        (None, public.id, 200, None),
    ]


def test_the_protected_index_also_tells_the_connections_credential(
    client: FlaskClient, archive: Archive, files: dict[str, Version], crawler: tuple[int, Any]
) -> None:
    credential_id, auth = crawler
    connection = Connection()
    assert client.get("/protected/", auth=auth, environ_overrides=connection.environ()).status_code == 200
    assert client.get(path_of(files["public"]), environ_overrides=connection.environ()).status_code == 200
    assert [(r["credential_id"], r["via"]) for r in records(archive)] == [(credential_id, "connection")]


def test_the_owner_or_a_revoked_credential_on_the_connection_ends_the_attribution(
    client: FlaskClient,
    archive: Archive,
    instance: Instance,
    files: dict[str, Version],
    crawler: tuple[int, Any],
    answered_by: str,
) -> None:
    credential_id, auth = crawler
    public, protected = path_of(files["public"]), path_of(files["protected"])
    first, second = Connection(), Connection()
    client.get(protected, auth=auth, environ_overrides=first.environ())
    client.get(protected, auth=instance.owner_auth, environ_overrides=first.environ())
    client.get(public, environ_overrides=first.environ())

    client.get(protected, auth=auth, environ_overrides=second.environ())
    archive.access.revoke(credential_id)
    assert client.get(protected, auth=auth, environ_overrides=second.environ()).status_code == 401
    client.get(public, environ_overrides=second.environ())

    public_rows = [r for r in records(archive) if r["version_id"] == files["public"].id]
    assert [(r["credential_id"], r["via"]) for r in public_rows] == [(None, None), (None, None)]


def test_a_request_with_credentials_that_fail_is_not_attributed(
    client: FlaskClient, archive: Archive, files: dict[str, Version], crawler: tuple[int, Any], answered_by: str
) -> None:
    _, auth = crawler
    connection = Connection()
    client.get(path_of(files["protected"]), auth=auth, environ_overrides=connection.environ())
    client.get(path_of(files["public"]), auth=("crawler-unknown", "guess"), environ_overrides=connection.environ())
    public_rows = [r for r in records(archive) if r["version_id"] == files["public"].id]
    assert [(r["credential_id"], r["via"]) for r in public_rows] == [(None, None)]


def test_behind_a_trusted_proxy_nothing_is_attributed_by_connection(instance: Instance, clock: Clock) -> None:
    # Upstream connections from a reverse proxy carry many clients' requests.
    app = make_app(load_settings(instance.path, env={"PLIGT_TRUSTED_PROXIES": "1"}), clock)
    client = app.test_client()
    with app.app_context():
        archive = pligt().archive
        archive.publish([pdf_bytes("o")], filename="o.pdf", slug="o", visibility="public")
        archive.publish([pdf_bytes("p")], filename="p.pdf", slug="p", visibility="protected")
        credential, password = issue_credential(archive)
    connection = Connection()
    client.get("/files/p/v1/p.pdf", auth=(credential.username, password), environ_overrides=connection.environ())
    client.get("/files/o/v1/o.pdf", environ_overrides=connection.environ())
    assert [(r["credential_id"], r["via"]) for r in records(archive)] == [(credential.id, "credential"), (None, None)]


def test_a_connections_credential_is_forgotten_with_the_connection() -> None:
    connections = ConnectionCredentials(enabled=True)
    sock = socket.socket()
    connections.carried({"gunicorn.socket": sock}, 7)
    assert connections.credential({"gunicorn.socket": sock}) == 7
    sock.close()
    del sock
    gc.collect()
    assert len(connections._by_connection) == 0


def test_a_real_server_attributes_by_kept_alive_connection_only(server: Server, instance: Instance) -> None:
    app: Flask = make_app(instance.settings, Clock())
    with app.app_context():
        archive = pligt().archive
        public = archive.publish([pdf_bytes("o")], filename="o.pdf", slug="o", visibility="public").version
        archive.publish([pdf_bytes("p")], filename="p.pdf", slug="p", visibility="protected")
        credential, password = issue_credential(archive)
    with requests.Session() as crawler:  # one kept-alive connection, as a crawler's
        files = f"{server.url}/files"
        assert crawler.get(f"{files}/p/v1/p.pdf", timeout=10).status_code == 401
        assert crawler.get(f"{files}/p/v1/p.pdf", auth=(credential.username, password), timeout=10).status_code == 200
        assert crawler.get(f"{files}/o/v1/o.pdf", timeout=10).status_code == 200
        revisit = {"If-None-Match": f'"{public.sha256}"'}
        assert crawler.get(f"{files}/o/v1/o.pdf", headers=revisit, timeout=10).status_code == 304
    assert requests.get(f"{files}/o/v1/o.pdf", headers={"Connection": "close"}, timeout=10).status_code == 200

    stop_process(server.process)  # the records are written every half second, and when the server stops
    public_rows = [r for r in records(archive) if r["version_id"] == public.id]
    assert sorted((r["credential_id"] or 0, r["status"], r["via"] or "") for r in public_rows) == [
        (0, 200, ""),
        (credential.id, 200, "connection"),
        (credential.id, 304, "connection"),
    ]
