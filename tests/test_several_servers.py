"""Two app servers on one PostgreSQL catalog: what one learns, the other knows at its next request.

Each "server" here is an app of its own on the same instance (its own catalog
pool and memory), as two machines behind a load balancer are; the test with
real ``pligt serve`` processes and S3 is tests/test_e2e_two_servers.py.
"""

from __future__ import annotations

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from pligt.web.services import pligt
from tests.support.access import REQUEST_FIELDS
from tests.support.access import issue_credential
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.app import make_app
from tests.support.data import pdf_bytes

GUESSER = "203.0.113.66"
CRAWLER = "198.51.100.7"
PROTECTED = "/files/kursus/v1/kursus.pdf"


@pytest.fixture
def servers(pg_instance: Instance, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> tuple[Flask, Flask]:
    monkeypatch.setenv("PLIGT_AUTH_MAX_FAILURES", "3")
    monkeypatch.setenv("PLIGT_REQUESTS_PER_HOUR_PER_CLIENT", "2")
    from pligt.settings import load_settings

    settings = load_settings(pg_instance.path)
    return make_app(settings, clock), make_app(settings, clock)


def client_of(app: Flask, address: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_a_publication_through_one_is_served_by_the_other_at_once(servers: tuple[Flask, Flask]) -> None:
    one, other = servers
    reader = client_of(other, CRAWLER)
    assert reader.get("/files/brochure/v1/brochure.pdf").status_code == 401  # unknown URLs too: nothing told
    assert b"brochure.pdf" not in reader.get("/").data  # the index, rendered and kept by the other
    with one.app_context():
        pligt().archive.publish([pdf_bytes("offentlig")], filename="brochure.pdf", visibility="public")
    response = reader.get("/files/brochure/v1/brochure.pdf")
    assert response.status_code == 200 and response.data == pdf_bytes("offentlig")
    assert b"brochure.pdf" in reader.get("/").data


def test_a_revocation_through_one_is_refused_by_the_other_at_the_next_request(servers: tuple[Flask, Flask]) -> None:
    one, other = servers
    with one.app_context():
        archive = pligt().archive
        archive.publish([pdf_bytes("beskyttet")], filename="kursus.pdf", visibility="protected")
        credential, password = issue_credential(archive)
    crawler = client_of(other, CRAWLER)
    assert crawler.get(PROTECTED, auth=(credential.username, password)).status_code == 200  # now cached there
    with one.app_context():
        pligt().archive.access.revoke(credential.id)
    assert crawler.get(PROTECTED, auth=(credential.username, password)).status_code == 401


def test_a_guesser_locked_out_on_one_is_refused_by_the_other(servers: tuple[Flask, Flask]) -> None:
    one, other = servers
    with one.app_context():
        pligt().archive.publish([pdf_bytes("beskyttet")], filename="kursus.pdf", visibility="protected")
    first, second = client_of(one, GUESSER), client_of(other, GUESSER)
    assert [c.get(PROTECTED, auth=("kb", f"guess-{n}")).status_code for n, c in enumerate((first, second, first))] == [
        401,
        401,
        401,
    ]
    refused = second.get(PROTECTED, auth=("kb", "guess-4"))
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 300
    assert client_of(other, CRAWLER).get(PROTECTED, auth=("kb", "guess-5")).status_code == 401  # others are not


def test_the_request_form_limit_holds_across_servers_and_no_address_is_stored(
    servers: tuple[Flask, Flask], postgres_url: str, pg_instance: Instance
) -> None:
    one, other = servers
    statuses = [
        client_of(app, GUESSER).post("/access/requests", json=REQUEST_FIELDS).status_code
        for app in (one, other, one, other)
    ]
    assert statuses == [201, 201, 429, 429]
    assert client_of(other, CRAWLER).post("/access/requests", json=REQUEST_FIELDS).status_code == 201
    with psycopg.connect(pg_instance.settings.catalog) as conn:
        everything = " ".join(str(row) for row in conn.execute("SELECT * FROM client_counts"))
        dump = " ".join(
            str(row)
            for table in ("access_requests", "audit_log", "downloads", "client_counts")
            for row in conn.execute(f"SELECT * FROM {table}")
        )
    assert everything and GUESSER not in dump and CRAWLER not in dump
