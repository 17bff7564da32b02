"""Keeping the privacy policy's promises over time, on a realistic instance moved through time.

`pligt purge` (the schedules), `pligt retention`, and the data-subject
commands `pligt gdpr export` and `pligt gdpr erase`, run as real processes
under faketime against an instance that lived ten months (tests/support/realistic.py).
"""

from __future__ import annotations

import json
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from pligt.core import SqliteCatalog
from tests.support.realistic import END
from tests.support.realistic import PERSON_A
from tests.support.realistic import PERSON_B
from tests.support.realistic import PERSON_C
from tests.support.realistic import World
from tests.support.realistic import copy_instance
from tests.support.realistic import day
from tests.support.realistic import dump
from tests.support.realistic import fake_env
from tests.support.realistic import pligt_at
from tests.support.realistic import pligt_json
from tests.support.realistic import shared_world
from tests.support.realistic import stored_files
from tests.support.servers import start_server
from tests.support.servers import stop_server

PERSONAL = ("institution", "contact_name", "contact_email", "legal_basis", "message")
YEAR = timedelta(days=365)
#: Requests that are still open at the end of the story, and stay open for years.
OPEN = {"a_active", "a_pending", "b_active"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return shared_world(tmp_path_factory.mktemp("world") / "instance")


@pytest.fixture
def inst(world: World, tmp_path: Path) -> Path:
    return copy_instance(world, tmp_path / "instance")


def text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def rows_by_id(instance: Path) -> dict[int, dict[str, Any]]:
    """Each request's row as stored, with its personal fields opened with its key (they are stored sealed)."""
    rows = {r["id"]: r for r in dump(instance, "access_requests")["access_requests"]}
    for row in rows.values():
        assert all(row[f] is None for f in PERSONAL), row  # never in clear in the catalog
    catalog = SqliteCatalog(instance / "catalog.sqlite3")  # its key store beside it
    try:
        for request in catalog.requests():
            rows[request.id].update({f: getattr(request, f) for f in PERSONAL})
    finally:
        catalog.close()
    return rows


def filed_entries(instance: Path) -> dict[int, dict[str, Any]]:
    """The `request.filed` audit entry of each request, by request id, its personal fields opened."""
    stored = {e["seq"]: e for e in dump(instance, "audit_log")["audit_log"]}
    catalog = SqliteCatalog(instance / "catalog.sqlite3")
    try:
        return {
            e.data["request"]: {
                **stored[e.seq],
                "personal": json.dumps(e.personal) if e.personal is not None else None,
                "personal_key": e.personal_key,
            }
            for e in catalog.audit_entries()
            if e.action == "request.filed"
        }
    finally:
        catalog.close()


def audit_verifies(instance: Path, moment: datetime) -> None:
    result = pligt_at(moment, "audit", "verify", "--instance", str(instance))
    assert result.returncode == 0, result.stderr
    assert "intact" in result.stdout


def assert_erased(instance: Path, request_id: int, not_before: datetime) -> None:
    row = rows_by_id(instance)[request_id]
    assert all(row[f] is None for f in PERSONAL), row
    assert row["sealed"] is None and row["key_id"] is None, row
    assert row["purged_at"] is not None and row["purged_at"] >= text(not_before), row
    entry = filed_entries(instance)[request_id]
    assert entry["personal"] is None and entry["personal_key"] is None, entry
    stored = next(e for e in dump(instance, "audit_log")["audit_log"] if e["seq"] == entry["seq"])
    assert stored["personal"] is None, stored
    assert entry["personal_digest"] is not None  # what the chain covers stays


def assert_intact(instance: Path, request_id: int, person: dict[str, str]) -> None:
    row = rows_by_id(instance)[request_id]
    assert row["purged_at"] is None, row
    assert row["contact_name"] == person["contact_name"]
    assert row["contact_email"].lower() == person["contact_email"].lower()
    entry = filed_entries(instance)[request_id]
    assert entry["personal"] is not None and entry["personal_key"] is not None
    assert json.loads(entry["personal"])["contact_name"] == person["contact_name"]


def person_of(world: World, role: str) -> dict[str, str]:
    return {"a": PERSON_A, "b": PERSON_B, "c": PERSON_C}[role[0]]


# -- pligt purge ----------------------------------------------------------------------------


def test_purge_erases_each_request_twelve_months_after_it_closed_and_never_an_open_one(
    world: World, inst: Path
) -> None:
    closed = {role: r.closed for role, r in world.requests.items() if r.closed is not None}
    assert len(closed) == 5  # denied, lapsed, revoked, credential ran out, denied (another person)
    # The short credential ran out on day 70, though the owner only saw it 'expired' on day 200.
    assert world.requests["a_short"].closed == day(70, hours=1)

    # Eleven months after the first closing: nothing personal goes.
    eleven_months = min(closed.values()) + timedelta(days=334)
    report = pligt_json(eleven_months, "purge", "--instance", str(inst))
    assert report["requests_erased"] == []
    for role, request in world.requests.items():
        assert_intact(inst, request.id, person_of(world, role))
    audit_verifies(inst, eleven_months)

    # Then, a day past twelve months after each closing, exactly the requests closed that long.
    erased: set[str] = set()
    for role, when in sorted(closed.items(), key=lambda kv: kv[1]):
        moment = when + timedelta(days=366)
        report = pligt_json(moment, "purge", "--instance", str(inst))
        due = {r for r, c in closed.items() if c + YEAR <= moment} - erased
        assert role in due
        assert sorted(report["requests_erased"]) == sorted(world.requests[r].id for r in due), (role, moment)
        erased |= due
        for other, request in world.requests.items():
            if other in erased:
                assert_erased(inst, request.id, when + YEAR if other == role else day(0))
            else:
                assert_intact(inst, request.id, person_of(world, other))
        audit_verifies(inst, moment)

    # Years later: everything closed is gone; the pending request and the active credentials' are not.
    for moment in (day(1100), day(2900)):
        pligt_json(moment, "purge", "--instance", str(inst))
        for role, request in world.requests.items():
            if role in OPEN:
                assert_intact(inst, request.id, person_of(world, role))
            else:
                assert_erased(inst, request.id, day(0))
        audit_verifies(inst, moment)
    assert dump(inst, "credentials")["credentials"]  # credentials are not personal fields: kept


def test_purge_deletes_download_records_older_than_six_months_and_keeps_younger_ones(inst: Path) -> None:
    moment = day(336, hours=3)
    cutoff = text(moment - timedelta(days=183))
    before = dump(inst, "downloads")["downloads"]
    old = [d for d in before if d["at"] < cutoff]
    young = [d for d in before if d["at"] >= cutoff]
    assert len(old) > 50 and len(young) > 20  # the story has both, with and without credentials
    assert {d["credential_id"] is None for d in old} == {True, False}

    report = pligt_json(moment, "purge", "--instance", str(inst))
    assert report["download_records_deleted"] == len(old)
    assert dump(inst, "downloads")["downloads"] == young
    audit_verifies(inst, moment)


def test_purge_deletes_spent_and_expired_release_links_at_once_and_keeps_a_live_one(world: World, inst: Path) -> None:
    releases = dump(inst, "releases")["releases"]
    live = [r for r in releases if r["request_id"] == world.requests["c_fresh"].id]
    assert len(releases) == 7 and len(live) == 1 and live[0]["released_at"] is None

    moment = END + timedelta(days=1)
    report = pligt_json(moment, "purge", "--instance", str(inst))
    assert report["release_links_deleted"] == 6  # five spent, one lapsed unopened (an expired one)
    assert report["requests_erased"] == []
    assert dump(inst, "releases")["releases"] == live

    after_expiry = datetime.fromisoformat(live[0]["expires_at"].replace("Z", "+00:00")) + timedelta(hours=1)
    report = pligt_json(after_expiry, "purge", "--instance", str(inst))
    assert report["release_links_deleted"] == 1
    assert dump(inst, "releases")["releases"] == []
    audit_verifies(inst, after_expiry)


def test_purge_dry_run_reports_what_the_real_run_then_does_and_changes_nothing(inst: Path) -> None:
    moment = day(410)
    before, files_before = dump(inst), stored_files(inst)

    dry = pligt_json(moment, "purge", "--dry-run", "--instance", str(inst))
    assert dump(inst) == before
    assert stored_files(inst) == files_before
    assert set(dry) == {"dry_run", "requests_erased", "download_records_deleted", "release_links_deleted"}
    assert dry["dry_run"] is True
    assert all(isinstance(i, int) for i in dry["requests_erased"])
    assert isinstance(dry["download_records_deleted"], int) and isinstance(dry["release_links_deleted"], int)
    assert dry["requests_erased"] and dry["download_records_deleted"] and dry["release_links_deleted"]

    said = pligt_at(moment, "purge", "--dry-run", "--instance", str(inst))
    assert said.returncode == 0, said.stderr
    assert said.stdout.startswith("would erase:")
    assert dump(inst) == before

    real = pligt_json(moment, "purge", "--instance", str(inst))
    assert real == {**dry, "dry_run": False}
    after = dump(inst)
    assert len(before["downloads"]) - len(after["downloads"]) == dry["download_records_deleted"]
    assert len(before["releases"]) - len(after["releases"]) == dry["release_links_deleted"]
    purged = [r["id"] for r in after["access_requests"] if r["purged_at"] is not None]
    assert purged == dry["requests_erased"]
    assert after["versions"] == before["versions"] and stored_files(inst) == files_before


def test_purge_audits_only_an_erasure_and_a_second_run_erases_nothing(inst: Path) -> None:
    moment = day(410)
    entries = len(dump(inst, "audit_log")["audit_log"])

    first = pligt_json(moment, "purge", "--instance", str(inst))
    assert first["requests_erased"]
    log = dump(inst, "audit_log")["audit_log"]
    # Besides the erasure, only lapsed requests being closed (which starts their schedule).
    added = [e["action"] for e in log[entries:]]
    assert added[-1] == "privacy.purged"
    assert set(added[:-1]) <= {"request.expired"}
    assert log[-1]["action"] == "privacy.purged"
    assert json.loads(log[-1]["data"]) == first
    assert log[-1]["personal"] is None
    state = dump(inst)

    second = pligt_json(moment + timedelta(minutes=5), "purge", "--instance", str(inst))
    assert second == {
        "dry_run": False,
        "requests_erased": [],
        "download_records_deleted": 0,
        "release_links_deleted": 0,
    }
    assert dump(inst) == state  # no audit entry either
    said = pligt_at(moment + timedelta(minutes=6), "purge", "--instance", str(inst))
    assert said.returncode == 0
    assert "requests none" in said.stdout
    audit_verifies(inst, moment + timedelta(minutes=7))


# -- pligt retention ------------------------------------------------------------------------


def test_retention_lists_every_retained_version_and_whether_it_may_go_on_both_sides_of_the_date(
    world: World, inst: Path
) -> None:
    versions = dump(inst, "versions")["versions"]
    slugs = {i["id"]: i["slug"] for i in dump(inst, "items")["items"]}
    retained = {(slugs[v["item_id"]], v["number"]): v for v in versions if v["withdrawn_at"] is None}
    assert len(retained) == 38
    late = [v for (slug, _), v in retained.items() if slug == world.late_slug]
    assert len(late) == 1
    until = datetime.fromisoformat(late[0]["retain_until"].replace("Z", "+00:00"))
    assert until == datetime.fromisoformat(late[0]["published_at"].replace("Z", "+00:00")) + timedelta(days=183)

    for moment, late_withdrawable in ((until - timedelta(hours=1), False), (until + timedelta(hours=1), True)):
        listed = pligt_json(moment, "retention", "--instance", str(inst))
        assert {(v["slug"], v["version"]) for v in listed} == set(retained)
        for v in listed:
            stored = retained[(v["slug"], v["version"])]
            assert v["retain_until"] == stored["retain_until"]
            assert v["withdrawable_now"] is (text(moment) >= stored["retain_until"]), v
            assert v["withdrawn_at"] is None
        [mine] = [v for v in listed if v["slug"] == world.late_slug]
        assert mine["withdrawable_now"] is late_withdrawable
        for slug, number in world.withdrawn:
            assert (slug, number) not in {(v["slug"], v["version"]) for v in listed}

        said = pligt_at(moment, "retention", "--instance", str(inst))
        assert said.returncode == 0, said.stderr
        lines = said.stdout.splitlines()
        assert len(lines) == len(retained)
        [line] = [ln for ln in lines if ln.startswith(f"{world.late_slug} v1 ")]
        assert f"retained until {until:%Y-%m-%d}" in line
        assert line.endswith("withdrawable now" if late_withdrawable else "0 days left")


# -- pligt gdpr export ----------------------------------------------------------------------


def test_gdpr_export_holds_the_persons_requests_credentials_downloads_and_audit_entries(
    world: World, inst: Path, tmp_path: Path
) -> None:
    ids = world.ids(PERSON_B["contact_email"])
    assert len(ids) == 3  # one of them filed with the address in capitals
    state = dump(inst)
    creds = {c["id"] for c in state["credentials"] if c["request_id"] in ids}
    assert len(creds) == 3
    output = tmp_path / "sofie.json"

    result = pligt_at(
        END + timedelta(days=1),
        "gdpr",
        "export",
        "--email",
        "SOFIE.HOLM@kb.example.dk",
        "--output",
        str(output),
        "--instance",
        str(inst),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    exported = json.loads(output.read_text(encoding="utf-8"))

    assert {r["id"] for r in exported["access_requests"]} == ids
    assert {r["contact_name"] for r in exported["access_requests"]} == {"Sofie Holm"}
    assert {c["id"] for c in exported["credentials"]} == creds
    assert all("password" not in json.dumps(c) for c in exported["credentials"])
    theirs = [d for d in state["downloads"] if d["credential_id"] in creds]
    assert len(theirs) > 20
    assert sorted((d["credential_id"], d["at"], d["bytes_sent"]) for d in exported["download_records"]) == sorted(
        (d["credential_id"], d["at"], d["bytes_sent"]) for d in theirs
    )
    mentioning = {e["seq"] for e in state["audit_log"] if json.loads(e["data"]).get("request") in ids}
    assert {e["seq"] for e in exported["audit_entries"]} == mentioning
    actions = sorted(e["action"] for e in exported["audit_entries"])
    assert actions.count("request.filed") == 3 and actions.count("credential.revoked") == 1
    filed = [e for e in exported["audit_entries"] if e["action"] == "request.filed"]
    assert all(e["personal"]["contact_name"] == "Sofie Holm" for e in filed)

    # Nothing about anyone else.
    everything = output.read_text(encoding="utf-8").lower()
    for other in (PERSON_A, PERSON_C):
        assert other["contact_email"].lower() not in everything
        assert other["contact_name"].lower() not in everything
    for crawler in world.crawlers.values():
        if crawler.role[0] != "b":
            assert crawler.username not in everything
    assert dump(inst) == state  # an export changes nothing


def test_gdpr_export_to_stdout_and_of_an_unknown_person(world: World, inst: Path) -> None:
    moment = END + timedelta(days=1)
    result = pligt_at(moment, "gdpr", "export", "--email", PERSON_C["contact_email"], "--instance", str(inst))
    assert result.returncode == 0, result.stderr
    exported = json.loads(result.stdout)
    assert {r["id"] for r in exported["access_requests"]} == world.ids(PERSON_C["contact_email"])
    assert exported["download_records"] == []  # C never got a password

    result = pligt_at(moment, "gdpr", "export", "--email", "ukendt@example.dk", "--instance", str(inst))
    assert result.returncode == 0, result.stderr
    exported = json.loads(result.stdout)
    assert exported["email"] == "ukendt@example.dk"
    for key in ("access_requests", "credentials", "download_records", "audit_entries"):
        assert exported[key] == [], key


def test_gdpr_export_into_a_folder_that_does_not_exist_is_a_clear_error(inst: Path, tmp_path: Path) -> None:
    target = tmp_path / "findes-ikke" / "udtraek.json"
    result = pligt_at(
        END, "gdpr", "export", "--email", PERSON_B["contact_email"], "--output", str(target), "--instance", str(inst)
    )
    assert result.returncode not in (0, None)
    [line] = result.stderr.splitlines()
    assert line.startswith("pligt: error:") and "findes-ikke" in line, line


@pytest.mark.parametrize(
    "email",
    ["", "netarkivet.example.dk", "netarkivet@", "@example.dk", "net@arkivet@example.dk", "net arkivet@example.dk"],
)
def test_gdpr_commands_refuse_a_malformed_email_with_one_line(inst: Path, email: str) -> None:
    state = dump(inst)
    for command in ("export", "erase"):
        result = pligt_at(END, "gdpr", command, "--email", email, "--instance", str(inst))
        assert result.returncode not in (0, None), (command, result.stdout)
        assert result.stdout == ""
        [line] = result.stderr.splitlines()
        assert line.startswith("pligt: error:") and "email" in line, line
    assert dump(inst) == state


# -- pligt gdpr erase -----------------------------------------------------------------------


def test_gdpr_erase_erases_revokes_and_audits_without_the_address_and_spares_others(
    world: World, inst: Path, tmp_path: Path
) -> None:
    moment = END + timedelta(days=1)
    email = PERSON_A["contact_email"]
    ids = world.ids(email)
    before, files_before = dump(inst), stored_files(inst)
    theirs = [c for c in before["credentials"] if c["request_id"] in ids]
    active_before = {c["id"] for c in theirs if c["revoked_at"] is None}
    a, b = world.crawlers["a_active"], world.crawlers["b_active"]

    server = start_server(inst, tmp_path / "server.log", env=fake_env(moment))
    try:
        listing = requests.get(server.url + "/api/items", auth=("owner", world.owner_password), timeout=10)
        urls = [v["url"] for item in listing.json()["items"] for v in item["versions"] if "url" in v]
        protected = [
            v["url"]
            for item in listing.json()["items"]
            if item["visibility"] == "protected"
            for v in item["versions"]
            if "url" in v
        ]
        for crawler in (a, b):
            got = requests.get(protected[0], auth=(crawler.username, crawler.password), timeout=10)
            assert got.status_code == 200, crawler

        summary = pligt_json(moment, "gdpr", "erase", "--email", email.upper(), "--instance", str(inst))
        assert sorted(summary["requests_erased"]) == sorted(ids)
        assert set(summary["credentials_revoked"]) == active_before

        refused = requests.get(protected[0], auth=(a.username, a.password), timeout=10)
        assert refused.status_code == 401
        assert "Basic" in refused.headers["WWW-Authenticate"]
        for url in urls:  # the deposit is untouched: the other person still harvests everything
            got = requests.get(url, auth=(b.username, b.password), timeout=10)
            assert got.status_code == 200, url
    finally:
        stop_server(server)

    after = dump(inst)
    for request_id in ids:
        assert_erased(inst, request_id, moment)
    for role, request in world.requests.items():
        if request.id not in ids:
            assert_intact(inst, request.id, person_of(world, role))
    for c in after["credentials"]:
        if c["request_id"] in ids:
            assert c["revoked_at"] is not None
        else:
            assert c == next(old for old in before["credentials"] if old["id"] == c["id"])

    entry = after["audit_log"][-1]
    assert entry["action"] == "privacy.erased"
    assert entry["personal"] is None
    audit_text = json.dumps(after["audit_log"], ensure_ascii=False).lower()
    assert email not in audit_text
    assert PERSON_A["contact_name"].lower() not in audit_text
    assert PERSON_B["contact_email"] not in audit_text  # nobody's fields are in clear in the log,
    opened = json.dumps(list(filed_entries(inst).values()), ensure_ascii=False).lower()
    assert PERSON_B["contact_email"] in opened  # but the other person's open with their keys
    assert email not in opened
    raw = b"".join(p.read_bytes() for p in inst.glob("catalog.sqlite3*"))
    assert email.encode() not in raw.lower()  # not left behind in freed pages either

    assert after["versions"] == before["versions"] and after["items"] == before["items"]
    assert stored_files(inst) == files_before
    mine = {c["id"] for c in theirs}
    others_before = [d for d in before["downloads"] if d["credential_id"] not in mine]
    others_after = [d for d in after["downloads"] if d["credential_id"] not in mine]
    assert others_after[: len(others_before)] == others_before  # plus what B fetched just now
    audit_verifies(inst, moment)

    result = pligt_at(moment, "gdpr", "export", "--email", email, "--instance", str(inst))
    assert result.returncode == 0, result.stderr
    exported = json.loads(result.stdout)
    assert exported["access_requests"] == [] and exported["credentials"] == []


def test_gdpr_erase_leaves_no_request_of_the_person_that_can_still_be_approved(world: World, inst: Path) -> None:
    moment = END + timedelta(days=1)
    pending = world.requests["a_pending"].id
    assert rows_by_id(inst)[pending]["status"] == "pending"
    summary = pligt_json(moment, "gdpr", "erase", "--email", PERSON_A["contact_email"], "--instance", str(inst))
    assert summary["pending_requests_closed"] == [pending]
    row = rows_by_id(inst)[pending]
    assert row["status"] == "denied" and row["closed_at"] is not None and "erased" in row["decision_reason"]
    credentials = dump(inst, "credentials")["credentials"]

    approve = pligt_at(moment, "approve", str(pending), "--instance", str(inst))
    assert approve.returncode != 0, approve.stdout  # no new credential for an erased person
    assert dump(inst, "credentials")["credentials"] == credentials
    audit_verifies(inst, moment)


def test_gdpr_erase_of_an_unknown_person_erases_nothing_but_is_recorded(inst: Path) -> None:
    moment = END + timedelta(days=1)
    before = dump(inst)
    summary = pligt_json(moment, "gdpr", "erase", "--email", "ukendt@example.dk", "--instance", str(inst))
    assert summary["requests_erased"] == [] and summary["credentials_revoked"] == []
    after = dump(inst)
    assert {k: v for k, v in after.items() if k != "audit_log"} == {k: v for k, v in before.items() if k != "audit_log"}
    assert after["audit_log"][:-1] == before["audit_log"]
    assert "ukendt" not in json.dumps(after["audit_log"][-1])
    audit_verifies(inst, moment)
