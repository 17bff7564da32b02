"""Access requests a page at a time (issue 23, cost): only the requests shown have their sealed fields opened.

A listing of 10,000 requests would open 10,000 sealed values (a key and an AES-GCM
decryption each) to show a screenful. The console, the owner API and ``pligt
requests`` show a page instead: the newest requests, then older ones by a link or
``--before``. These tests walk the pages through each interface and check that
every request is reached once, in filing order, with the same fields the full
listing gives, erased and unreadable ones included; on SQLite and PostgreSQL
catalogs, and with the key store's batch read against one key at a time.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
from collections.abc import Callable
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from pligt.core import Archive
from pligt.core.catalog import Catalog
from pligt.core.catalog import open_catalog
from pligt.core.catalog.keys import KEY_BATCH
from pligt.core.catalog.keys import KeyStore
from pligt.core.catalog.postgresql import PostgresKeyStore
from pligt.core.catalog.sqlite import SqliteKeyStore
from pligt.core.credentials.access import AccessDesk
from pligt.core.credentials.access import RequestPage
from pligt.core.errors import InvalidInput
from pligt.core.keeping.privacy import Privacy
from pligt.core.models import AccessRequest
from pligt.core.proof.sealing import new_key
from tests.support.app import Instance
from tests.support.cli import invoke

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def fields(n: int) -> dict[str, str | None]:
    return {
        "institution": f"Det Kgl. Bibliotek {n}",
        "contact_name": f"Person {n}",
        "contact_email": f"person{n}@kb.example.dk",
        "legal_basis": "",
        "message": f"Besked nummer {n}",
    }


def walk(page_at: Callable[[int | None], RequestPage]) -> list[list[AccessRequest]]:
    """Every page from the newest on, following each page's ``older`` until there is none."""
    pages, before = [], None
    while True:
        page = page_at(before)
        pages.append(page.requests)
        if page.older is None:
            return pages
        assert page.older == page.requests[0].id  # the next page starts below the oldest shown
        before = page.older


# -- the core, on every catalog ----------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    """A fresh, migrated catalog of each kind (its key store a SQLite file in the test's folder)."""
    location = str(tmp_path / "catalog.sqlite3")
    if request.param == "postgresql":
        location = str(request.getfixturevalue("postgres_url"))
    opened = open_catalog(location, tmp_path)
    opened.migrate()
    yield opened
    opened.close()


@pytest.fixture
def desk(catalog: Catalog) -> AccessDesk:
    return AccessDesk(catalog, lambda: T0, max_pending=1000)


def test_pages_reach_every_request_once_in_filing_order_with_the_full_listings_fields(desk: AccessDesk) -> None:
    ids = [desk.file(fields(n)).id for n in range(23)]
    desk.approve(ids[3])
    desk.deny(ids[4], "not the deposit institution")
    Privacy(desk.catalog, desk.clock).erase("person7@kb.example.dk", desk.revoke)
    desk.catalog.keys.destroy([_key_id(desk.catalog, ids[9])])  # type: ignore[union-attr]  # the key lost: unreadable

    pages = walk(lambda before: desk.page(before=before, limit=5))

    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    for page in pages:
        assert [r.id for r in page] == sorted(r.id for r in page)  # filing order within a page
    walked = [r for page in reversed(pages) for r in page]
    assert [r.id for r in walked] == ids  # every request, none twice, in order
    assert walked == desk.requests()  # the same fields as the full listing, opened or not
    by_id = {r.id: r for r in walked}
    assert by_id[ids[7]].personal_data == "erased" and by_id[ids[7]].contact_email is None
    assert by_id[ids[9]].personal_data == "unreadable" and by_id[ids[9]].institution is None
    assert by_id[ids[8]].contact_email == "person8@kb.example.dk"
    assert by_id[ids[4]].status == "denied"


def test_a_status_is_paged_too_and_a_request_filed_meanwhile_is_not_seen_twice(desk: AccessDesk) -> None:
    ids = [desk.file(fields(n)).id for n in range(7)]
    desk.deny(ids[2], "no")
    first = desk.page("pending", limit=3)
    later = desk.file(fields(99)).id  # filed while the owner reads the first page
    second = desk.page("pending", before=first.older, limit=3)

    assert [r.id for r in first.requests] == ids[4:7]
    assert [r.id for r in second.requests] == [ids[0], ids[1], ids[3]]
    assert second.older is None  # the last page of the pending ones
    assert [r.id for r in desk.page("pending", limit=3).requests] == [ids[5], ids[6], later]
    assert desk.page(limit=1000).older is None and len(desk.page(limit=1000).requests) == 8


