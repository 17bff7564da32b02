"""The hand-over in the institution's own terms, on the server's real public address.

NetarchiveSuite keeps a crawler's password as an entry of domain, realm,
username and password; Heritrix as an ``HttpAuthenticationCredential`` bean
whose domain is the server key it files URLs under (``host``, ``host:port``,
``host:443`` for https: see ../shared/CRAWLER.md). The release page and
``pligt approve/rotate --show --json`` give those four values and the bean;
every address handed out is on ``base_url`` (``pligt init --base-url``), else on
where ``pligt serve`` really listens, never on a default port it is not served on.
"""

from __future__ import annotations

import html
import json
import re
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask.testing import FlaskClient

from pligt.core import Archive
from pligt.instance import build_archive
from pligt.links import SERVED_AT
from pligt.links import crawler_domain
from pligt.release import heritrix_credential
from pligt.settings import load_settings
from tests.support.access import REQUEST_FIELDS
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.app import make_app
from tests.support.cli import invoke
from tests.support.data import pdf_bytes
from tests.support.servers import start_server
from tests.support.servers import stop_server

CREDENTIAL_CLASS = "org.archive.modules.credential.HttpAuthenticationCredential"


@pytest.mark.parametrize(
    ("base_url", "domain"),
    [
        ("http://deposit.example.dk", "deposit.example.dk"),
        ("http://deposit.example.dk:80", "deposit.example.dk"),
        ("http://Deposit.Example.DK:8080/", "deposit.example.dk:8080"),
        ("https://deposit.example.dk", "deposit.example.dk:443"),
        ("https://deposit.example.dk:443", "deposit.example.dk:443"),
        ("https://deposit.example.dk:8443", "deposit.example.dk:8443"),
        ("http://127.0.0.1:8000", "127.0.0.1:8000"),
        ("http://[::1]:8000", "[::1]:8000"),
    ],
)
def test_the_domain_is_the_server_key_heritrix_files_the_url_under(base_url: str, domain: str) -> None:
    assert crawler_domain(base_url) == domain


def bean_properties(bean: str) -> dict[str, str]:
    """Parse a credential bean as Spring does: its class and its property values."""
    root = ET.fromstring(bean)  # noqa: S314 - our own bean
    assert root.tag == "bean"
    assert root.attrib == {"class": CREDENTIAL_CLASS}
    assert [p.tag for p in root] == ["property"] * 4
    return {p.attrib["name"]: p.attrib["value"] for p in root}


def test_the_heritrix_bean_holds_the_four_values_xml_escaped() -> None:
    awkward = "a<b>&c\"d'e"
    bean = heritrix_credential("deposit.example.dk:443", "Pligt legal deposit", "crawler-0a1b2c3d", awkward)

    assert bean_properties(bean) == {
        "domain": "deposit.example.dk:443",
        "realm": "Pligt legal deposit",
        "login": "crawler-0a1b2c3d",
        "password": awkward,
    }
    assert awkward not in bean


# -- the release page ---------------------------------------------------------------------------


def released_page(client: FlaskClient, archive: Archive, **kwargs: Any) -> tuple[str, str]:
    """File and approve a request, follow the release link as the institution does: (page, password)."""
    request = archive.access.file(dict(REQUEST_FIELDS))
    approval = archive.access.approve(request.id)
    path = f"/access/release/{approval.release_token}"
    form = client.get(path, **kwargs).get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form)
    assert token, form
    response = client.post(path, data={"csrf_token": token.group(1)}, **kwargs)
    assert response.status_code == 200
    return response.get_data(as_text=True), approval.password


