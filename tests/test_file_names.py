"""Any file name a desktop allows is published as it is named.

``Prisliste #2 (100%).pdf``, ``Q&A?.pdf``, ``C++ kursus.pdf``: percent-encoded in
URLs (``#`` ``%`` ``?`` would otherwise cut the path), matched by werkzeug's
router and by the fast path alike, and named in ``Content-Disposition`` twice:
exactly, as RFC 6266 ``filename*=UTF-8''…``, and in ASCII for old clients, with
Danish letters spelled out (``Bog om Ærø.epub`` → ``Bog om AEroe.epub``) rather
than dropped. One refused file of a ``pligt add`` batch no longer stops the rest.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest
import requests
from flask import Flask
from flask import request
from flask import request_started
from flask import url_for
from flask.testing import FlaskClient

from pligt.core import Archive
from pligt.core.errors import InvalidInput
from pligt.core.names import check_filename
from pligt.disposition import ascii_name
from pligt.disposition import content_disposition
from pligt.instance import build_archive
from pligt.links import version_path
from pligt.web.fastpath import FastDownloads
from tests.support.access import issue_credential
from tests.support.app import Instance
from tests.support.cli import invoke
from tests.support.data import elf_bytes
from tests.support.data import pdf_bytes
from tests.support.servers import start_server
from tests.support.servers import stop_server

DESKTOP_NAMES = [
    "Prisliste #2 (100%).pdf",
    "Q&A?.pdf",
    "C++ kursus.pdf",
    "Bog om Ærø.pdf",
    "Årsrapport 2026 – endelig.pdf",
    '50%AB; "citat" <1> [2] {3} a:b*|.pdf',
    "%2e%2e.pdf",
]


@pytest.mark.parametrize("name", DESKTOP_NAMES)
def test_desktop_names_are_accepted_as_they_are(name: str) -> None:
    assert check_filename(name) == name


@pytest.mark.parametrize(
    ("name", "says"),
    [("a/b.pdf", "/"), ("a\\b.pdf", "\\"), ("x\x00.pdf", "control"), (".skjult.pdf", "dot"), (" a.pdf", "white")],
)
def test_what_no_url_segment_can_hold_is_still_refused(name: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(says)):
        check_filename(name)


# -- Content-Disposition -----------------------------------------------------------------------


def disposition_names(header: str) -> tuple[str, str | None]:
    """Return (filename, filename*) as a client reads them: the quoted string unescaped, the star decoded."""
    assert header.startswith("inline; filename=")
    rest = header[len("inline; filename=") :]
    if rest.startswith('"'):
        quoted = re.match(r'"((?:[^"\\]|\\.)*)"', rest)
        assert quoted, header
        fallback, rest = re.sub(r"\\(.)", r"\1", quoted.group(1)), rest[quoted.end() :]
    else:
        fallback, _, rest = rest.partition(";")
        rest = ";" + rest if rest else ""
    if not rest:
        return fallback, None
    star = re.fullmatch(r"; filename\*=UTF-8''([A-Za-z0-9!#$&+\-.^_`|~%]+)", rest)
    assert star, header
    return fallback, unquote(star.group(1), encoding="utf-8", errors="strict")


@pytest.mark.parametrize(
    ("name", "fallback"),
    [
        ("Bog om Ærø.epub", "Bog om AEroe.epub"),
        ("ÆØÅ æøå.pdf", "AEOEAA aeoeaa.pdf"),
        ("Café crème Ångström.pdf", "Cafe creme AAngstrom.pdf"),
        ("Straße.pdf", "Strasse.pdf"),
        ("报告.pdf", "__.pdf"),
        ("Prisliste #2 (100%).pdf", "Prisliste #2 (100%).pdf"),
        ('50%AB "citat".pdf', '50_AB "citat".pdf'),
    ],
)
def test_the_original_name_in_filename_star_and_an_ascii_fallback(name: str, fallback: str) -> None:
    header = content_disposition(name)
    assert header.isascii()
    assert disposition_names(header) == (fallback, name)


@pytest.mark.parametrize("name", ["brochure.pdf", "Q&A?.pdf", "C++ kursus.pdf"])
def test_a_plain_ascii_name_comes_as_filename_alone(name: str) -> None:
    assert disposition_names(content_disposition(name)) == (name, None)
    assert content_disposition("brochure.pdf") == "inline; filename=brochure.pdf"


def test_the_ascii_name_spells_out_danish_letters() -> None:
    assert ascii_name("Bog om Ærø.epub") == "Bog om AEroe.epub"
    assert ascii_name("Blåbærgrød") == "Blaabaergroed"


# -- URLs: the links, werkzeug's router, and both download paths --------------------------------


@pytest.fixture
def published(archive: Archive) -> dict[str, str]:
    """Every desktop name published publicly, and its link's path."""
    paths = {}
    for name in DESKTOP_NAMES:
        version = archive.publish([pdf_bytes(name)], filename=name, visibility="public").version
        paths[name] = version_path(version)
    return paths


def test_links_are_percent_encoded_exactly_as_url_for_makes_them(
    app: Flask, archive: Archive, published: dict[str, str]
) -> None:
    for version in archive.versions():
        path = published[version.filename]
        assert "#" not in path and "?" not in path
        assert unquote(path.rsplit("/", 1)[1]) == version.filename
        with app.test_request_context():
            made = url_for("public.version_file", slug=version.slug, number=version.number, filename=version.filename)
        assert made == path


