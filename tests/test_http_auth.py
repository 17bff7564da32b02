"""The protected area over HTTP, as the deposit crawler meets it: a 401 challenge with a
fixed realm, HTTP Basic per request, cached slow hashes, expiry and revocation that act
at once, and URLs that follow a trusted TLS-terminating proxy."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from urllib.parse import unquote

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from pligt.core import Archive
from pligt.core.credentials import auth as core_auth
from pligt.core.credentials import passwords
from pligt.settings import load_settings
from tests.support.access import issue_credential
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.app import make_app
from tests.support.data import pdf_bytes
from tests.support.pages import links

SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "deposit.example.dk"}


@pytest.fixture
def material(archive: Archive) -> dict[str, bytes]:
    """A public item with two versions and a protected item with two versions."""
    archive.publish([pdf_bytes("public 1")], filename="brochure.pdf", visibility="public")
    archive.publish([pdf_bytes("public 2")], filename="brochure.pdf", slug="brochure")
    archive.publish([pdf_bytes("course 1")], filename="kursusmateriale.pdf", visibility="protected")
    archive.publish([pdf_bytes("course 2")], filename="kursus-øvelser.pdf", slug="kursusmateriale")
    return {
        "/files/brochure/v1/brochure.pdf": pdf_bytes("public 1"),
        "/files/brochure/v2/brochure.pdf": pdf_bytes("public 2"),
        "/files/kursusmateriale/v1/kursusmateriale.pdf": pdf_bytes("course 1"),
        "/files/kursusmateriale/v2/kursus-øvelser.pdf": pdf_bytes("course 2"),
    }


PROTECTED_FILE = "/files/kursusmateriale/v1/kursusmateriale.pdf"


@pytest.fixture
def crawler(archive: Archive) -> tuple[str, str]:
    """A crawler credential as the deposit institution gets it: (username, password)."""
    credential, password = issue_credential(archive)
    return credential.username, password


def assert_challenge(response: TestResponse, instance: Instance) -> None:
    """A 401 that the crawler can answer: a Basic challenge with the fixed, non-empty realm."""
    assert response.status_code == 401
    assert instance.settings.realm
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith(f'Basic realm="{instance.settings.realm}"'), challenge
    assert "Location" not in response.headers


# -- the challenge ---------------------------------------------------------------------------


def test_protected_index_without_credentials_is_a_basic_challenge(client: FlaskClient, instance: Instance) -> None:
    response = client.get("/protected/")
    assert_challenge(response, instance)


def test_protected_file_without_credentials_is_the_same_challenge(
    client: FlaskClient, instance: Instance, material: dict[str, bytes]
) -> None:
    index_challenge = client.get("/protected/").headers["WWW-Authenticate"]

    for path in (PROTECTED_FILE, "/files/kursusmateriale/latest"):
        response = client.get(path)
        assert_challenge(response, instance)
        assert response.headers["WWW-Authenticate"] == index_challenge
        assert pdf_bytes("course 1") not in response.data


def test_head_of_a_protected_file_without_credentials_is_the_challenge(
    client: FlaskClient, instance: Instance, material: dict[str, bytes]
) -> None:
    response = client.head(PROTECTED_FILE)
    assert_challenge(response, instance)
    assert "Content-Disposition" not in response.headers
    assert client.head(PROTECTED_FILE, auth=instance.owner_auth).status_code == 200


def test_challenge_answers_json_when_asked(client: FlaskClient, instance: Instance) -> None:
    response = client.get("/protected/", headers={"Accept": "application/json"})
    assert_challenge(response, instance)
    assert response.get_json()["code"] == 401


# -- crawler credentials -------------------------------------------------------------------------


def test_crawler_credential_reads_protected_files(
    client: FlaskClient, material: dict[str, bytes], crawler: tuple[str, str]
) -> None:
    for path, data in material.items():
        response = client.get(path, auth=crawler)
        assert response.status_code == 200, path
        assert response.data == data, path

    latest = client.get("/files/kursusmateriale/latest", auth=crawler)
    assert latest.status_code == 302
    assert unquote(latest.headers["Location"]) == "http://localhost/files/kursusmateriale/v2/kursus-øvelser.pdf"


def test_protected_index_lists_every_item_and_every_retained_version(
    client: FlaskClient, material: dict[str, bytes], crawler: tuple[str, str]
) -> None:
    response = client.get("/protected/", auth=crawler)

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    hrefs = links(response.get_data(as_text=True))
    for path in material:
        assert path in hrefs
    # The "latest" redirects work (see test_crawler_credential_reads_protected_files) but are
    # not linked: a crawler would fetch every item twice, once through the redirect.
    assert not [href for href in hrefs if href.endswith("/latest")]


def test_protected_index_drops_versions_withdrawn_after_retention(
    client: FlaskClient, archive: Archive, clock: Clock, material: dict[str, bytes], crawler: tuple[str, str]
) -> None:
    clock.advance(days=184)
    archive.withdraw("kursusmateriale", 1)

    hrefs = links(client.get("/protected/", auth=crawler).get_data(as_text=True))

    assert "/files/kursusmateriale/v1/kursusmateriale.pdf" not in hrefs
    assert "/files/kursusmateriale/v2/kursus-øvelser.pdf" in hrefs
    assert client.get(PROTECTED_FILE, auth=crawler).status_code == 410


def test_wrong_password_is_refused(
    client: FlaskClient, instance: Instance, material: dict[str, bytes], crawler: tuple[str, str]
) -> None:
    username, password = crawler
    wrong = (username, password + "x")

    assert_challenge(client.get("/protected/", auth=wrong), instance)
    response = client.get(PROTECTED_FILE, auth=wrong)
    assert_challenge(response, instance)
    assert pdf_bytes("course 1") not in response.data


def test_unknown_user_is_refused(
    client: FlaskClient, instance: Instance, material: dict[str, bytes], crawler: tuple[str, str]
) -> None:
    _, password = crawler
    for username in ("crawler-00000000", "nobody", "admin"):
        assert_challenge(client.get("/protected/", auth=(username, password)), instance)
        assert_challenge(client.get(PROTECTED_FILE, auth=(username, password)), instance)


def test_expired_credential_is_refused_even_when_cached(
    client: FlaskClient, archive: Archive, clock: Clock, instance: Instance, material: dict[str, bytes]
) -> None:
    credential, password = issue_credential(archive, valid_days=1)
    auth = (credential.username, password)
    assert client.get("/protected/", auth=auth).status_code == 200
    assert client.get(PROTECTED_FILE, auth=auth).status_code == 200

    clock.advance(days=2)

    assert_challenge(client.get(PROTECTED_FILE, auth=auth), instance)
    assert_challenge(client.get("/protected/", auth=auth), instance)
    assert_challenge(client.get("/files/kursusmateriale/latest", auth=auth), instance)


def test_revoked_credential_is_refused_on_the_next_request(
    client: FlaskClient, archive: Archive, instance: Instance, material: dict[str, bytes]
) -> None:
    credential, password = issue_credential(archive)
    auth = (credential.username, password)
    assert client.get(PROTECTED_FILE, auth=auth).status_code == 200
    assert client.get("/protected/", auth=auth).status_code == 200

    archive.access.revoke(credential.id)

    response = client.get(PROTECTED_FILE, auth=auth)
    assert_challenge(response, instance)
    assert pdf_bytes("course 1") not in response.data
    assert_challenge(client.get("/protected/", auth=auth), instance)
    assert_challenge(client.get("/files/kursusmateriale/latest", auth=auth), instance)


def test_revoking_one_credential_leaves_another_working(
    client: FlaskClient, archive: Archive, material: dict[str, bytes]
) -> None:
    first, first_password = issue_credential(archive)
    second, second_password = issue_credential(archive)
    archive.access.revoke(first.id)

    assert client.get(PROTECTED_FILE, auth=(first.username, first_password)).status_code == 401
    assert client.get(PROTECTED_FILE, auth=(second.username, second_password)).status_code == 200


def test_malformed_authorization_headers_get_the_challenge(
    client: FlaskClient, instance: Instance, material: dict[str, bytes]
) -> None:
    for header in (
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"\xff\xfe:\xff\x00").decode(),
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode(b":").decode(),
        "Bearer abc.def.ghi",
        "Basic",
        "",
    ):
        for path in ("/protected/", PROTECTED_FILE):
            response = client.get(path, headers={"Authorization": header})
            assert_challenge(response, instance)
        public = client.get("/files/brochure/v1/brochure.pdf", headers={"Authorization": header})
        assert public.status_code == 200, header


def test_owner_credentials_read_protected_material(
    client: FlaskClient, instance: Instance, material: dict[str, bytes]
) -> None:
    index = client.get("/protected/", auth=instance.owner_auth)
    assert index.status_code == 200
    assert set(material) <= set(links(index.get_data(as_text=True)))

    response = client.get(PROTECTED_FILE, auth=instance.owner_auth)
    assert response.status_code == 200
    assert response.data == pdf_bytes("course 1")


def test_wrong_owner_password_is_refused(client: FlaskClient, instance: Instance, material: dict[str, bytes]) -> None:
    username, password = instance.owner_auth
    assert_challenge(client.get("/protected/", auth=(username, password + "x")), instance)
    assert_challenge(client.get(PROTECTED_FILE, auth=(username, password + "x")), instance)


@pytest.fixture
def slow_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The stored hashes the slow password check was run against, in order."""
    calls: list[str] = []
    real = passwords.verify_password  # what core_auth calls, before the counting stands in for it

    def counting(stored: str, password: str) -> bool:
        calls.append(stored)
        return real(stored, password)

    monkeypatch.setattr(core_auth, "verify_password", counting)
    return calls