def shown(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</(?:code|a)>', page, re.S)
    assert found, element_id
    return html.unescape(found.group(1))


def test_the_release_page_gives_the_password_entry_and_the_bean_on_base_url(instance: Instance, clock: Clock) -> None:
    settings = load_settings(instance.path, env={"PLIGT_BASE_URL": "https://deposit.example.dk"})
    app = make_app(settings, clock)
    with app.app_context():
        archive = app.extensions["pligt"].archive
    page, password = released_page(app.test_client(), archive)
    credential = archive.access.credentials()[0]

    assert shown(page, "domain") == "deposit.example.dk:443"
    assert shown(page, "realm") == settings.realm
    assert shown(page, "username") == credential.username
    assert shown(page, "password") == password
    assert shown(page, "start-url") == "https://deposit.example.dk/protected/"
    assert bean_properties(shown(page, "heritrix-credential")) == {
        "domain": "deposit.example.dk:443",
        "realm": settings.realm,
        "login": credential.username,
        "password": password,
    }
    assert "NetarchiveSuite" in page


def test_without_base_url_the_release_page_names_the_host_and_port_the_request_came_to(
    instance: Instance, clock: Clock
) -> None:
    app = make_app(instance.settings, clock)
    with app.app_context():
        archive = app.extensions["pligt"].archive
    page, _ = released_page(app.test_client(), archive, base_url="http://arkiv.example.dk:8080")

    assert shown(page, "domain") == "arkiv.example.dk:8080"
    assert shown(page, "start-url") == "http://arkiv.example.dk:8080/protected/"
    assert "127.0.0.1:8000" not in page


def test_behind_a_tls_proxy_the_domain_has_port_443(instance: Instance, clock: Clock) -> None:
    app = make_app(load_settings(instance.path, env={"PLIGT_TRUSTED_PROXIES": "1"}), clock)
    with app.app_context():
        archive = app.extensions["pligt"].archive
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "deposit.example.dk", "X-Forwarded-For": "192.0.2.1"}
    page, _ = released_page(app.test_client(), archive, headers=forwarded)

    assert shown(page, "domain") == "deposit.example.dk:443"
    assert shown(page, "start-url") == "https://deposit.example.dk/protected/"


def test_the_release_page_is_in_danish_too(instance: Instance, clock: Clock) -> None:
    app = make_app(instance.settings, clock)
    with app.app_context():
        archive = app.extensions["pligt"].archive
    page, _ = released_page(app.test_client(), archive, headers={"Accept-Language": "da"})

    assert "Domæne" in page
    assert "Til Heritrix" in page
    assert "adgangskode (Password) med disse fire værdier" in page


# -- pligt init --base-url, approve and rotate --show --json -------------------------------------


def cli_json(*args: str) -> Any:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_init_writes_base_url_and_the_cli_hands_out_what_the_crawler_needs(tmp_path: Path) -> None:
    folder = tmp_path / "instance"
    made = cli_json("init", "--instance", str(folder), "--base-url", "https://deposit.example.dk:8443")
    assert made["created"] is True
    with (folder / "pligt.toml").open("rb") as f:
        assert tomllib.load(f)["base_url"] == "https://deposit.example.dk:8443"

    archive = build_archive(load_settings(folder, env={}))
    request = archive.access.file(dict(REQUEST_FIELDS))
    approved = invoke("approve", str(request.id), "--show", "--json", "--instance", str(folder))
    assert approved.exit_code == 0, approved.stderr
    assert "warning" not in approved.stderr
    shown = json.loads(approved.stdout)

    assert shown["domain"] == "deposit.example.dk:8443"
    assert shown["realm"] == "Pligt legal deposit"
    assert shown["base_url"] == "https://deposit.example.dk:8443"
    assert shown["protected_index"] == "https://deposit.example.dk:8443/protected/"
    assert bean_properties(shown["heritrix_credential"]) == {
        "domain": shown["domain"],
        "realm": shown["realm"],
        "login": shown["username"],
        "password": shown["password"],
    }

    rotated = cli_json("rotate", str(shown["credential"]), "--show", "--instance", str(folder))
    assert rotated["domain"] == "deposit.example.dk:8443"
    assert bean_properties(rotated["heritrix_credential"])["password"] == rotated["password"]
    assert rotated["username"] != shown["username"]

    text = invoke("rotate", str(rotated["credential"]), "--show", "--instance", str(folder)).stdout
    assert "Domain:          deposit.example.dk:8443" in text
    assert f'class="{CREDENTIAL_CLASS}"' in text


