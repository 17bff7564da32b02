"""Deciding on access requests and checking the audit log from the command line."""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

from pligt.instance import build_archive
from tests.support.access import REQUEST_FIELDS
from tests.support.app import Instance
from tests.support.cli import invoke
from tests.support.mail import Mailbox
from tests.support.mail import smtp_env


def file_request(instance: Instance, **change: str) -> int:
    return build_archive(instance.settings).access.file({**REQUEST_FIELDS, **change}).id


def cli_json(*args: str, env: dict[str, str] | None = None) -> Any:
    result = invoke(*args, "--json", env=env)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_requests_lists_pending_requests(instance: Instance) -> None:
    request_id = file_request(instance)
    [listed] = cli_json("requests", "--instance", str(instance.path))
    assert (listed["id"], listed["status"], listed["contact_email"]) == (request_id, "pending", "netarkivet@example.dk")
    text = invoke("requests", "--instance", str(instance.path)).stdout
    assert f"#{request_id}" in text and "Det Kgl. Bibliotek" in text


def test_approve_emails_a_single_use_release_link(instance: Instance, smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    request_id = file_request(instance)
    result = invoke("approve", str(request_id), "--instance", str(instance.path), env=smtp_env(port))
    assert result.exit_code == 0, result.stderr
    assert "emailed to netarkivet@example.dk" in result.stdout
    [message] = mailbox.wait_for(1)
    assert message["To"] == "netarkivet@example.dk"
    body = message.get_content()
    link = re.search(r"http://\S+/access/release/\S+", body)
    assert link is not None
    assert "§ 10" in body
    # Nothing the owner can list shows the password or the link again.
    listed = invoke("credentials", "--instance", str(instance.path), "--json").stdout
    assert link.group(0).rsplit("/", 1)[1] not in listed
    assert "password" not in listed


def test_approve_without_smtp_shows_the_link_to_pass_on(instance: Instance) -> None:
    request_id = file_request(instance)
    result = invoke("approve", str(request_id), "--instance", str(instance.path), "--valid-for", "30")
    assert result.exit_code == 0, result.stderr
    assert "/access/release/" in result.stdout
    [credential] = cli_json("credentials", "--instance", str(instance.path))
    assert credential["request_id"] == request_id


def test_approve_show_prints_the_password_once_with_what_a_crawler_needs(instance: Instance) -> None:
    request_id = file_request(instance)
    shown = cli_json("approve", str(request_id), "--show", "--instance", str(instance.path))
    assert set(shown) >= {"username", "password", "realm", "protected_index"}
    assert shown["realm"] == instance.settings.realm
    assert shown["protected_index"].endswith("/protected/")
    assert shown["password"].isascii() and len(shown["password"]) >= 22
    for path in instance.path.rglob("*"):
        if path.is_file():
            assert shown["password"].encode() not in path.read_bytes()
    [request] = cli_json("requests", "--instance", str(instance.path))
    assert request["status"] == "released"
    again = invoke("approve", str(request_id), "--show", "--instance", str(instance.path))
    assert again.exit_code != 0 and "not pending" in again.stderr


def test_deny_revoke_rotate(instance: Instance) -> None:
    denied = file_request(instance)
    assert invoke("deny", str(denied), "--instance", str(instance.path)).exit_code != 0  # --reason is required
    assert (
        cli_json("deny", str(denied), "--reason", "unknown institution", "--instance", str(instance.path))["status"]
        == "denied"
    )

    approved = file_request(instance)
    first = cli_json("approve", str(approved), "--show", "--instance", str(instance.path))
    second = cli_json("rotate", str(first["credential"]), "--show", "--instance", str(instance.path))
    assert second["username"] != first["username"]
    assert second["request"] == approved
    credentials = cli_json("credentials", "--instance", str(instance.path))
    assert [c["revoked_at"] is not None for c in credentials] == [True, False]
    cli_json("revoke", str(second["credential"]), "--instance", str(instance.path))
    again = invoke("revoke", str(second["credential"]), "--instance", str(instance.path))
    assert again.exit_code != 0 and "already revoked" in again.stderr
    missing = invoke("revoke", "99", "--instance", str(instance.path))
    assert missing.exit_code != 0 and "no credential 99" in missing.stderr


def test_audit_verify_and_head(instance: Instance) -> None:
    request_id = file_request(instance)
    cli_json("approve", str(request_id), "--show", "--instance", str(instance.path))
    head = invoke("audit", "head", "--instance", str(instance.path)).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", head)
    ok = invoke("audit", "verify", "--head", head, "--instance", str(instance.path))
    assert ok.exit_code == 0 and "intact" in ok.stdout
    log = cli_json("audit", "log", "--instance", str(instance.path))
    assert [e["action"] for e in log][-1] == "request.filed"

    db = sqlite3.connect(instance.settings.catalog)
    db.execute("DROP TRIGGER audit_log_no_rewrite")
    db.execute("UPDATE audit_log SET data = replace(data, '365', '3650') WHERE seq = 2")
    db.commit()
    db.close()
    broken = invoke("audit", "verify", "--instance", str(instance.path))
    assert broken.exit_code != 0
    assert "entry 2" in broken.stderr
    unknown = invoke("audit", "verify", "--head", "0" * 64, "--instance", str(instance.path))
    assert unknown.exit_code != 0
