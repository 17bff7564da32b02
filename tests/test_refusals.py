"""Refusals in the reader's language: the core hands over the facts, the service words them.

The core's errors carry what the bytes are, what the name promises, the
retention date and the limit; the console and the pages say it in Danish or
English; the CLI and the owner API keep the core's English sentence.
"""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from pligt.core import Archive
from pligt.core.errors import ContentRefused
from pligt.core.errors import RetentionActive
from pligt.core.errors import TooLarge
from tests.support.app import Instance
from tests.support.cli import invoke
from tests.support.data import elf_bytes
from tests.support.data import pdf_bytes
from tests.support.data import zip_bytes


def _sign_in(client: FlaskClient, instance: Instance, language: str) -> str:
    """Sign in, in ``language``; return a CSRF token for the console's forms."""
    client.get(f"/admin/login?lang={language}")
    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token
    signed_in = client.post("/admin/login", data={"password": instance.owner.password, "csrf_token": token.group(1)})
    assert signed_in.status_code == 302
    upload = client.get("/admin/upload").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', upload)
    assert token
    return token.group(1)


def _raw_upload(client: FlaskClient, token: str, filename: str, data: bytes) -> tuple[int, dict[str, object]]:
    response = client.post(
        "/admin/upload/raw",
        query_string={"filename": filename, "visibility": "public"},
        data=data,
        headers={"X-CSRFToken": token, "Accept": "application/json"},
    )
    return response.status_code, response.get_json()


def test_the_core_hands_over_the_facts(archive: Archive) -> None:
    with pytest.raises(ContentRefused) as refused:
        archive.publish([zip_bytes()], filename="Prisliste 2026.pdf")
    e = refused.value
    assert (e.key, e.filename, e.mime, e.extension, e.expected) == (
        ContentRefused.NOT_PROMISED,
        "Prisliste 2026.pdf",
        "application/zip",
        "pdf",
        ("application/pdf",),
    )
    assert e.found.startswith("Zip archive")
    # The English sentence is the one the CLI has always printed.
    assert e.message == (
        f"Prisliste 2026.pdf: refused, the bytes are {e.found} (application/zip), "
        "not what .pdf promises (application/pdf)"
    )

    with pytest.raises(ContentRefused) as refused:
        archive.publish([b""], filename="tom.pdf")
    assert (refused.value.key, refused.value.message) == (ContentRefused.EMPTY, "tom.pdf: the file is empty")

    with pytest.raises(ContentRefused) as refused:
        archive.publish([elf_bytes()], filename="værktøj")
    assert refused.value.key == ContentRefused.EXECUTABLE
    assert "executable" in refused.value.found.lower() or "ELF" in refused.value.found

    with pytest.raises(ContentRefused) as refused:
        archive.publish([pdf_bytes()], filename="noter.txt")
    assert (refused.value.key, refused.value.extension) == (ContentRefused.NOT_TEXT, "txt")

    version = archive.publish([pdf_bytes()], filename="brochure.pdf").version
    with pytest.raises(RetentionActive) as retained:
        archive.withdraw(version.slug, version.number)
    assert (retained.value.slug, retained.value.number) == (version.slug, version.number)
    assert retained.value.retain_until == version.retain_until

    archive.max_upload_bytes = 1000
    with pytest.raises(TooLarge) as too_large:
        archive.publish([b"%PDF-1.4\n" + b"x" * 2000], filename="stor.pdf")
    assert (too_large.value.limit, too_large.value.size) == (1000, None)
    assert too_large.value.message == "the upload is larger than the limit of 1,000 bytes"


def test_the_console_words_a_refusal_in_danish(client: FlaskClient, instance: Instance) -> None:
    token = _sign_in(client, instance, "da")
    status, body = _raw_upload(client, token, "Prisliste 2026.pdf", zip_bytes())
    assert status == 415
    error = str(body["error"])
    assert error.startswith("Prisliste 2026.pdf: indholdet er Zip archive"), error
    assert error.endswith("(application/zip), ikke det, som .pdf lover (application/pdf).")
    status, body = _raw_upload(client, token, "tom.pdf", b"")
    assert (status, body["error"]) == (415, "tom.pdf: filen er tom.")

    # The page without the script (a multipart form) says the same.
    page = client.post(
        "/admin/upload",
        data={"csrf_token": token, "visibility": "public", "files": [(io.BytesIO(b""), "tom.pdf")]},
        content_type="multipart/form-data",
    )
    assert page.status_code == 400
    assert "tom.pdf: filen er tom." in page.get_data(as_text=True)


def test_the_console_words_a_refusal_in_english(client: FlaskClient, instance: Instance) -> None:
    token = _sign_in(client, instance, "en")
    status, body = _raw_upload(client, token, "Prisliste 2026.pdf", zip_bytes())
    assert status == 415
    assert str(body["error"]).endswith("(application/zip), not what .pdf promises (application/pdf).")


def test_retention_and_the_limit_in_danish(
    client: FlaskClient, instance: Instance, archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _sign_in(client, instance, "da")
    version = archive.publish([pdf_bytes()], filename="brochure.pdf").version
    withdrawn = client.post(
        f"/admin/items/{version.slug}/versions/{version.number}/withdraw", data={"csrf_token": token}
    )
    assert withdrawn.status_code == 302
    items = client.get("/admin/").get_data(as_text=True)
    assert f"brochure version 1 bevares til {version.retain_until:%Y-%m-%d %H:%M} UTC" in items

    services = client.application.extensions["pligt"]
    monkeypatch.setattr(services, "settings", dataclasses.replace(services.settings, max_upload_bytes=1000))
    response = client.post(
        "/admin/upload/raw",
        query_string={"filename": "stor.pdf"},
        data=b"%PDF-1.4\n" + b"x" * 1991,
        headers={"X-CSRFToken": token, "Accept": "application/json"},
    )
    assert response.status_code == 413
    assert response.get_json()["error"] == "Filen på 2.000 bytes er større end grænsen på 1.000 bytes."


def test_the_owner_api_and_the_cli_keep_english(client: FlaskClient, instance: Instance, tmp_path: Path) -> None:
    refused = client.post(
        "/api/items?filename=Prisliste.pdf",
        data=zip_bytes(),
        auth=instance.owner_auth,
        headers={"Accept-Language": "da"},
    )
    assert refused.status_code == 415
    assert "refused, the bytes are Zip archive" in refused.get_json()["description"]

    bad = tmp_path / "Prisliste.pdf"
    bad.write_bytes(zip_bytes())
    added = invoke("add", "--instance", str(instance.path), str(bad), env={"LANG": "da_DK.UTF-8"})
    assert added.exit_code == 3
    assert "refused, the bytes are Zip archive" in added.stderr


@pytest.mark.parametrize(
    ("language", "said"), [("da", "brochure version 1 hedder b.pdf."), ("en", "brochure version 1 is called b.pdf.")]
)
def test_a_wrong_file_name_is_told_in_the_readers_language(
    client: FlaskClient, archive: Archive, language: str, said: str
) -> None:
    archive.publish([pdf_bytes()], filename="b.pdf", slug="brochure", visibility="public")
    page = client.get("/files/brochure/v1/other.pdf", headers={"Accept-Language": language})
    assert page.status_code == 404
    assert said in page.get_data(as_text=True)