def test_without_show_no_password_and_no_bean(tmp_path: Path) -> None:
    folder = tmp_path / "instance"
    cli_json("init", "--instance", str(folder), "--base-url", "https://deposit.example.dk")
    request = build_archive(load_settings(folder, env={})).access.file(dict(REQUEST_FIELDS))

    result = cli_json("approve", str(request.id), "--instance", str(folder))

    assert result["domain"] == "deposit.example.dk:443"
    assert "password" not in result and "heritrix_credential" not in result
    assert result["release_link"].startswith("https://deposit.example.dk/access/release/")


def test_a_bad_base_url_makes_no_instance(tmp_path: Path) -> None:
    folder = tmp_path / "instance"
    result = invoke("init", "--instance", str(folder), "--base-url", "deposit.example.dk")
    assert result.exit_code == 7
    assert "base_url" in result.stderr
    assert not (folder / "secret_key").exists()


def test_without_base_url_or_a_running_server_the_cli_says_its_address_is_a_guess(instance: Instance) -> None:
    request = build_archive(instance.settings).access.file(dict(REQUEST_FIELDS))
    result = invoke("approve", str(request.id), "--show", "--json", "--instance", str(instance.path))
    assert result.exit_code == 0, result.stderr
    assert "base_url is not set and pligt serve is not running" in result.stderr
    assert json.loads(result.stdout)["domain"] == "127.0.0.1:8000"


# -- a real server: what it hands out is where it listens --------------------------------------------


@pytest.mark.server
def test_a_server_without_base_url_hands_out_the_port_it_is_served_on(instance: Instance, tmp_path: Path) -> None:
    archive = build_archive(instance.settings)
    archive.publish([pdf_bytes("offentlig")], filename="brochure.pdf", visibility="public")
    request = archive.access.file(dict(REQUEST_FIELDS))
    server = start_server(instance.path, tmp_path / "server.log")  # a free port, never 8000
    try:
        port = urlsplit(server.url).port
        assert port != 8000
        assert (instance.path / SERVED_AT).read_text().strip() == server.url

        shown = cli_json("approve", str(request.id), "--show", "--instance", str(instance.path))
        assert shown["domain"] == f"127.0.0.1:{port}"
        assert shown["protected_index"] == f"{server.url}/protected/"
        assert requests.get(shown["protected_index"], auth=(shown["username"], shown["password"]), timeout=30).ok

        sitemap = requests.get(f"{server.url}/sitemap.xml", headers={"Host": "localhost"}, timeout=30).text
        locations = re.findall(r"<loc>([^<]+)</loc>", sitemap)
        assert locations and all(loc.startswith(f"{server.url}/") for loc in locations), locations
        latest = requests.get(f"{server.url}/files/brochure/latest", allow_redirects=False, timeout=30)
        assert latest.status_code == 302
        assert latest.headers["Location"] == f"{server.url}/files/brochure/v1/brochure.pdf"

        warc = tmp_path / "export.warc.gz"
        assert invoke("export", "--warc", str(warc), "--instance", str(instance.path)).exit_code == 0
        assert f"{server.url}/files/brochure/v1/brochure.pdf".encode() in _gunzip(warc)
    finally:
        stop_server(server)
    assert not (instance.path / SERVED_AT).exists()


@pytest.mark.server
def test_serve_takes_base_url_for_one_run(instance: Instance, tmp_path: Path) -> None:
    server = start_server(instance.path, tmp_path / "server.log", "--base-url", "https://deposit.example.dk")
    try:
        assert (instance.path / SERVED_AT).read_text().strip() == "https://deposit.example.dk"
        robots = requests.get(f"{server.url}/robots.txt", timeout=30).text
        assert "Sitemap: https://deposit.example.dk/sitemap.xml" in robots
    finally:
        stop_server(server)


def _gunzip(path: Path) -> bytes:
    import gzip

    with gzip.open(path, "rb") as f:
        return f.read()