def test_a_page_size_out_of_range_is_refused(desk: AccessDesk) -> None:
    for limit in (0, 1001):
        with pytest.raises(InvalidInput, match="1 to 1000"):
            desk.page(limit=limit)


def test_requests_lapse_when_listed_as_they_did_one_by_one(catalog: Catalog) -> None:
    """Released links and credentials that ran out close their request, at the moment they ran out."""
    now = [T0]
    desk = AccessDesk(catalog, lambda: now[0])
    link_lapses = desk.approve(desk.file(fields(1)).id, valid_days=30)  # its link ends after 7 days
    released = desk.approve(desk.file(fields(2)).id, valid_days=3)
    desk.release(released.release_token)
    rotated = desk.approve(desk.file(fields(3)).id, valid_days=3)
    desk.release(rotated.release_token)
    renewed = desk.rotate(rotated.credential.id, valid_days=30)  # a live credential: stays released
    desk.release(renewed.release_token)
    pending = desk.file(fields(4))
    revoked = desk.approve(desk.file(fields(5)).id, valid_days=3)
    desk.release(revoked.release_token)
    desk.revoke(revoked.credential.id)  # nothing left to lapse: it stays released

    now[0] = T0 + timedelta(days=5)
    assert [r.status for r in desk.page().requests] == ["approved", "expired", "released", "pending", "released"]
    now[0] = T0 + timedelta(days=8)
    listed = desk.page().requests

    assert [r.status for r in listed] == ["expired", "expired", "released", "pending", "released"]
    assert listed[0].closed_at == link_lapses.release_expires_at
    assert listed[1].closed_at == released.credential.expires_at
    assert [r.id for r in listed] == [
        link_lapses.request.id,
        released.request.id,
        rotated.request.id,
        pending.id,
        revoked.request.id,
    ]
    lapsed = [e.data["request"] for e in catalog.audit_entries_of("request.expired")]
    assert lapsed == [released.request.id, link_lapses.request.id]  # each once, as it was noticed


def test_a_harvest_without_personal_fields_is_the_same_report_without_the_institution(archive: Archive) -> None:
    archive.publish([b"%PDF-1.4 x\n"], filename="x.pdf", visibility="protected")
    for n in range(3):
        archive.access.approve(archive.access.file(fields(n)).id)

    with_names = archive.harvest()
    without = archive.harvest(personal=False)

    assert [r.institution for r in with_names] == [f"Det Kgl. Bibliotek {n}" for n in range(3)]
    assert without == [dataclasses.replace(r, institution=None) for r in with_names]


def test_the_harvest_report_prefers_the_credentials_own_download_to_one_named_by_user_agent(
    archive: Archive,
) -> None:
    """Both records exist for the version: the credential's (stronger, though later) is the proof shown."""
    version = archive.publish([b"%PDF-1.4 y\n"], filename="y.pdf", visibility="protected").version
    credential = archive.access.approve(archive.access.file(fields(1)).id).credential
    now = archive.clock()
    archive.catalog.record_downloads(
        [
            (None, version.id, 200, 11, True, now - timedelta(hours=2), "user-agent", "heritrix"),
            (credential.id, version.id, 200, 11, True, now - timedelta(hours=1), "credential", None),
        ]
    )

    [row] = archive.harvest()

    assert row.complete is not None and row.complete.via == "credential"
    assert row.complete.credential_id == credential.id


def _key_id(catalog: Catalog, request_id: int) -> str:
    """The id of a request's key, as a sealed value names it (the catalog's rows, read as a backup reads them)."""
    [row] = [r for r in catalog.rows("access_requests") if r["id"] == request_id]
    return str(row["key_id"])


# -- the key store: one read for many keys gives what one read per key gives -------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def key_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyStore]:
    store: KeyStore
    if request.param == "sqlite":
        store = SqliteKeyStore(tmp_path / "keys.sqlite3")
    else:
        store = PostgresKeyStore(str(request.getfixturevalue("postgres_url")))
    yield store
    store.close()


@pytest.mark.parametrize("count", [7, KEY_BATCH + 40])  # a few (by id), and more than a batch (one scan)
def test_the_key_stores_batch_read_gives_what_reading_each_key_alone_gives(key_store: KeyStore, count: int) -> None:
    keys = [(secrets.token_hex(16), new_key(), "2026-01-05T09:00:00Z") for _ in range(count)]
    key_store.load(keys, [])
    destroyed = [key_id for key_id, _, _ in keys[::5]]
    key_store.destroy(destroyed)
    others = [(secrets.token_hex(16), new_key(), "2026-01-05T09:00:00Z") for _ in range(5)]
    key_store.load(others, [])  # kept, but not asked for
    unknown = [secrets.token_hex(16) for _ in range(3)]
    asked = [key_id for key_id, _, _ in keys] + unknown + [keys[1][0]]  # a repeat, too

    together = key_store.get(asked)
    one_by_one = {key_id: key for key_id in asked for key in key_store.get([key_id]).values()}

    assert together == one_by_one
    assert set(together) == {key_id for key_id, _, _ in keys} - set(destroyed)
    assert all(together[key_id] == key for key_id, key, _ in keys if key_id in together)
    assert key_store.get([]) == {}


