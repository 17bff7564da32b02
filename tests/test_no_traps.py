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
from pligt.instance import build_archive
from tests.support.access import issue_credential
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.cli import invoke
from tests.support.data import pdf_bytes

DA = {"Accept-Language": "da"}


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


# -- a version published by mistake ----------------------------------------------------------


def _publish(client: FlaskClient, instance: Instance, text: str, visibility: str = "protected") -> str:
    published = client.post(
        "/api/items",
        query_string={"filename": "offer.pdf", "visibility": visibility},
        data=pdf_bytes(text),
        auth=instance.owner_auth,
    )
    assert published.status_code == 201, published.get_data(as_text=True)
    return published.headers["Location"]


def test_a_version_published_by_mistake_is_taken_back_within_the_window(
    client: FlaskClient, instance: Instance, archive: Archive, clock: Clock
) -> None:
    _publish(client, instance, "the right offer")
    clock.advance(days=1)
    url = _publish(client, instance, "a draft, by mistake")
    clock.advance(minutes=29)

    plain = client.delete("/api/items/offer/versions/2", auth=instance.owner_auth)
    assert plain.status_code == 409  # a plain withdrawal still waits for the retention date
    taken = client.delete("/api/items/offer/versions/2?mistake=true", auth=instance.owner_auth)
    assert taken.status_code == 200, taken.get_data(as_text=True)

    gone = client.get(url, auth=instance.owner_auth, headers=DA)
    assert gone.status_code == 410
    assert "offer version 2 blev trukket tilbage 2026-01-06." in gone.get_data(as_text=True)
    assert "after its retention ended" not in client.get(url, auth=instance.owner_auth).get_data(as_text=True)
    latest = client.get("/files/offer/latest", auth=instance.owner_auth)
    assert latest.status_code in (301, 302, 303, 307, 308) and "/v1/" in latest.headers["Location"]
    entry = next(archive.catalog.audit_entries(newest_first=True, limit=1))
    assert entry.action == "version.retracted"
    assert (entry.data["slug"], entry.data["version"], entry.data["not_harvested"]) == ("offer", 2, True)

    first = client.delete("/api/items/offer/versions/1?mistake=true", auth=instance.owner_auth)
    assert first.status_code == 409  # published a day ago: it stays for its six months
    assert first.json is not None and "more than 30 minutes ago" in first.json["description"]


def test_after_the_window_a_mistake_stays_for_six_months(
    client: FlaskClient, instance: Instance, archive: Archive, clock: Clock
) -> None:
    _publish(client, instance, "late")
    clock.advance(minutes=30)
    late = client.delete("/api/items/offer/versions/1?mistake=true", auth=instance.owner_auth)
    assert late.status_code == 409
    assert [v.withdrawn for v in archive.item_versions("offer")] == [False]


def test_a_version_the_institution_fetched_is_never_taken_back(
    client: FlaskClient, instance: Instance, archive: Archive
) -> None:
    url = _publish(client, instance, "fetched at once")
    credential, password = issue_credential(archive)
    assert client.get(url, auth=(credential.username, password)).status_code == 200

    refused = client.delete("/api/items/offer/versions/1?mistake=true", auth=instance.owner_auth)
    assert refused.status_code == 409
    assert refused.json is not None and "the deposit institution has fetched it" in refused.json["description"]
    assert client.get(url, auth=(credential.username, password)).status_code == 200


def test_an_anonymous_crawler_user_agent_counts_as_the_institution_a_browser_does_not(
    client: FlaskClient, instance: Instance, archive: Archive
) -> None:
    url = _publish(client, instance, "public, seen by a browser", visibility="public")
    assert client.get(url, headers={"User-Agent": "Mozilla/5.0 Firefox/140.0"}).status_code == 200
    assert client.delete("/api/items/offer/versions/1?mistake=true", auth=instance.owner_auth).status_code == 200

    url = _publish(client, instance, "public, harvested anonymously", visibility="public")
    heritrix = "Mozilla/5.0 (compatible; heritrix/3.4.0 +https://www.kb.dk/netarkivindsamling/) Firefox/57"
    assert client.get(url, headers={"User-Agent": heritrix}).status_code == 200
    assert client.delete("/api/items/offer/versions/2?mistake=true", auth=instance.owner_auth).status_code == 409


