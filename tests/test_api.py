"""The owner's JSON API over HTTP: publish (raw, streamed body), list and withdraw; and
bad input, each refused with a JSON error while nothing stored is lost or added."""

from __future__ import annotations

import base64
import hashlib
import io
import random
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from urllib.parse import urlsplit

import pytest
import requests
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from pligt.core import Archive
from pligt.settings import load_settings
from tests.support.access import issue_credential
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.app import make_app
from tests.support.data import elf_bytes
from tests.support.data import pdf_bytes
from tests.support.data import pe_bytes
from tests.support.data import zip_bytes
from tests.support.pages import assert_json_error
from tests.support.servers import Server
from tests.support.servers import start_server
from tests.support.servers import stop_server

#: What the listing and the stored files were before a request that must change nothing.
Existing = tuple[dict[str, Any], dict[str, str]]
RETAIN_UNTIL = "2026-07-07T12:00:00Z"  # the clock's start, 2026-01-05 12:00, plus 183 days


def client_with(instance: Instance, clock: Clock, **env: str) -> FlaskClient:
    """A test client of an app on the same instance with some PLIGT_* settings."""
    settings = load_settings(instance.path, env={f"PLIGT_{k.upper()}": v for k, v in env.items()})
    return make_app(settings, clock).test_client()


def publish(client: FlaskClient, instance: Instance, data: bytes, **params: str) -> TestResponse:
    return client.post("/api/items", query_string=params, data=data, auth=instance.owner_auth)


def stored_files(instance: Instance) -> dict[str, str]:
    """Every file (not folder) below the instance's storage, temporary ones included, with its SHA-256."""
    root = instance.path / "files"
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if not p.is_dir()
    }


def listing(client: FlaskClient, instance: Instance) -> dict[str, Any]:
    response = client.get("/api/items", auth=instance.owner_auth)
    assert response.status_code == 200
    listed: dict[str, Any] = response.get_json()
    return listed


@pytest.fixture
def existing(client: FlaskClient, instance: Instance, archive: Archive) -> Existing:
    """Two items already published; returns what a refused request must leave intact."""
    archive.publish([pdf_bytes("kept")], filename="kept.pdf", visibility="public")
    archive.publish([pdf_bytes("secret")], filename="secret.pdf", visibility="protected")
    files = stored_files(instance)
    assert sorted(files.values()) == sorted(hashlib.sha256(pdf_bytes(t)).hexdigest() for t in ("kept", "secret"))
    return listing(client, instance), files


def assert_nothing_changed(client: FlaskClient, instance: Instance, existing: Existing) -> None:
    """The API lists the same, and the storage holds the same files with the same bytes."""
    before_listing, before_files = existing
    assert listing(client, instance) == before_listing
    assert stored_files(instance) == before_files


# -- publishing, listing -----------------------------------------------------------------------


def test_publish_returns_the_new_version_and_its_location(client: FlaskClient, instance: Instance) -> None:
    data = pdf_bytes("new brochure")

    response = publish(client, instance, data, filename="Forårsbrochure.pdf", visibility="public", title="Forår")

    assert response.status_code == 201
    version = response.get_json()["version"]
    assert version["slug"] == "foraar"
    assert version["title"] == "Forår"
    assert version["visibility"] == "public"
    assert version["version"] == 1
    assert version["filename"] == "Forårsbrochure.pdf"
    assert version["size"] == len(data)
    assert version["sha256"] == hashlib.sha256(data).hexdigest()
    assert version["content_type"] == "application/pdf"
    assert version["published_at"] == "2026-01-05T12:00:00Z"
    assert version["retain_until"] == RETAIN_UNTIL
    assert unquote(version["url"]) == "http://localhost/files/foraar/v1/Forårsbrochure.pdf"
    assert response.headers["Location"] == version["url"]
    assert response.get_json()["warnings"] == []

    download = client.get(urlsplit(version["url"]).path)
    assert download.status_code == 200
    assert download.data == data


def test_publish_with_slug_adds_versions_and_keeps_the_old_ones(client: FlaskClient, instance: Instance) -> None:
    first = publish(client, instance, pdf_bytes("one"), filename="prices.pdf", slug="prices", visibility="protected")
    second = publish(client, instance, pdf_bytes("two"), filename="prices-2026.pdf", slug="prices")

    assert first.status_code == second.status_code == 201
    assert second.get_json()["version"]["version"] == 2
    assert second.get_json()["version"]["visibility"] == "protected"
    item = client.get("/api/items/prices", auth=instance.owner_auth)
    assert item.status_code == 200
    body = item.get_json()
    assert body["slug"] == "prices"
    assert body["visibility"] == "protected"
    assert [v["version"] for v in body["versions"]] == [1, 2]
    assert [v["filename"] for v in body["versions"]] == ["prices.pdf", "prices-2026.pdf"]