def test_slow_hash_is_paid_once_for_repeated_requests(
    client: FlaskClient, material: dict[str, bytes], crawler: tuple[str, str], slow_checks: list[str]
) -> None:

    for _ in range(10):
        assert client.get(PROTECTED_FILE, auth=crawler).status_code == 200
        assert client.get("/protected/", auth=crawler).status_code == 200
        assert client.get("/files/kursusmateriale/latest", auth=crawler).status_code == 302

    assert len(slow_checks) == 1


def test_failed_checks_are_not_cached(
    client: FlaskClient, material: dict[str, bytes], crawler: tuple[str, str], slow_checks: list[str]
) -> None:
    username, password = crawler

    for _ in range(3):
        assert client.get(PROTECTED_FILE, auth=(username, password + "x")).status_code == 401
    assert client.get(PROTECTED_FILE, auth=crawler).status_code == 200

    assert len(slow_checks) == 4


def test_public_files_stay_reachable_with_wrong_credentials(client: FlaskClient, material: dict[str, bytes]) -> None:
    for auth in (("nobody", "nothing"), ("owner", "wrong"), ("crawler-00000000", "x")):
        response = client.get("/files/brochure/v1/brochure.pdf", auth=auth)
        assert response.status_code == 200
        assert response.data == pdf_bytes("public 1")
        assert client.get("/", auth=auth).status_code == 200
        assert client.get("/robots.txt", auth=auth).status_code == 200


