"""The deposit crawler's own requests: the challenge, the download with its credential up front, a range.

Each is answered by the Flask view with the headers :mod:`pligt.served` builds
(the same the export writes), touching the catalog at most once once the
credential is verified.
"""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from pligt.core import Archive
from pligt.core.catalog import SqliteCatalog
from pligt.core.downloads.small_files import MAX_FILE_BYTES
from pligt.served import not_modified_headers
from pligt.served import partial_headers
from pligt.served import version_headers
from pligt.settings import load_settings
from pligt.web.auth import FILE_CHALLENGE_BODY
from tests.support.access import issue_credential
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.app import make_app
from tests.support.data import pdf_bytes

#: One version kept in memory, one read from storage.
SIZES = {"small": 0, "large": MAX_FILE_BYTES + 1000}


def sent_headers(response: TestResponse) -> list[tuple[str, str]]:
    """The headers as sent, less those the WSGI server adds."""
    return [(k, v) for k, v in response.headers.items() if k not in ("Date", "Server")]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_challenge_carries_the_realm_and_a_short_body(
    client: FlaskClient, archive: Archive, instance: Instance, method: str
) -> None:
    archive.publish([pdf_bytes()], filename="p.pdf", slug="p", visibility="protected")
    credential, _ = issue_credential(archive)

    bare = client.open("/files/p/v1/p.pdf", method=method)
    wrong = client.open("/files/p/v1/p.pdf", method=method, auth=(credential.username, "wrong"))

    assert bare.status_code == wrong.status_code == 401
    assert bare.headers["WWW-Authenticate"] == f'Basic realm="{instance.settings.realm}", charset="UTF-8"'
    assert sent_headers(bare) == sent_headers(wrong)
    assert bare.headers["Content-Length"] == str(len(FILE_CHALLENGE_BODY))
    assert bare.data == wrong.data == (b"" if method == "HEAD" else FILE_CHALLENGE_BODY)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("visibility", ["public", "protected"])
def test_a_download_carries_the_headers_the_export_writes(
    client: FlaskClient, archive: Archive, size: str, visibility: str
) -> None:
    data = pdf_bytes("whole", pad=SIZES[size])
    version = archive.publish([data], filename="Årsrapport æøå.pdf", slug="r", visibility=visibility).version
    credential, password = issue_credential(archive)
    auth = (credential.username, password)
    path = f"/files/r/v1/{version.filename}"

    whole = client.get(path, auth=auth)
    head = client.head(path, auth=auth)

    assert whole.status_code == head.status_code == 200
    assert whole.data == data
    assert head.data == b""
    assert sent_headers(whole) == sent_headers(head) == version_headers(version, False)


@pytest.mark.parametrize("size", SIZES)
def test_a_range_carries_its_content_range_and_only_its_bytes(client: FlaskClient, archive: Archive, size: str) -> None:
    data = pdf_bytes("ranges", pad=SIZES[size] + 3000)
    version = archive.publish([data], filename="r.pdf", slug="r", visibility="protected").version
    credential, password = issue_credential(archive)
    auth = (credential.username, password)

    part = client.get("/files/r/v1/r.pdf", auth=auth, headers={"Range": "bytes=100-199"})
    tail = client.get("/files/r/v1/r.pdf", auth=auth, headers={"Range": "bytes=-50"})

    assert part.status_code == tail.status_code == 206
    assert part.data == data[100:200]
    assert tail.data == data[-50:]
    assert sent_headers(part) == partial_headers(version, False, 100, 200)
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert sent_headers(tail) == partial_headers(version, False, len(data) - 50, len(data))


def test_a_revisit_carries_the_validators_and_the_sandbox(client: FlaskClient, archive: Archive) -> None:
    version = archive.publish([pdf_bytes()], filename="o.pdf", slug="o", visibility="public").version

    revisit = client.get("/files/o/v1/o.pdf", headers={"If-None-Match": f'"{version.sha256}"'})

    assert revisit.status_code == 304
    assert revisit.data == b""
    assert sorted(sent_headers(revisit)) == sorted(not_modified_headers(version, False))


def test_secure_requests_carry_strict_transport_security(instance: Instance, clock: Clock) -> None:
    app = make_app(load_settings(instance.path, env={"PLIGT_TRUSTED_PROXIES": "1"}), clock)
    client = app.test_client()
    with app.app_context():
        from pligt.web.services import pligt

        version = pligt().archive.publish([pdf_bytes()], filename="a.pdf", visibility="public").version
        pligt().archive.publish([pdf_bytes()], filename="p.pdf", visibility="protected")
        pligt().archive.checkpoints.wait()
    proxied = {"X-Forwarded-Proto": "https"}

    whole = client.get("/files/a/v1/a.pdf", headers=proxied)
    revisit = client.get("/files/a/v1/a.pdf", headers={**proxied, "If-None-Match": f'"{version.sha256}"'})
    challenge = client.get("/files/p/v1/p.pdf", headers=proxied)

    assert sent_headers(whole) == version_headers(version, True)
    assert sorted(sent_headers(revisit)) == sorted(not_modified_headers(version, True))
    assert challenge.status_code == 401
    assert challenge.headers["Strict-Transport-Security"] == "max-age=31536000"


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


@pytest.mark.parametrize("size", SIZES)
def test_a_download_with_a_cached_credential_is_recorded_complete(
    client: FlaskClient, archive: Archive, size: str
) -> None:
    version = archive.publish([pdf_bytes(pad=SIZES[size])], filename="r.pdf", slug="r", visibility="protected").version
    credential, password = issue_credential(archive)
    auth = (credential.username, password)
    client.get("/files/r/v1/r.pdf", auth=auth, headers={"Range": "bytes=0-9"})  # verified, cached; a part
    client.get("/files/r/v1/r.pdf", auth=auth)  # the whole, with the cached credential
    [row] = [r for r in archive.harvest() if r.version.id == version.id]
    assert row.fetched is not None and row.complete is not None
