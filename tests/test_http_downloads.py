"""What anyone (the deposit crawler first of all) gets from the public side over HTTP:
the front page, robots.txt, the sitemap, /healthz and the downloads themselves."""

from __future__ import annotations

import hashlib
import http.client
import random
import shutil
import threading
import time
import unicodedata
import xml.etree.ElementTree as ET
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import unquote
from urllib.parse import urlsplit

import requests
from flask.testing import FlaskClient

from pligt.core import Archive
from pligt.core.models import Version
from pligt.core.storage import LocalStorage
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.data import pdf_bytes
from tests.support.pages import links
from tests.support.servers import Server

SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
DANISH_NAME = "Årsberetning for æbler og øer.pdf"


def publish(archive: Archive, data: bytes, filename: str, visibility: str = "public", **kwargs: Any) -> Version:
    return archive.publish([data], filename=filename, visibility=visibility, **kwargs).version


def sitemap_entries(client: FlaskClient) -> dict[str, str | None]:
    """Return {loc: lastmod} of the sitemap."""
    response = client.get("/sitemap.xml")
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    root = ET.fromstring(response.data)  # noqa: S314 - our own sitemap
    entries = {}
    for url in root.findall(f"{SITEMAP_NS}url"):
        lastmod = url.find(f"{SITEMAP_NS}lastmod")
        loc = url.findtext(f"{SITEMAP_NS}loc")
        assert loc is not None, ET.tostring(url)
        entries[unquote(loc)] = None if lastmod is None else lastmod.text
    return entries


def http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


# -- the front page, robots.txt, the sitemap -------------------------------------------


def test_index_lists_public_versions_as_plain_links_with_details(client: FlaskClient, archive: Archive) -> None:
    data = pdf_bytes("brochure")
    version = publish(archive, data, "brochure.pdf", title="Our brochure")

    response = client.get("/")

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "/files/our-brochure/v1/brochure.pdf" in links(page)
    assert "Our brochure" in page
    assert f"{len(data)} Bytes" in page
    assert "application/pdf" in page
    assert "2026-01-05" in page
    assert version.sha256 == hashlib.sha256(data).hexdigest()


def test_the_index_shows_a_version_published_by_another_process_at_once(
    client: FlaskClient, instance: Instance
) -> None:
    from pligt.instance import build_archive

    assert "/files/news/v1/news.pdf" not in links(client.get("/").get_data(as_text=True))  # rendered, kept
    cli = build_archive(instance.settings)  # as `pligt add` would, beside the running server
    cli.publish([pdf_bytes("news")], filename="news.pdf", visibility="public")
    assert "/files/news/v1/news.pdf" in links(client.get("/").get_data(as_text=True))


def test_index_links_to_the_protected_index_and_the_access_page(client: FlaskClient) -> None:
    hrefs = links(client.get("/").get_data(as_text=True))
    assert "/protected/" in hrefs
    assert "/access/" in hrefs


def test_index_does_not_list_protected_items(client: FlaskClient, archive: Archive) -> None:
    publish(archive, pdf_bytes("open"), "open.pdf")
    publish(archive, pdf_bytes("secret"), "secret-plan.pdf", visibility="protected", title="Secret plan")

    page = client.get("/").get_data(as_text=True)

    assert "/files/open/v1/open.pdf" in links(page)
    assert not [href for href in links(page) if "secret" in href]
    assert "Secret plan" not in page
    assert "secret-plan.pdf" not in page


def test_robots_txt_allows_crawling_and_names_the_sitemap(client: FlaskClient) -> None:
    response = client.get("/robots.txt")

    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    lines = response.get_data(as_text=True).splitlines()
    assert "User-agent: *" in lines
    assert "Allow: /" in lines
    assert "Disallow: /" not in lines
    assert "Sitemap: http://localhost/sitemap.xml" in lines


def test_sitemap_lists_public_versions_with_lastmod_and_the_protected_index(
    client: FlaskClient, archive: Archive, clock: Clock
) -> None:
    publish(archive, pdf_bytes("one"), "one.pdf")
    clock.advance(days=1)
    publish(archive, pdf_bytes("two"), DANISH_NAME, slug="aarsberetning")
    publish(archive, pdf_bytes("hidden"), "hidden.pdf", visibility="protected")

    entries = sitemap_entries(client)

    assert entries["http://localhost/files/one/v1/one.pdf"] == "2026-01-05T12:00:00Z"
    assert entries[f"http://localhost/files/aarsberetning/v1/{DANISH_NAME}"] == "2026-01-06T12:00:00Z"
    assert "http://localhost/protected/" in entries
    assert "http://localhost/" in entries
    assert not [loc for loc in entries if "hidden" in loc]


