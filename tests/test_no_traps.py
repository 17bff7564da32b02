"""Traps a publisher falls into only later, each closed (issue 22, part 3).

Publishing the same bytes again by mistake publishes nothing; a version published
by mistake can be withdrawn at once while nothing has fetched it; the owner can
set a new password; a loopback name on the checkpoint key is reported.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from click.testing import CliRunner
from flask.testing import FlaskClient

from pligt.cli import main
from pligt.core import Archive
from tests.support.app import Instance
from tests.support.cli import invoke
from tests.support.data import pdf_bytes


def _token(page: str) -> str:
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def _sign_in(client: FlaskClient, password: str) -> None:
    token = _token(client.get("/admin/login").get_data(as_text=True))
    signed_in = client.post("/admin/login", data={"password": password, "csrf_token": token})
    assert signed_in.status_code == 302, signed_in.get_data(as_text=True)


def _stored(instance: Instance) -> list[str]:
    return sorted(p.relative_to(instance.path).as_posix() for p in (instance.path / "files").rglob("*") if p.is_file())


# -- the same bytes again publish nothing ---------------------------------------------------


def test_the_same_file_again_from_the_cli_publishes_nothing_and_says_so(instance: Instance, tmp_path: Path) -> None:
    brochure = tmp_path / "brochure.pdf"
    brochure.write_bytes(pdf_bytes("spring"))
    folder = str(instance.path)
    assert invoke("add", "--instance", folder, "--public", str(brochure)).exit_code == 0
    stored = _stored(instance)

    again = invoke("add", "--instance", folder, str(brochure))
    assert again.exit_code == 0, again.stderr
    assert "unchanged" in again.stdout and "brochure version 1" in again.stdout
    assert "nothing was published" in again.stdout
    assert _stored(instance) == stored  # no second object, not even for a moment's leftover

    as_json = json.loads(invoke("add", "--instance", folder, "--json", str(brochure)).stdout)
    assert as_json[0]["unchanged"] is True and as_json[0]["version"] == 1
    listed = json.loads(invoke("items", "--instance", folder, "--json").stdout)
    assert [v["version"] for v in listed] == [1]

    brochure.write_bytes(pdf_bytes("summer"))  # new bytes: a new version, as before
    changed = invoke("add", "--instance", folder, "--json", str(brochure))
    assert json.loads(changed.stdout)[0]["version"] == 2
    assert json.loads(changed.stdout)[0]["unchanged"] is False


def test_the_same_body_again_through_the_api_answers_200_unchanged(
    client: FlaskClient, instance: Instance, archive: Archive
) -> None:
    params = {"filename": "price-list.pdf", "visibility": "public"}
    first = client.post("/api/items", query_string=params, data=pdf_bytes("prices"), auth=instance.owner_auth)
    assert first.status_code == 201 and first.json is not None and first.json["unchanged"] is False
    entries = len(list(archive.catalog.audit_entries()))

    again = client.post("/api/items", query_string=params, data=pdf_bytes("prices"), auth=instance.owner_auth)
    assert again.status_code == 200, again.get_data(as_text=True)
    assert again.json is not None and again.json["unchanged"] is True
    assert again.json["version"]["version"] == 1
    assert again.headers["Content-Location"] == first.headers["Location"]
    assert "Location" not in again.headers
    assert len(list(archive.catalog.audit_entries())) == entries  # nothing happened, nothing audited
    assert [v.number for v in archive.item_versions("price-list")] == [1]


def test_the_same_file_again_in_the_console_says_unchanged_in_danish(
    client: FlaskClient, instance: Instance, archive: Archive
) -> None:
    _sign_in(client, instance.owner.password)
    client.post("/api/items", query_string={"filename": "menu.pdf"}, data=pdf_bytes("menu"), auth=instance.owner_auth)
    token = _token(client.get("/admin/upload").get_data(as_text=True))
    raw = client.post(
        "/admin/upload/raw",
        query_string={"filename": "menu.pdf", "slug": "menu"},
        data=pdf_bytes("menu"),
        headers={"X-CSRFToken": token, "Accept": "application/json", "Accept-Language": "da"},
    )
    assert raw.status_code == 200, raw.get_data(as_text=True)
    assert raw.json is not None and raw.json["unchanged"] is True
    assert raw.json["message"].startswith("Uændret: menu.pdf")

    page = client.post(
        "/admin/upload",
        data={
            "csrf_token": token,
            "slug": "menu",
            "visibility": "protected",
            "files": (io.BytesIO(pdf_bytes("menu")), "menu.pdf"),
        },
        headers={"Accept-Language": "da"},
        content_type="multipart/form-data",
    )
    assert page.status_code == 200
    assert "Uændret: menu.pdf" in page.get_data(as_text=True)
    assert [v.number for v in archive.item_versions("menu")] == [1]


# -- a new owner password -------------------------------------------------------------------


def test_a_typed_owner_password_replaces_the_old_one_ends_sessions_and_is_audited(
    client: FlaskClient, instance: Instance, archive: Archive
) -> None:
    _sign_in(client, instance.owner.password)
    assert client.get("/admin/").status_code == 200
    chosen = "a long harbour morning 7"

    short = CliRunner().invoke(main, ["owner", "password", "--instance", str(instance.path)], input="short\nshort\n")
    assert short.exit_code != 0 and "shorter than 12 characters" in short.stderr
    changed = CliRunner().invoke(
        main, ["owner", "password", "--instance", str(instance.path)], input=f"{chosen}\n{chosen}\n"
    )
    assert changed.exit_code == 0, changed.output
    assert chosen not in changed.stdout  # typed, never echoed

    signed_out = client.get("/admin/")
    assert signed_out.status_code == 302 and "/admin/login" in signed_out.headers["Location"]
    assert client.get("/api/items", auth=instance.owner_auth).status_code == 401
    assert client.get("/api/items", auth=("owner", chosen)).status_code == 200
    _sign_in(client, chosen)
    newest = next(archive.catalog.audit_entries(newest_first=True, limit=1))
    assert newest.action == "owner.password_changed"
    assert chosen not in json.dumps(newest.to_dict())


def test_a_made_owner_password_is_shown_once_and_works(client: FlaskClient, instance: Instance) -> None:
    made = invoke("owner", "password", "--instance", str(instance.path), "--generate", "--json")
    assert made.exit_code == 0, made.stderr
    password = json.loads(made.stdout)["password"]
    assert len(password) >= 27 and password != instance.owner.password
    assert client.get("/api/items", auth=("owner", password)).status_code == 200
    assert client.get("/api/items", auth=instance.owner_auth).status_code == 401
