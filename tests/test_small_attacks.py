"""The smaller ways a visitor could spoil the site for the next one, each refused."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from archive import Archive
from tests.support.access import REQUEST_FIELDS
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