def test_new_items_are_protected_unless_said_otherwise(client: FlaskClient, instance: Instance) -> None:
    response = publish(client, instance, pdf_bytes("default"), filename="default.pdf")

    assert response.status_code == 201
    assert response.get_json()["version"]["visibility"] == "protected"
    assert client.get("/files/default/v1/default.pdf").status_code == 401


def test_list_items_shows_every_item_and_version(client: FlaskClient, instance: Instance, existing: Existing) -> None:
    body = listing(client, instance)

    assert [item["slug"] for item in body["items"]] == ["kept", "secret"]
    assert [item["visibility"] for item in body["items"]] == ["public", "protected"]
    for item in body["items"]:
        (version,) = item["versions"]
        assert version["retain_until"] == RETAIN_UNTIL
        assert version["url"].startswith("http://localhost/files/")


def test_unknown_item_is_404_json(client: FlaskClient, instance: Instance) -> None:
    assert_json_error(client.get("/api/items/nothing", auth=instance.owner_auth), 404, "nothing")
    assert client.get("/api/items/..%2f..", auth=instance.owner_auth).status_code == 404


# -- withdrawing -----------------------------------------------------------------------------


def test_withdraw_inside_retention_is_refused_naming_the_date(
    client: FlaskClient, instance: Instance, existing: Existing
) -> None:
    response = client.delete("/api/items/kept/versions/1", auth=instance.owner_auth)

    assert_json_error(response, 409, "2026-07-07")
    assert client.delete("/api/items/kept", auth=instance.owner_auth).status_code == 409
    assert client.get("/files/kept/v1/kept.pdf").data == pdf_bytes("kept")
    assert_nothing_changed(client, instance, existing)


def test_withdraw_after_retention_makes_the_url_gone(
    client: FlaskClient, instance: Instance, clock: Clock, existing: Existing
) -> None:
    clock.advance(days=184)

    response = client.delete("/api/items/kept/versions/1", auth=instance.owner_auth)

    assert response.status_code == 200
    (withdrawn,) = response.get_json()["withdrawn"]
    assert withdrawn["slug"] == "kept"
    assert withdrawn["version"] == 1
    assert withdrawn["withdrawn_at"] == "2026-07-08T12:00:00Z"
    assert client.get("/files/kept/v1/kept.pdf").status_code == 410
    assert client.get("/files/kept/v1/kept.pdf", auth=instance.owner_auth).status_code == 410
    assert_json_error(client.delete("/api/items/kept/versions/1", auth=instance.owner_auth), 410)
    item = client.get("/api/items/kept", auth=instance.owner_auth).get_json()
    assert item["versions"][0]["withdrawn_at"] == "2026-07-08T12:00:00Z"
    assert "url" not in item["versions"][0]
    assert client.get("/files/secret/v1/secret.pdf", auth=instance.owner_auth).data == pdf_bytes("secret")


def test_withdraw_unknown_version_is_404(client: FlaskClient, instance: Instance, existing: Existing) -> None:
    assert_json_error(client.delete("/api/items/kept/versions/7", auth=instance.owner_auth), 404)
    assert_json_error(client.delete("/api/items/nothing/versions/1", auth=instance.owner_auth), 404)
    assert_nothing_changed(client, instance, existing)


# -- who may use the API -------------------------------------------------------------------------


def test_api_without_owner_credentials_is_401_json(
    client: FlaskClient, instance: Instance, archive: Archive, existing: Existing
) -> None:
    credential, password = issue_credential(archive)
    owner, owner_password = instance.owner_auth
    attempts = (None, (owner, owner_password + "x"), ("nobody", owner_password), (credential.username, password))
    for n, auth in enumerate(attempts):
        address = f"192.0.2.{n}"  # one client each: twelve failures from one would be refused (429)
        for method, path in (
            ("GET", "/api/items"),
            ("GET", "/api/items/kept"),
            ("POST", "/api/items?filename=intruder.pdf&visibility=public"),
            ("DELETE", "/api/items/kept/versions/1"),
        ):
            response = client.open(
                path, method=method, data=pdf_bytes("intruder"), auth=auth, environ_base={"REMOTE_ADDR": address}
            )
            assert_json_error(response, 401)
            assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert_nothing_changed(client, instance, existing)