# -- /healthz ------------------------------------------------------------------------------


def test_healthz_answers_200_when_catalog_and_storage_work(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_healthz_answers_503_with_json_when_the_storage_folder_is_unusable(
    client: FlaskClient, instance: Instance
) -> None:
    files = instance.path / "files"
    shutil.rmtree(files)
    files.write_text("not a folder")

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert "files" in body["reason"]


# -- downloads ------------------------------------------------------------------------------


def test_download_has_type_length_dates_strong_etag_and_ranges(
    client: FlaskClient, archive: Archive, clock: Clock
) -> None:
    data = pdf_bytes("headers", pad=1000)
    publish(archive, data, "brochure.pdf")

    response = client.get("/files/brochure/v1/brochure.pdf")

    assert response.status_code == 200
    assert response.data == data
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["Last-Modified"] == http_date(clock.now)
    assert response.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Disposition"] == "inline; filename=brochure.pdf"


def test_a_small_file_damaged_in_storage_is_refused_not_handed_out(client: FlaskClient, archive: Archive) -> None:
    data = pdf_bytes("damaged", pad=1000)
    version = publish(archive, data, "brochure.pdf")
    assert isinstance(archive.storage, LocalStorage)
    stored = archive.storage.root / version.storage_key
    stored.chmod(0o644)
    stored.write_bytes(data[:-4] + b"XXXX")  # same size, other bytes

    for headers in ({}, {"If-None-Match": '"through-flask"'}, {"Accept": "application/json"}):
        response = client.get("/files/brochure/v1/brochure.pdf", headers=headers)
        assert response.status_code == 503, headers
        assert data[:100] not in response.data
    assert "differ from the deposit" in response.get_json()["description"]

    stored.write_bytes(data)  # repaired (from a backup, say): served again, nothing was lost
    assert client.get("/files/brochure/v1/brochure.pdf").data == data
    assert [v.id for v in archive.versions()] == [version.id]


def test_text_download_names_its_charset(client: FlaskClient, archive: Archive) -> None:
    data = "Hej med dig og på gensyn\n".encode() * 10
    publish(archive, data, "hilsen.txt")

    response = client.get("/files/hilsen/v1/hilsen.txt")

    assert response.status_code == 200
    assert response.data == data
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_danish_file_name_survives_in_url_and_content_disposition(client: FlaskClient, archive: Archive) -> None:
    data = pdf_bytes("æøå")
    publish(archive, data, DANISH_NAME, slug="aarsberetning")
    (href,) = [h for h in links(client.get("/").get_data(as_text=True)) if h.startswith("/files/aarsberetning/v")]
    assert href == f"/files/aarsberetning/v1/{DANISH_NAME}"

    response = client.get(f"/files/aarsberetning/v1/{DANISH_NAME}")

    assert response.status_code == 200
    assert response.data == data
    disposition = response.headers["Content-Disposition"]
    params = dict(part.strip().split("=", 1) for part in disposition.split(";")[1:])
    assert params["filename*"].startswith("UTF-8''")
    assert unquote(params["filename*"][len("UTF-8''") :], encoding="utf-8") == DANISH_NAME
    assert unquote(href.rsplit("/", 1)[1]) == DANISH_NAME
    assert params["filename"].isascii()

    decomposed = unicodedata.normalize("NFD", DANISH_NAME)
    assert decomposed != DANISH_NAME
    same = client.get(f"/files/aarsberetning/v1/{decomposed}")
    assert same.status_code == 200
    assert same.data == data


def test_single_range_gives_206_with_those_bytes(client: FlaskClient, archive: Archive) -> None:
    data = pdf_bytes("range", pad=500)
    publish(archive, data, "range.pdf")

    response = client.get("/files/range/v1/range.pdf", headers={"Range": "bytes=10-19"})

    assert response.status_code == 206
    assert response.data == data[10:20]
    assert response.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert response.headers["Content-Length"] == "10"

    suffix = client.get("/files/range/v1/range.pdf", headers={"Range": "bytes=-7"})
    assert suffix.status_code == 206
    assert suffix.data == data[-7:]
    assert suffix.headers["Content-Range"] == f"bytes {len(data) - 7}-{len(data) - 1}/{len(data)}"


def test_unsatisfiable_range_gives_416_naming_the_size(client: FlaskClient, archive: Archive) -> None:
    data = pdf_bytes("short")
    publish(archive, data, "short.pdf")

    response = client.get("/files/short/v1/short.pdf", headers={"Range": f"bytes={len(data) + 10}-{len(data) + 20}"})

    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(data)}"
    assert data not in response.data