def test_each_name_is_served_by_both_paths_with_the_same_headers(
    app: Flask, client: FlaskClient, published: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    through_flask: list[str] = []
    request_started.connect(lambda sender, **extra: through_flask.append(request.path), app, weak=False)
    front = client.get("/").get_data(as_text=True)
    hrefs = {html.unescape(h) for h in re.findall(r'href="([^"]+)"', front)}
    for name, path in published.items():
        assert path in hrefs, name
        through_flask.clear()
        fast = client.get(path)  # the fast path: VERSION_PATTERN on the unquoted PATH_INFO
        assert through_flask == [], name
        with monkeypatch.context() as patch:
            patch.setattr(FastDownloads, "_serve", lambda self, environ, start_response: None)
            slow = client.get(path)  # werkzeug's router, and send_file
        assert through_flask == [f"/files/{path.split('/')[2]}/v1/{name}"], name
        assert (fast.status_code, slow.status_code) == (200, 200), name
        assert fast.data == slow.data == pdf_bytes(name)
        assert fast.headers["Content-Disposition"] == slow.headers["Content-Disposition"]
        fallback, exact = disposition_names(fast.headers["Content-Disposition"])
        assert (exact or fallback) == name
        assert fallback.isascii()


@pytest.mark.external
@pytest.mark.server
def test_a_real_server_serves_them_to_requests_and_to_wget(instance: Instance, tmp_path: Path) -> None:
    archive = build_archive(instance.settings)
    for name in DESKTOP_NAMES:
        archive.publish([pdf_bytes(name)], filename=name, visibility="protected")
    credential, password = issue_credential(archive)
    server = start_server(instance.path, tmp_path / "server.log")
    try:
        index = requests.get(f"{server.url}/protected/", auth=(credential.username, password), timeout=30)
        assert index.status_code == 200
        hrefs = [html.unescape(h) for h in re.findall(r'href="(/files/[^"]+)"', index.text)]
        assert len(hrefs) == len(DESKTOP_NAMES)
        for href in hrefs:
            for headers in ({}, {"Range": "bytes=0-"}, {"If-None-Match": '"other"'}):
                response = requests.get(
                    server.url + href, auth=(credential.username, password), headers=headers, timeout=30
                )
                assert response.status_code in (200, 206), (href, headers)
                fallback, exact = disposition_names(response.headers["Content-Disposition"])
                name = exact or fallback
                assert unquote(href.rsplit("/", 1)[1]) == name
                assert response.content == pdf_bytes(name)

        # wget, as a crawler without Heritrix would: each file saved under its own name.
        target = tmp_path / "wget"
        urls = [server.url + href for href in hrefs]
        done = subprocess.run(
            [
                "wget",
                "--no-verbose",
                "--tries=1",
                "--auth-no-challenge",
                f"--user={credential.username}",
                f"--password={password}",
                "--restrict-file-names=nocontrol",
                "--directory-prefix",
                str(target),
                *urls,
            ],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        saved = {p.name: p.read_bytes() for p in target.iterdir()}
        # wget decodes a file name twice: %252e (a literal "%2e") is saved as "." (wget's doing;
        # the URL is right, as requests above shows). Every other name is saved as it is.
        wget_safe = [name for name in DESKTOP_NAMES if not re.search(r"%[0-9A-Fa-f]{2}", name)]
        assert len(wget_safe) == len(DESKTOP_NAMES) - 2
        for name in wget_safe:
            assert saved[name] == pdf_bytes(name), sorted(saved)
    finally:
        stop_server(server)


# -- pligt add: each file on its own ---------------------------------------------------------------


def test_add_publishes_every_good_file_of_a_batch_and_says_which_failed(instance: Instance, tmp_path: Path) -> None:
    good = []
    for name in ("Prisliste #2 (100%).pdf", "Q&A?.pdf", "C++ kursus.pdf"):
        (tmp_path / name).write_bytes(pdf_bytes(name))
        good.append(str(tmp_path / name))
    bad = tmp_path / "program.pdf"
    bad.write_bytes(elf_bytes())

    result = invoke("add", "--instance", str(instance.path), "--public", good[0], str(bad), *good[1:], "--json")

    assert result.exit_code == 3  # content refused: the failure's own code
    outcomes = json.loads(result.stdout)
    assert [o["file"] for o in outcomes] == [good[0], str(bad), *good[1:]]
    assert [o.get("filename") for o in outcomes] == ["Prisliste #2 (100%).pdf", None, "Q&A?.pdf", "C++ kursus.pdf"]
    assert outcomes[1]["exit_code"] == 3 and outcomes[1]["error"]
    assert f"pligt: error: {bad}:" in result.stderr
    assert "1 of 4 files were not published" in result.stderr
    listed = json.loads(invoke("items", "--instance", str(instance.path), "--json").stdout)
    assert sorted(v["filename"] for v in listed) == sorted(Path(p).name for p in good)

    text = invoke("add", "--instance", str(instance.path), str(bad))
    assert text.exit_code == 3
    assert text.stderr.startswith("pligt: error:")
    assert "published" not in text.stdout


def test_add_with_failures_of_different_kinds_exits_1(instance: Instance, tmp_path: Path) -> None:
    refused = tmp_path / "program.pdf"
    refused.write_bytes(elf_bytes())
    dotted = tmp_path / ".skjult.pdf"
    dotted.write_bytes(pdf_bytes())
    fine = tmp_path / "fin.pdf"
    fine.write_bytes(pdf_bytes())

    result = invoke("add", "--instance", str(instance.path), str(refused), str(dotted), str(fine))

    assert result.exit_code == 1
    assert "published fin version 1" in result.stdout
    assert "2 of 3 files were not published" in result.stderr