# -- the interfaces: pligt requests, the owner API, the console -------------------------------


@pytest.fixture
def filed(archive: Archive) -> list[int]:
    """Twelve requests, the fourth erased (its person asked), the rest readable."""
    ids = [archive.access.file(fields(n)).id for n in range(12)]
    Privacy(archive.catalog, archive.clock).erase("person3@kb.example.dk", archive.access.revoke)
    return ids


def test_pligt_requests_shows_the_newest_page_and_before_reaches_the_rest(instance: Instance, filed: list[int]) -> None:
    path = str(instance.path)
    shown: list[dict[str, Any]] = []
    before: list[str] = []
    while True:
        result = invoke("requests", "--instance", path, "--json", "--limit", "5", *before)
        assert result.exit_code == 0, result.stderr
        shown = json.loads(result.stdout) + shown
        hint = re.search(r"pligt requests --before (\d+)", result.stderr)
        if hint is None:
            break
        before = ["--before", hint.group(1)]

    assert [r["id"] for r in shown] == filed
    assert [r["personal_data"] for r in shown].count("erased") == 1
    assert shown[filed.index(filed[3])]["contact_email"] is None
    everything = invoke("requests", "--instance", path, "--json", "--all")
    assert json.loads(everything.stdout) == shown and "--before" not in everything.stderr
    text = invoke("requests", "--instance", path, "--limit", "2").stdout
    assert text.index(f"#{filed[10]} ") < text.index(f"#{filed[11]} ") and f"#{filed[9]} " not in text
    refused = invoke("requests", "--instance", path, "--limit", "0")
    assert refused.exit_code == 2


def test_the_api_pages_by_its_next_link_and_refuses_a_bad_limit(
    client: FlaskClient, instance: Instance, filed: list[int]
) -> None:
    shown: list[dict[str, Any]] = []
    url: str | None = "/api/requests?limit=5"
    while url is not None:
        response = client.get(url, auth=instance.owner_auth)
        assert response.status_code == 200
        body = response.get_json()
        assert len(body["requests"]) <= 5
        shown = body["requests"] + shown
        url = body.get("next")

    assert [r["id"] for r in shown] == filed
    assert next(r for r in shown if r["id"] == filed[3])["personal_data"] == "erased"
    whole = client.get("/api/requests", auth=instance.owner_auth).get_json()
    assert whole == {"requests": shown}  # 12 fit on the default page: no next
    pending = client.get("/api/requests?status=pending&limit=2", auth=instance.owner_auth).get_json()
    assert "status=pending" in pending["next"] and "before=" in pending["next"]
    for bad in ("0", "1001", "two", "-1", "²"):
        assert client.get(f"/api/requests?limit={bad}", auth=instance.owner_auth).status_code == 400
    assert client.get("/api/requests?before=99999999999999999999", auth=instance.owner_auth).status_code == 400


def _sign_in(client: FlaskClient, instance: Instance) -> None:
    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token is not None
    signed_in = client.post("/admin/login", data={"password": instance.owner.password, "csrf_token": token.group(1)})
    assert signed_in.status_code == 302


def test_the_console_shows_the_newest_hundred_and_links_to_the_older(
    client: FlaskClient, instance: Instance, archive: Archive
) -> None:
    archive.access.max_pending = 200
    ids = [archive.access.file(fields(n)).id for n in range(101)]
    _sign_in(client, instance)

    newest = client.get("/admin/requests").get_data(as_text=True)
    shown = [int(i) for i in re.findall(r'<tr data-request="(\d+)"', newest)]
    assert shown == ids[:0:-1]  # the newest 100, newest first
    older = re.search(r'<a href="([^"]+)" id="older-requests"', newest)
    assert older is not None and 'id="newest-requests"' not in newest

    oldest = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert [int(i) for i in re.findall(r'<tr data-request="(\d+)"', oldest)] == [ids[0]]
    assert "person0@kb.example.dk" in oldest and 'id="older-requests"' not in oldest
    assert 'id="newest-requests"' in oldest