def test_malformed_range_header_gives_the_whole_file(client: FlaskClient, archive: Archive) -> None:
    data = pdf_bytes("malformed")
    publish(archive, data, "whole.pdf")

    for header in ("bytes=abc-def", "pages=1-2", "bytes=20-10", "bytes", "bytes=--5", "bytes=0-1,5-6"):
        response = client.get("/files/whole/v1/whole.pdf", headers={"Range": header})
        assert response.status_code == 200, header
        assert response.data == data, header
        assert response.headers["Content-Length"] == str(len(data))


def test_head_gives_the_headers_without_a_body(client: FlaskClient, archive: Archive) -> None:
    data = pdf_bytes("head")
    publish(archive, data, "head.pdf")

    response = client.head("/files/head/v1/head.pdf")

    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'


def test_if_none_match_with_the_etag_gives_304(client: FlaskClient, archive: Archive) -> None:
    data = pdf_bytes("etag")
    publish(archive, data, "etag.pdf")
    etag = client.get("/files/etag/v1/etag.pdf").headers["ETag"]

    response = client.get("/files/etag/v1/etag.pdf", headers={"If-None-Match": etag})

    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag

    other = client.get("/files/etag/v1/etag.pdf", headers={"If-None-Match": '"0000"'})
    assert other.status_code == 200
    assert other.data == data


def test_if_modified_since_gives_304_unless_changed_since(client: FlaskClient, archive: Archive, clock: Clock) -> None:
    data = pdf_bytes("ims")
    publish(archive, data, "ims.pdf")

    response = client.get("/files/ims/v1/ims.pdf", headers={"If-Modified-Since": http_date(clock.now)})
    assert response.status_code == 304
    assert response.data == b""

    earlier = clock.now.replace(year=2025)
    response = client.get("/files/ims/v1/ims.pdf", headers={"If-Modified-Since": http_date(earlier)})
    assert response.status_code == 200
    assert response.data == data


def test_malformed_conditional_headers_give_the_whole_file(client: FlaskClient, archive: Archive) -> None:
    data = pdf_bytes("conditional")
    publish(archive, data, "cond.pdf")

    for headers in (
        {"If-Modified-Since": "yesterday, sort of"},
        {"If-Modified-Since": "Mon, 99 Foo 2026 25:61:61 GMT"},
        {"If-None-Match": '"unterminated'},
        {"If-None-Match": "W/"},
        {"If-None-Match": ",,,"},
    ):
        response = client.get("/files/cond/v1/cond.pdf", headers=headers)
        assert response.status_code == 200, headers
        assert response.data == data, headers


def test_unknown_slug_or_version_gives_404(client: FlaskClient, archive: Archive, instance: Instance) -> None:
    publish(archive, pdf_bytes("known"), "known.pdf")

    assert client.get("/files/known/v2/known.pdf").status_code == 404
    assert client.get("/files/known/v0/known.pdf").status_code == 404
    assert client.get("/files/known/vx/known.pdf").status_code == 404
    # An unknown item could be a protected one: without credentials it is challenged like one
    # (tests/test_small_attacks.py); with them, it is plainly not there.
    assert client.get("/files/unknown/v1/known.pdf").status_code == 401
    assert client.get("/files/unknown/v1/known.pdf", auth=instance.owner_auth).status_code == 404
    assert client.get("/files/unknown/latest", auth=instance.owner_auth).status_code == 404


def test_errors_answer_json_when_asked(client: FlaskClient, instance: Instance) -> None:
    response = client.get("/files/unknown/v1/x.pdf", headers={"Accept": "application/json"}, auth=instance.owner_auth)

    assert response.status_code == 404
    body = response.get_json()
    assert body["code"] == 404
    assert "unknown" in body["description"]