def test_public_files_stay_reachable_with_revoked_credentials(
    client: FlaskClient, archive: Archive, material: dict[str, bytes]
) -> None:
    credential, password = issue_credential(archive)
    archive.access.revoke(credential.id)

    response = client.get("/files/brochure/v2/brochure.pdf", auth=(credential.username, password))

    assert response.status_code == 200
    assert response.data == pdf_bytes("public 2")


def test_protected_downloads_are_not_publicly_cacheable(
    client: FlaskClient, material: dict[str, bytes], crawler: tuple[str, str]
) -> None:
    response = client.get(PROTECTED_FILE, auth=crawler)
    assert response.status_code == 200
    assert "private" in response.headers["Cache-Control"]
    assert "public" not in response.headers["Cache-Control"]


# -- behind a TLS-terminating proxy -------------------------------------------------------------


@pytest.fixture
def proxied_client(instance: Instance, clock: Clock) -> FlaskClient:
    settings = load_settings(instance.path, env={"PLIGT_TRUSTED_PROXIES": "1"})
    return make_app(settings, clock).test_client()


def sitemap_locs(response: TestResponse) -> list[str]:
    assert response.status_code == 200
    root = ET.fromstring(response.data)  # noqa: S314 - our own sitemap
    return [loc.text or "" for loc in root.iter(f"{SITEMAP_NS}loc")]


def test_trusted_proxy_headers_make_urls_https_on_the_public_host(
    proxied_client: FlaskClient, material: dict[str, bytes]
) -> None:
    latest = proxied_client.get("/files/brochure/latest", headers=FORWARDED)
    assert latest.status_code == 302
    assert latest.headers["Location"] == "https://deposit.example.dk/files/brochure/v2/brochure.pdf"

    locs = sitemap_locs(proxied_client.get("/sitemap.xml", headers=FORWARDED))
    assert locs
    assert all(loc.startswith("https://deposit.example.dk/") for loc in locs), locs
    assert "https://deposit.example.dk/files/brochure/v1/brochure.pdf" in locs

    robots = proxied_client.get("/robots.txt", headers=FORWARDED).get_data(as_text=True)
    assert "Sitemap: https://deposit.example.dk/sitemap.xml" in robots.splitlines()


def test_forwarded_headers_are_ignored_without_trusted_proxies(client: FlaskClient, material: dict[str, bytes]) -> None:
    latest = client.get("/files/brochure/latest", headers=FORWARDED)
    assert latest.status_code == 302
    assert latest.headers["Location"] == "http://localhost/files/brochure/v2/brochure.pdf"

    locs = sitemap_locs(client.get("/sitemap.xml", headers=FORWARDED))
    assert locs
    assert all(loc.startswith("http://localhost/") for loc in locs), locs
    assert not [loc for loc in locs if "example.dk" in loc]
