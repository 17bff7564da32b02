"""A data subject's erasure may override retention, audited; the storage may still refuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pligt.instance import build_archive
from pligt.settings import load_settings
from tests.support.access import REQUEST_FIELDS
from tests.support.app import Instance
from tests.support.cli import invoke
from tests.support.data import pdf_bytes
from tests.support.s3 import Bucket


def setup(instance: Instance, tmp_path: Path, config: str = "") -> tuple[Path, str]:
    """Publish an item holding the person's photo; file a request from them; return (instance, email)."""
    if config:
        with instance.settings.config_file.open("a", encoding="utf-8") as f:
            f.write(config)
    photo = tmp_path / "medarbejdere.pdf"
    photo.write_bytes(pdf_bytes("photo of Netarkivet Høstning"))
    assert invoke("add", "--instance", str(instance.path), "--public", str(photo)).exit_code == 0
    archive = build_archive(load_settings(instance.path, env={}))
    archive.access.file(dict(REQUEST_FIELDS))
    return instance.path, REQUEST_FIELDS["contact_email"]


def audit_actions(path: Path) -> list[dict[str, Any]]:
    result = invoke("audit", "log", "--instance", str(path), "--json", "--limit", "100")
    entries: list[dict[str, Any]] = json.loads(result.stdout)
    return entries


def still_there(path: Path) -> bool:
    versions = build_archive(load_settings(path, env={})).versions()
    return [v.slug for v in versions] == ["medarbejdere"]


def test_inside_retention_an_item_is_not_erased_without_an_override(instance: Instance, tmp_path: Path) -> None:
    path, email = setup(instance, tmp_path)
    refused = invoke("gdpr", "erase", "--email", email, "--item", "medarbejdere", "--instance", str(path))
    assert refused.exit_code != 0
    assert "retained until" in refused.stderr and "nothing was erased" in refused.stderr
    assert still_there(path)
    [request] = json.loads(invoke("requests", "--instance", str(path), "--json").stdout)
    assert request["contact_email"] == email  # the erasure did not half-happen

    no_reason = invoke(
        "gdpr", "erase", "--email", email, "--item", "medarbejdere", "--override-retention", "--instance", str(path)
    )
    assert no_reason.exit_code != 0 and "needs --reason" in no_reason.stderr
    assert still_there(path)


def test_an_override_with_a_reason_withdraws_and_is_audited(instance: Instance, tmp_path: Path) -> None:
    path, email = setup(instance, tmp_path)
    done = invoke(
        "gdpr",
        "erase",
        "--email",
        email,
        "--item",
        "medarbejdere",
        "--override-retention",
        "--reason",
        "Art. 17: photo of a former employee",
        "--instance",
        str(path),
        "--json",
    )
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["items_withdrawn"] == ["medarbejdere v1"]
    assert build_archive(load_settings(path, env={})).versions() == []
    entries = audit_actions(path)
    override = next(e for e in entries if e["action"] == "retention.override")
    assert override["data"]["reason"] == "Art. 17: photo of a former employee"
    assert any(e["action"] == "privacy.erased" for e in entries)
    assert invoke("audit", "verify", "--instance", str(path)).exit_code == 0
    assert not [p for p in (path / "files").rglob("*") if p.is_file()]


def test_plain_withdraw_has_no_override(instance: Instance, tmp_path: Path) -> None:
    path, _ = setup(instance, tmp_path)
    result = invoke("withdraw", "medarbejdere", "--override-retention", "--instance", str(path))
    assert result.exit_code != 0
    assert still_there(path)


@pytest.mark.parametrize(("mode", "withdrawn"), [("GOVERNANCE", True), ("COMPLIANCE", False)])
def test_on_s3_governance_steps_aside_and_compliance_refuses(
    instance: Instance, tmp_path: Path, bucket: Bucket, mode: str, withdrawn: bool
) -> None:
    path, email = setup(instance, tmp_path, bucket.settings_toml() + f's3_object_lock_mode = "{mode}"\n')
    result = invoke(
        "gdpr",
        "erase",
        "--email",
        email,
        "--item",
        "medarbejdere",
        "--override-retention",
        "--reason",
        "court order",
        "--instance",
        str(path),
    )
    actions = [e["action"] for e in audit_actions(path)]
    assert "privacy.erased" in actions  # the personal data went either way
    if withdrawn:
        assert result.exit_code == 0, result.stderr
        assert "retention.override" in actions
        assert not [v for v in bucket.versions() if v["Key"].startswith("pligt/medarbejdere/")]
    else:
        assert result.exit_code != 0
        assert "refuses" in result.stderr and "was not withdrawn" in result.stderr
        assert "retention.override_refused" in actions and "retention.override" not in actions
        assert still_there(path)
        assert [v for v in bucket.versions() if v["Key"].startswith("pligt/medarbejdere/")]
    assert invoke("audit", "verify", "--instance", str(path)).exit_code == 0