def test_wrong_file_name_in_url_gives_404(client: FlaskClient, archive: Archive) -> None:
    publish(archive, pdf_bytes("named"), "named.pdf")

    assert client.get("/files/named/v1/other.pdf").status_code == 404
    assert client.get("/files/named/v1/NAMED.pdf").status_code == 404
    assert client.get("/files/named/v1/named.pdf").status_code == 200


def test_latest_redirects_once_to_the_absolute_url_of_the_newest_version(client: FlaskClient, archive: Archive) -> None:
    publish(archive, pdf_bytes("v1"), "report.pdf")
    publish(archive, pdf_bytes("v2"), "report-2.pdf", slug="report")

    response = client.get("/files/report/latest")

    assert response.status_code == 302
    assert response.headers["Location"] == "http://localhost/files/report/v2/report-2.pdf"
    target = client.get(urlsplit(response.headers["Location"]).path)
    assert target.status_code == 200
    assert target.data == pdf_bytes("v2")


def test_older_version_stays_served_and_listed_after_a_new_one(client: FlaskClient, archive: Archive) -> None:
    old, new = pdf_bytes("old"), pdf_bytes("new")
    publish(archive, old, "price-list.pdf")
    publish(archive, new, "price-list.pdf", slug="price-list")

    assert client.get("/files/price-list/v1/price-list.pdf").data == old
    assert client.get("/files/price-list/v2/price-list.pdf").data == new
    hrefs = links(client.get("/").get_data(as_text=True))
    assert "/files/price-list/v1/price-list.pdf" in hrefs
    assert "/files/price-list/v2/price-list.pdf" in hrefs
    entries = sitemap_entries(client)
    assert "http://localhost/files/price-list/v1/price-list.pdf" in entries
    assert "http://localhost/files/price-list/v2/price-list.pdf" in entries


def test_version_withdrawn_after_retention_is_gone_and_unlisted(
    client: FlaskClient, archive: Archive, clock: Clock
) -> None:
    publish(archive, pdf_bytes("first"), "offer.pdf")
    clock.advance(days=184)
    publish(archive, pdf_bytes("second"), "offer.pdf", slug="offer")
    archive.withdraw("offer", 1)

    response = client.get("/files/offer/v1/offer.pdf")

    assert response.status_code == 410
    assert client.get("/files/offer/v2/offer.pdf").status_code == 200
    hrefs = links(client.get("/").get_data(as_text=True))
    assert "/files/offer/v1/offer.pdf" not in hrefs
    assert "/files/offer/v2/offer.pdf" in hrefs
    entries = sitemap_entries(client)
    assert "http://localhost/files/offer/v1/offer.pdf" not in entries
    assert "http://localhost/files/offer/v2/offer.pdf" in entries
    assert client.get("/files/offer/latest").headers["Location"] == "http://localhost/files/offer/v2/offer.pdf"


def test_item_withdrawn_whole_after_retention_is_gone(client: FlaskClient, archive: Archive, clock: Clock) -> None:
    publish(archive, pdf_bytes("only"), "only.pdf")
    clock.advance(days=184)
    archive.withdraw("only", 1)

    assert client.get("/files/only/v1/only.pdf").status_code == 410
    assert client.get("/files/only/latest").status_code in (404, 410)
    assert "/files/only/v1/only.pdf" not in links(client.get("/").get_data(as_text=True))


def test_path_traversal_never_reaches_a_file_outside(client: FlaskClient, archive: Archive, instance: Instance) -> None:
    publish(archive, pdf_bytes("inside"), "inside.pdf")
    (instance.path / "outside.txt").write_text("outside secret")

    for path in (
        "/files/..%2f..%2fetc/v1/passwd",
        "/files/x/v1/..%2f..",
        "/files/x/v1/..",
        "/files/inside/v1/..%2f..%2f..%2fcatalog.sqlite3",
        "/files/inside/v1/..%2f..%2foutside.txt",
        "/files/%2e%2e/v1/outside.txt",
        "/files/inside/v1/%2e%2e",
        "/files/inside/v1/inside.pdf%00",
    ):
        response = client.get(path)
        assert 400 <= response.status_code < 500, path
        assert b"root:" not in response.data
        assert b"outside secret" not in response.data
        assert b"SQLite format" not in response.data