# -- bad input: a clear error, nothing lost, nothing added ---------------------------------------


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"visibility": "public"}, ["filename"]),
        ({"filename": "", "visibility": "public"}, ["filename"]),
        ({"filename": "a/b.pdf"}, ["/"]),
        ({"filename": "../../etc/passwd.pdf"}, ["/"]),
        ({"filename": ".."}, ["dot"]),
        ({"filename": "a\\b.pdf"}, ["\\"]),
        ({"filename": "bad\x00name.pdf"}, ["control"]),
        ({"filename": "bad\nname.pdf"}, ["control"]),
        ({"filename": "bad\rname.pdf"}, ["control"]),
        ({"filename": "ok.pdf", "slug": "../x"}, ["slug"]),
        ({"filename": "ok.pdf", "slug": "..%2f..%2fx"}, ["slug"]),
        ({"filename": "ok.pdf", "slug": "Store-Bogstaver"}, ["slug"]),
        ({"filename": "ok.pdf", "title": "bad\x00title"}, ["control"]),
        ({"filename": "ok.pdf", "visibility": "secret"}, ["visibility"]),
    ],
)
def test_bad_names_and_parameters_are_refused(
    client: FlaskClient, instance: Instance, existing: Existing, params: dict[str, str], words: list[str]
) -> None:
    response = publish(client, instance, pdf_bytes("bad input"), **params)

    assert_json_error(response, 400, *words)
    assert_nothing_changed(client, instance, existing)


def test_empty_body_is_refused(client: FlaskClient, instance: Instance, existing: Existing) -> None:
    response = publish(client, instance, b"", filename="empty.pdf", visibility="public")

    assert_json_error(response, 415, "empty")
    assert_nothing_changed(client, instance, existing)


def test_pdf_that_is_a_zip_is_refused_saying_what_it_is(
    client: FlaskClient, instance: Instance, existing: Existing
) -> None:
    response = publish(client, instance, zip_bytes(), filename="brochure.pdf", visibility="public")

    assert_json_error(response, 415, "Zip", ".pdf")
    assert_nothing_changed(client, instance, existing)


def test_elf_executable_named_txt_is_refused(client: FlaskClient, instance: Instance, existing: Existing) -> None:
    response = publish(client, instance, elf_bytes(), filename="readme.txt", visibility="public")

    assert_json_error(response, 415, "ELF", "executable")
    assert_nothing_changed(client, instance, existing)


@pytest.mark.parametrize("filename", ["setup.exe", "brochure.pdf", "data.bin"])
def test_pe_executable_is_refused_under_any_name(
    client: FlaskClient, instance: Instance, existing: Existing, filename: str
) -> None:
    response = publish(client, instance, pe_bytes(), filename=filename, visibility="public")

    assert_json_error(response, 415, "PE", "executable")
    assert_nothing_changed(client, instance, existing)


def test_changing_an_items_visibility_is_a_conflict(
    client: FlaskClient, instance: Instance, existing: Existing
) -> None:
    response = publish(client, instance, pdf_bytes("v2"), filename="kept.pdf", slug="kept", visibility="protected")

    assert_json_error(response, 409, "public", "protected")
    assert_nothing_changed(client, instance, existing)
    assert client.get("/files/kept/v1/kept.pdf").status_code == 200


@pytest.fixture
def small_client(instance: Instance, clock: Clock) -> FlaskClient:
    return client_with(instance, clock, max_upload_bytes="1000")


def test_upload_at_the_size_limit_is_accepted(small_client: FlaskClient, instance: Instance) -> None:
    data = pdf_bytes("limit")
    data = pdf_bytes("limit", pad=1000 - len(data))
    assert len(data) == 1000

    response = publish(small_client, instance, data, filename="limit.pdf", visibility="public")

    assert response.status_code == 201
    assert response.get_json()["version"]["size"] == 1000


def test_oversized_body_with_content_length_is_413(
    small_client: FlaskClient, instance: Instance, existing: Existing
) -> None:
    data = pdf_bytes("big", pad=1000)

    response = publish(small_client, instance, data, filename="big.pdf", visibility="public")

    assert_json_error(response, 413, "1,000")
    assert_nothing_changed(small_client, instance, existing)


def publish_chunked(client: FlaskClient, instance: Instance, data: bytes, filename: str) -> TestResponse:
    """POST a public file with a chunked body (no Content-Length), as curl -T - sends it."""
    return client.post(
        "/api/items",
        query_string={"filename": filename, "visibility": "public"},
        input_stream=io.BytesIO(data),
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
        auth=instance.owner_auth,
    )