def test_the_cli_takes_back_a_mistake(instance: Instance, tmp_path: Path) -> None:
    draft = tmp_path / "draft.pdf"
    draft.write_bytes(pdf_bytes("draft"))
    folder = str(instance.path)
    assert invoke("add", "--instance", folder, str(draft)).exit_code == 0
    whole = invoke("withdraw", "--instance", folder, "draft", "--mistake")
    assert whole.exit_code == 2 and "--version" in whole.stderr
    plain = invoke("withdraw", "--instance", folder, "draft", "--version", "1")
    assert plain.exit_code == 5 and "retained until" in plain.stderr
    taken = invoke("withdraw", "--instance", folder, "draft", "--version", "1", "--mistake")
    assert taken.exit_code == 0, taken.stderr
    assert "withdrew draft version 1" in taken.stdout
    listed = json.loads(invoke("items", "--instance", folder, "--all", "--json").stdout)
    assert [v["withdrawn_at"] is not None for v in listed] == [True]


def test_the_console_offers_and_takes_back_a_mistake_in_danish(
    client: FlaskClient, instance: Instance, archive: Archive
) -> None:
    _publish(client, instance, "draft")
    _sign_in(client, instance.owner.password)
    listed = client.get("/admin/", headers=DA).get_data(as_text=True)
    assert "Træk tilbage: offentliggjort ved en fejl" in listed
    done = client.post(
        "/admin/items/offer/versions/1/withdraw", data={"csrf_token": _token(listed), "mistake": "1"}, headers=DA
    )
    assert done.status_code == 302
    shown = client.get("/admin/?withdrawn=1", headers=DA).get_data(as_text=True)
    assert "offer version 1, der blev offentliggjort ved en fejl, er trukket tilbage." in shown
    assert [v.withdrawn for v in archive.item_versions("offer")] == [True]


# -- the log's name --------------------------------------------------------------------------

PUBLIC = {"PLIGT_BASE_URL": "https://deposit.example.dk"}


def test_a_loopback_log_name_is_reported_and_renamed_before_anything_is_handed_out(
    instance: Instance, tmp_path: Path
) -> None:
    folder = str(instance.path)
    brochure = tmp_path / "brochure.pdf"
    brochure.write_bytes(pdf_bytes("before the rename"))
    assert invoke("add", "--instance", folder, "--public", str(brochure)).exit_code == 0

    checked = invoke("check", "--instance", folder)
    assert checked.exit_code == 0
    assert "named 127.0.0.1:8000, a local address" in checked.stdout
    assert "set base_url (pligt.toml) to the public address and run `pligt audit rename`" in checked.stdout
    as_json = json.loads(invoke("check", "--instance", folder, "--json").stdout)
    assert as_json["log_name"]["name"] == "127.0.0.1:8000" and as_json["log_name"]["problem"]

    without = invoke("audit", "rename", "--instance", folder)
    assert without.exit_code == 7 and "set base_url" in without.stderr
    renamed = invoke("audit", "rename", "--instance", folder, env=PUBLIC)
    assert renamed.exit_code == 0, renamed.stderr
    assert "now named deposit.example.dk (before: 127.0.0.1:8000)" in renamed.stdout

    assert instance.settings.checkpoint_key_file.read_text().startswith("PRIVATE+KEY+deposit.example.dk+")
    assert instance.settings.latest_checkpoint_file.read_text().startswith("deposit.example.dk\n")
    verified = invoke("audit", "verify", "--instance", folder, env=PUBLIC)
    assert verified.exit_code == 0, verified.stderr  # the checkpoints signed before still verify
    log = json.loads(invoke("audit", "log", "--instance", folder, "--json").stdout)
    assert any(e["action"] == "log.renamed" and e["data"]["from"] == "127.0.0.1:8000" for e in log)
    after = invoke("check", "--instance", folder, env=PUBLIC)
    assert after.exit_code == 0 and "log name" not in after.stdout


def test_the_log_keeps_its_name_once_a_credential_was_issued(instance: Instance) -> None:
    archive = build_archive(instance.settings)
    try:
        issue_credential(archive)
    finally:
        archive.catalog.close()
    refused = invoke("audit", "rename", "--instance", str(instance.path), env=PUBLIC)
    assert refused.exit_code == 5
    assert "keeps its name 127.0.0.1:8000: credentials were issued under it" in refused.stderr
    assert instance.settings.checkpoint_key_file.read_text().startswith("PRIVATE+KEY+127.0.0.1:8000+")


def test_an_instance_made_with_its_public_address_has_nothing_to_report(tmp_path: Path) -> None:
    folder = str(tmp_path / "instance")
    assert invoke("init", "--instance", folder, "--base-url", "https://deposit.example.dk").exit_code == 0
    checked = invoke("check", "--instance", folder)
    assert checked.exit_code == 0 and "log name" not in checked.stdout