# -- security headers ----------------------------------------------------------------------


def test_security_headers_on_pages_files_and_errors(client: FlaskClient, archive: Archive) -> None:
    publish(archive, pdf_bytes("headers"), "sec.pdf")

    for path in ("/", "/robots.txt", "/sitemap.xml", "/access/", "/files/sec/v1/sec.pdf", "/files/none/v1/x.pdf"):
        response = client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert response.headers["X-Frame-Options"] == "DENY", path
        assert response.headers["Referrer-Policy"] == "no-referrer", path
        assert "default-src 'none'" in response.headers["Content-Security-Policy"], path
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], path

    assert "sandbox" in client.get("/files/sec/v1/sec.pdf").headers["Content-Security-Policy"]


def test_deposited_html_is_sandboxed(client: FlaskClient, archive: Archive) -> None:
    data = b"<!DOCTYPE html>\n<html><head><title>x</title></head><body><script>alert(1)</script></body></html>\n"
    publish(archive, data, "page.html")

    response = client.get("/files/page/v1/page.html")

    assert response.status_code == 200
    assert response.data == data
    assert response.mimetype == "text/html"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert "script-src" not in response.headers["Content-Security-Policy"]


# -- a real server ---------------------------------------------------------------------------


def _publish_over_api(server: Server, instance: Instance, data: bytes, filename: str, **params: str) -> dict[str, Any]:
    response = requests.post(
        server.url + "/api/items",
        params={"filename": filename, "visibility": "public", **params},
        data=data,
        auth=instance.owner_auth,
        timeout=30,
    )
    assert response.status_code == 201, response.text
    version: dict[str, Any] = response.json()["version"]
    return version


def test_real_server_streams_a_large_file_byte_identical(server: Server, instance: Instance) -> None:
    data = random.Random(5).randbytes(5 * 1024 * 1024)
    version = _publish_over_api(server, instance, data, "big.bin")

    digest = hashlib.sha256()
    size = 0
    with requests.get(version["url"], stream=True, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["Content-Length"] == str(len(data))
        for chunk in response.iter_content(256 * 1024):
            digest.update(chunk)
            size += len(chunk)

    assert size == len(data)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest() == version["sha256"]


def test_real_server_slow_readers_do_not_block_others(server: Server, instance: Instance) -> None:
    data = random.Random(7).randbytes(5 * 1024 * 1024)
    version = _publish_over_api(server, instance, data, "slow.bin")
    started = threading.Barrier(3, timeout=20)
    release = threading.Event()
    results: list[str] = []
    errors: list[BaseException] = []

    def slow_reader() -> None:
        try:
            with requests.get(version["url"], stream=True, timeout=30) as response:
                digest = hashlib.sha256()
                chunks = response.iter_content(64 * 1024)
                for _ in range(4):
                    digest.update(next(chunks))
                    time.sleep(0.05)
                started.wait()
                release.wait(20)
                for chunk in chunks:
                    digest.update(chunk)
                results.append(digest.hexdigest())
        except BaseException as e:  # reported by the test below
            errors.append(e)
            started.abort()

    readers = [threading.Thread(target=slow_reader) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        started.wait()
        began = time.monotonic()
        quick = requests.get(server.url + "/", timeout=5)
        elapsed = time.monotonic() - began
    finally:
        release.set()
        for reader in readers:
            reader.join(30)

    assert quick.status_code == 200
    assert elapsed < 2
    assert not errors
    assert results == [hashlib.sha256(data).hexdigest()] * 2


def test_real_server_refuses_path_traversal(server: Server, instance: Instance) -> None:
    (instance.path / "outside.txt").write_text("outside secret")
    host = urlsplit(server.url)
    for path in (
        "/files/..%2f..%2fetc/v1/passwd",
        "/files/x/v1/..%2f..",
        "/files/../../etc/v1/passwd",
        "/files/%2e%2e/%2e%2e/outside.txt",
        "/files/x/v1/..%2f..%2f..%2foutside.txt",
    ):
        connection = http.client.HTTPConnection(host.netloc, timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        assert 400 <= response.status < 500, path
        assert b"root:" not in body
        assert b"outside secret" not in body