def test_oversized_chunked_body_is_413(small_client: FlaskClient, instance: Instance, existing: Existing) -> None:
    data = pdf_bytes("big", pad=5000)

    response = publish_chunked(small_client, instance, data, "big.pdf")

    assert_json_error(response, 413, "1,000")
    assert_nothing_changed(small_client, instance, existing)


def test_chunked_body_of_exactly_the_limit_is_accepted(small_client: FlaskClient, instance: Instance) -> None:
    data = pdf_bytes("limit")
    data = pdf_bytes("limit", pad=1000 - len(data))

    response = publish_chunked(small_client, instance, data, "limit.pdf")

    assert response.status_code == 201, response.get_data(as_text=True)
    assert small_client.get("/files/limit/v1/limit.pdf").data == data


def test_publish_beyond_the_fetch_budget_succeeds_with_a_warning(instance: Instance, clock: Clock) -> None:
    client = client_with(instance, clock, fetch_budget_bytes="100")
    data = pdf_bytes("large", pad=500)

    response = publish(client, instance, data, filename="large.pdf", visibility="public")

    assert response.status_code == 201
    (warning,) = response.get_json()["warnings"]
    assert "large.pdf" in warning
    assert "budget" in warning
    assert client.get("/files/large/v1/large.pdf").data == data


# -- a real server -----------------------------------------------------------------------------


def _basic(auth: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()


def test_upload_cut_off_half_way_leaves_nothing(server: Server, instance: Instance) -> None:
    url = urlsplit(server.url)
    head = (
        "POST /api/items?filename=cut.bin&visibility=public HTTP/1.1\r\n"
        f"Host: {url.netloc}\r\n"
        f"Authorization: {_basic(instance.owner_auth)}\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Length: {1024 * 1024}\r\n"
        "\r\n"
    ).encode()
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head)
        sock.sendall(random.Random(3).randbytes(100 * 1024))
        time.sleep(0.5)  # the server has checked the password and is reading the body
    closed = time.monotonic()

    while True:
        items = requests.get(server.url + "/api/items", auth=instance.owner_auth, timeout=10).json()["items"]
        files = stored_files(instance)
        waited = time.monotonic() - closed
        if items or (not files and waited > 2) or waited > 5:
            break
        time.sleep(0.1)

    assert items == []
    assert files == {}
    assert requests.get(server.url + "/files/cut/latest", auth=instance.owner_auth, timeout=10).status_code == 404


def test_publishing_the_same_slug_twice_gives_two_downloadable_versions(server: Server, instance: Instance) -> None:
    datas = [pdf_bytes("first edition"), pdf_bytes("second edition")]
    versions = []
    for data in datas:
        response = requests.post(
            server.url + "/api/items",
            params={"filename": "katalog.pdf", "slug": "katalog", "visibility": "public"},
            data=data,
            auth=instance.owner_auth,
            timeout=30,
        )
        assert response.status_code == 201, response.text
        versions.append(response.json()["version"])

    assert [v["version"] for v in versions] == [1, 2]
    for version, data in zip(versions, datas, strict=True):
        download = requests.get(version["url"], timeout=30)
        assert download.status_code == 200
        assert download.content == data
    latest = requests.get(server.url + "/files/katalog/latest", allow_redirects=False, timeout=10)
    assert latest.status_code == 302
    assert latest.headers["Location"] == versions[1]["url"]


def test_real_server_takes_chunked_uploads_up_to_the_limit_and_refuses_more(instance: Instance, tmp_path: Path) -> None:
    running = start_server(instance.path, tmp_path / "small.log", env={"PLIGT_MAX_UPLOAD_BYTES": "1000"})
    try:
        data = pdf_bytes("fits")
        data = pdf_bytes("fits", pad=1000 - len(data))
        response = requests.post(
            running.url + "/api/items",
            params={"filename": "fits.pdf", "visibility": "public"},
            data=(data[i : i + 100] for i in range(0, len(data), 100)),
            auth=instance.owner_auth,
            timeout=30,
        )
        assert response.status_code == 201, response.text
        assert response.json()["version"]["size"] == 1000
        kept = stored_files(instance)

        data = pdf_bytes("big", pad=20_000)
        response = requests.post(
            running.url + "/api/items",
            params={"filename": "big.pdf", "visibility": "public"},
            data=(data[i : i + 1000] for i in range(0, len(data), 1000)),
            auth=instance.owner_auth,
            timeout=30,
        )
        assert response.status_code == 413
        assert "1,000" in response.json()["description"]
        listed = requests.get(running.url + "/api/items", auth=instance.owner_auth, timeout=10).json()
    finally:
        stop_server(running)
    assert [item["slug"] for item in listed["items"]] == ["fits"]
    assert stored_files(instance) == kept
