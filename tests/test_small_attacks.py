"""The smaller ways a visitor could spoil the site for the next one, each refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from pligt.core import Archive
from pligt.core import SqliteCatalog
from pligt.core.errors import InvalidInput
from pligt.core.errors import TooManyRequests
from pligt.core.storage import LocalStorage
from tests.support.access import REQUEST_FIELDS
from tests.support.access import issue_credential
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.data import pdf_bytes
from tests.support.pages import assert_json_error


def test_a_tampered_query_is_not_cached_for_the_next_visitor(client: FlaskClient, archive: Archive) -> None:
    archive.publish([pdf_bytes("index")], filename="brochure.pdf", visibility="public")
    tampered = client.get("/?page=1&page=EVIL", headers={"Accept-Language": "da"})
    assert tampered.status_code == 200
    assert b"EVIL" in tampered.data  # this visitor's own page echoes its query (the language switch)
    after = client.get("/", headers={"Accept-Language": "da"})
    assert b"EVIL" not in after.data
    again = client.get("/?page=1", headers={"Accept-Language": "da"})
    assert b"EVIL" not in again.data


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("institution", "Det Kgl. Bibliotek\u202e"),  # right-to-left override
        ("contact_name", "Net\u200barkivet"),  # zero-width space
        ("message", "Vi anmoder\u2066 om adgang"),  # left-to-right isolate
    ],
)
def test_invisible_characters_in_a_request_are_refused_and_nothing_is_filed(
    client: FlaskClient, archive: Archive, field: str, value: str
) -> None:
    fields = {**REQUEST_FIELDS, field: value}
    refused = client.post("/access/requests", json=fields)
    body = assert_json_error(refused, 400, "invisible")
    assert list(body["errors"]) == [field]
    assert archive.access.requests() == []


def test_without_credentials_protected_items_cannot_be_told_from_missing_ones(
    client: FlaskClient, archive: Archive, clock: Clock
) -> None:
    archive.publish([pdf_bytes("secret v1")], filename="kursus.pdf", visibility="protected")
    archive.publish([pdf_bytes("public")], filename="brochure.pdf", visibility="public")
    clock.advance(days=200)
    archive.publish([pdf_bytes("old")], filename="gammel.pdf", visibility="protected")
    clock.advance(days=200)
    archive.withdraw("gammel")
    alike = {
        "a protected version": "/files/kursus/v1/kursus.pdf",
        "a protected item's missing version": "/files/kursus/v7/kursus.pdf",
        "an item that does not exist": "/files/hemmelig/v1/hemmelig.pdf",
        "a withdrawn protected version": "/files/gammel/v1/gammel.pdf",
        "the latest of an unknown item": "/files/hemmelig/latest",
        "the latest of a protected item": "/files/kursus/latest",
    }
    for what, path in alike.items():
        answer = client.get(path)
        assert answer.status_code == 401, what
        assert answer.headers["WWW-Authenticate"].startswith("Basic realm="), what
    assert client.get("/files/brochure/v9/brochure.pdf").status_code == 404  # public: nothing to hide
    credential, password = issue_credential(archive)
    assert client.get("/files/kursus/v7/kursus.pdf", auth=(credential.username, password)).status_code == 404
    assert client.get("/files/gammel/v1/gammel.pdf", auth=(credential.username, password)).status_code == 410


def test_a_title_with_a_right_to_left_override_is_refused(archive: Archive) -> None:
    with pytest.raises(InvalidInput, match="invisible characters .U\\+202E"):
        archive.publish([pdf_bytes("rlo")], filename="brochure.pdf", title="Prisliste \u202efdp.exe")
    assert archive.versions() == []


def test_strangers_filling_the_queue_cannot_keep_the_institution_out(tmp_path: Path, clock: Clock) -> None:
    catalog = SqliteCatalog(tmp_path / "catalog.sqlite3")
    catalog.migrate()
    core = Archive(catalog, LocalStorage(tmp_path / "files"), clock=clock)
    core.access.max_pending = 3
    core.access.institution_domains = ("kb.dk",)
    for n in range(3):
        core.access.file({**REQUEST_FIELDS, "contact_email": f"spam{n}@example.com"})
    with pytest.raises(TooManyRequests):
        core.access.file({**REQUEST_FIELDS, "contact_email": "more@example.com"})
    filed = core.access.file({**REQUEST_FIELDS, "contact_email": "netarkivet@kb.dk"})
    also = core.access.file({**REQUEST_FIELDS, "contact_email": "sofie@netarkiv.kb.dk"})
    assert {filed.id, also.id} <= {r.id for r in core.access.requests("pending")}
    with pytest.raises(TooManyRequests):
        core.access.file({**REQUEST_FIELDS, "contact_email": "someone@notkb.dk"})


def test_a_refused_name_is_worded_in_the_readers_language(client: FlaskClient, instance: Instance) -> None:
    page = client.get("/admin/login").get_data(as_text=True)
    token = page.split('name="csrf_token"', 1)[1].split('value="', 1)[1].split('"', 1)[0]
    client.post("/admin/login", data={"password": instance.owner.password, "csrf_token": token})
    upload = client.get("/admin/upload").get_data(as_text=True)
    token = upload.split('name="csrf_token"', 1)[1].split('value="', 1)[1].split('"', 1)[0]
    worded = {"da": "Titlen indeholder usynlige tegn", "en": "The title contains invisible characters"}
    for language, words in worded.items():
        answer = client.post(
            f"/admin/upload/raw?filename=brochure.pdf&title=Pris%E2%80%AEliste&lang={language}",
            data=pdf_bytes("worded"),
            headers={"X-CSRFToken": token, "Accept-Language": language, "Content-Type": "application/octet-stream"},
        )
        assert answer.status_code == 400
        assert words in answer.get_json()["error"], answer.get_json()
