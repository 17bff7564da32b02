"""Signed checkpoints of the audit log: the key pligt init makes, C2SP signed notes, when they are written.

The signed-note format is checked against the example of Go's reference
implementation (golang.org/x/mod/sumdb/note): its key signs its text to the
very bytes printed there, and its note verifies.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import stat
from datetime import UTC
from datetime import datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from pligt.core import Archive
from pligt.core.catalog import _MIGRATIONS
from pligt.core.catalog import SqliteCatalog
from pligt.core.errors import ConfigurationError
from pligt.core.errors import InvalidProof
from pligt.core.proof import merkle
from pligt.core.proof.audit import leaf_bytes
from pligt.core.proof.notes import new_signer
from pligt.core.proof.notes import parse_checkpoint
from pligt.core.proof.notes import parse_verifier
from pligt.core.proof.notes import read_signer
from pligt.instance import open_instance
from pligt.web.services import pligt
from tests.support.access import REQUEST_FIELDS
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.cli import invoke
from tests.support.data import pdf_bytes

GO_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_PRIVATE = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT
    + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6Ry"
    "yBwJnAM=\n"
)


@pytest.fixture
def archive(app: Flask) -> Archive:
    """The web app's archive, checkpointing at once after each change (no burst delay): one checkpoint each."""
    with app.app_context():
        core = pligt().archive
    core.checkpoints.delay = 0.0
    return core


def test_signed_notes_are_those_of_the_reference_implementation(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(GO_PRIVATE + "\n")
    signer = read_signer(tmp_path / "key")
    assert signer.verifier_key == GO_KEY
    assert signer.sign(GO_TEXT) == GO_NOTE  # Ed25519 is deterministic: the same bytes
    assert parse_verifier(GO_KEY).verify(GO_NOTE) == GO_TEXT
    with pytest.raises(InvalidProof, match="does not verify: it was altered"):
        parse_verifier(GO_KEY).verify(GO_NOTE.replace("answer", "Answer"))
    with pytest.raises(InvalidProof, match="no signature by the key"):
        parse_verifier(new_signer("PeterNeumann").verifier_key).verify(GO_NOTE)  # another key of the same name
    with pytest.raises(InvalidProof, match="key hash does not match"):
        parse_verifier(GO_KEY.replace("PeterNeumann", "Someone"))
    with pytest.raises(InvalidProof, match="not a signed note"):
        parse_verifier(GO_KEY).verify(GO_TEXT)
    (tmp_path / "bad").write_text(GO_PRIVATE.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(ConfigurationError, match="key hash does not match"):
        read_signer(tmp_path / "bad")


def _cli(instance: Instance, *args: str) -> str:
    result = invoke(*args, "--instance", str(instance.path))
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_init_makes_an_owner_only_key_and_the_site_publishes_it(instance: Instance, client: FlaskClient) -> None:
    key_file = instance.path / "checkpoint_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = _cli(instance, "audit", "key").strip()
    assert key == read_signer(key_file).verifier_key
    name, key_hash, public = key.split("+", 2)
    assert name == "localhost:8000" or ":" in name  # the public address without its scheme
    assert len(bytes.fromhex(key_hash)) == 4 and base64.b64decode(public)[:1] == b"\x01"
    served = client.get("/.well-known/pligt/checkpoint-key")
    assert served.status_code == 200 and served.text == key + "\n"
    assert client.get("/.well-known/pligt/checkpoint").status_code == 404  # nothing happened yet


def test_every_change_that_matters_is_checkpointed(
    archive: Archive, instance: Instance, client: FlaskClient, clock: Clock
) -> None:
    def newest() -> tuple[int, int]:
        archive.checkpoints.wait()  # the web app's archive checkpoints in the background
        checkpoints = archive.catalog.checkpoints()
        return len(checkpoints), checkpoints[-1].size

    archive.publish([pdf_bytes()], filename="a.pdf", slug="brochure", visibility="public")
    assert newest() == (1, 1)
    request = archive.access.file(dict(REQUEST_FIELDS))  # a request filed by anyone: no checkpoint
    assert newest() == (1, 1)
    approval = archive.access.approve(request.id)
    assert newest() == (2, 4)  # filed, approved, credential issued
    archive.access.release(approval.release_token)
    assert newest() == (3, 5)
    archive.access.revoke(approval.credential.id)
    assert newest() == (4, 6)
    archive.access.deny(archive.access.file(dict(REQUEST_FIELDS)).id, "duplicate")
    assert newest() == (5, 8)
    clock.advance(days=200)
    archive.withdraw("brochure")
    assert newest() == (6, 9)

    entries = list(archive.catalog.audit_entries())
    text = parse_verifier(_cli(instance, "audit", "key")).verify(_cli(instance, "audit", "checkpoint"))
    said = parse_checkpoint(text)
    assert (said.size, said.root) == (9, merkle.root([merkle.leaf_hash(leaf_bytes(e)) for e in entries]))
    assert client.get("/.well-known/pligt/checkpoint").text == archive.catalog.checkpoints()[-1].note
    assert (instance.path / "checkpoint").read_text() == archive.catalog.checkpoints()[-1].note
    assert "6 checkpoints verify" in _cli(instance, "audit", "verify")
    # The daily checkpoint: a new one of the same log.
    assert json.loads(_cli(instance, "audit", "checkpoint", "--new", "--json"))["id"] == 7
    assert newest() == (7, 9)


def test_an_instance_made_before_checkpoints_keeps_its_chain_and_folds_it_into_the_tree(tmp_path: Path) -> None:
    """A schema-4 catalog with entries and no key: the chain verifies, the key is made on first use."""
    folder = tmp_path / "old"
    assert invoke("init", "--instance", str(folder)).exit_code == 0
    (folder / "checkpoint_key").unlink()
    (folder / "catalog.sqlite3").unlink()
    db = sqlite3.connect(folder / "catalog.sqlite3")
    for script in _MIGRATIONS[:4]:
        db.executescript(script)
    db.execute("PRAGMA user_version = 4")
    db.close()
    old = SqliteCatalog(folder / "catalog.sqlite3")  # entries appended as the chain alone did
    for n in range(5):
        with old.transaction():
            old.append_audit("version.published", {"slug": f"s{n}"}, None, datetime(2026, 1, n + 1, tzinfo=UTC))
    old.close()

    _, archive = open_instance(folder, upgrade=True)  # as `pligt serve` upgrades it
    assert (folder / "checkpoint_key").is_file()
    assert archive.catalog.checkpoints() == []
    result = invoke("audit", "verify", "--instance", str(folder))
    assert result.exit_code == 0 and "5 entries" in result.stdout and "no checkpoint yet" in result.stdout
    note = invoke("audit", "checkpoint", "--instance", str(folder)).stdout
    key = invoke("audit", "key", "--instance", str(folder)).stdout
    said = parse_checkpoint(parse_verifier(key).verify(note))
    leaves = [merkle.leaf_hash(leaf_bytes(e)) for e in archive.catalog.audit_entries()]
    assert (said.size, said.root) == (5, merkle.root(leaves))
    assert "1 checkpoints verify" in invoke("audit", "verify", "--instance", str(folder)).stdout


def test_the_key_is_in_the_backup_and_comes_back_with_the_restore(instance: Instance, tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(pdf_bytes())
    _cli(instance, "add", "--public", str(tmp_path / "a.pdf"))
    _cli(instance, "backup", str(tmp_path / "backup"))
    kept = tmp_path / "backup" / "keys" / "checkpoint_key"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert kept.read_bytes() == (instance.path / "checkpoint_key").read_bytes()
    restored = tmp_path / "restored"
    assert invoke("restore", str(tmp_path / "backup"), "--instance", str(restored)).exit_code == 0
    assert stat.S_IMODE((restored / "checkpoint_key").stat().st_mode) == 0o600
    result = invoke("audit", "key", "--instance", str(restored))
    assert result.stdout == _cli(instance, "audit", "key")
    result = invoke("audit", "verify", "--instance", str(restored))
    assert result.exit_code == 0 and "1 checkpoints verify" in result.stdout


def test_a_backup_with_a_damaged_key_is_refused_naming_it(instance: Instance, tmp_path: Path) -> None:
    _cli(instance, "backup", str(tmp_path / "backup"))
    kept = tmp_path / "backup" / "keys" / "checkpoint_key"
    kept.write_text(kept.read_text().replace("+", "-", 1))
    result = invoke("restore", str(tmp_path / "backup"), "--instance", str(tmp_path / "restored"))
    assert result.exit_code == 2 and "the backup's checkpoint_key is missing or corrupt" in result.stderr
    assert not (tmp_path / "restored" / "catalog.sqlite3").exists()


def test_an_erasure_is_checkpointed_and_every_checkpoint_before_it_still_verifies(
    archive: Archive, instance: Instance
) -> None:
    """The tree covers personal fields only by their keyed digests: erasing them changes no leaf."""
    approval = archive.access.approve(archive.access.file(dict(REQUEST_FIELDS)).id)
    archive.access.release(approval.release_token)
    archive.checkpoints.wait()
    before = [c.root for c in archive.catalog.checkpoints()]
    result = invoke("gdpr", "erase", "--email", REQUEST_FIELDS["contact_email"], "--instance", str(instance.path))
    assert result.exit_code == 0, result.stderr
    assert archive.catalog.audit_entries().__next__().personal is None  # the request's fields are gone
    after = archive.catalog.checkpoints()
    assert [c.root for c in after[: len(before)]] == before
    assert after[-1].size == len(list(archive.catalog.audit_entries()))  # the erasure is in a checkpoint
    assert f"{len(after)} checkpoints verify" in _cli(instance, "audit", "verify")


def test_a_checkpoint_is_made_at_least_daily(archive: Archive, clock: Clock) -> None:
    archive.publish([pdf_bytes()], filename="a.pdf", slug="brochure", visibility="public")
    archive.checkpoints.wait()
    first = archive.checkpoints.daily()
    assert first is not None and first.id == 1  # a fresh one is kept
    clock.advance(hours=23)
    assert archive.checkpoints.daily() == first
    clock.advance(hours=2)
    second = archive.checkpoints.daily()
    assert second is not None and second.id == 2 and second.size == first.size and second.created_at == clock.now
    assert archive.checkpoints.status().problems(clock.now) == []
    clock.advance(days=2)
    assert archive.checkpoints.status().problems(clock.now) == [
        f"the newest checkpoint is from {second.created_at:%Y-%m-%d %H:%M}: run `pligt audit stamp`"
    ]


def test_a_damaged_key_file_is_named(instance: Instance) -> None:
    key_file = instance.path / "checkpoint_key"
    key_file.write_text("PRIVATE+KEY+broken\n")
    result = invoke("audit", "key", "--instance", str(instance.path))
    assert result.exit_code == 7 and f"{key_file} is not a checkpoint key" in result.stderr
    assert key_file.read_text() == "PRIVATE+KEY+broken\n"  # left for the owner to restore from a backup


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('tsa_url = "https://tsa.example"\n', "tsa_ca_file must name the PEM file of the TSA's CA"),
        ('tsa_url = "tsa.example"\ntsa_ca_file = "ca.pem"\n', "tsa_url 'tsa.example' must look like https://"),
        ('tsa_url = "https://tsa.example"\ntsa_ca_file = "/nonexistent/ca.pem"\n', "tsa_ca_file /nonexistent/ca.pem"),
    ],
)
def test_a_bad_tsa_setting_is_refused_naming_it(instance: Instance, lines: str, message: str) -> None:
    with instance.settings.config_file.open("a", encoding="utf-8") as f:
        f.write(lines)
    result = invoke("audit", "checkpoint", "--instance", str(instance.path))
    assert result.exit_code == 7 and message in result.stderr


def test_the_web_app_checkpoints_a_burst_of_uploads_once_after_it(app: Flask, instance: Instance) -> None:
    """No upload waits for a checkpoint: they come a second after the changes, one for the burst."""
    with app.app_context():
        core = pligt().archive
    assert core.checkpoints.background and core.checkpoints.delay == 1.0
    client = app.test_client()
    for n in range(5):
        answer = client.post(
            f"/api/items?filename=b{n}.pdf&visibility=public", data=pdf_bytes(f"b{n}"), auth=instance.owner_auth
        )
        assert answer.status_code == 201
    assert core.catalog.checkpoints() == []  # none yet: the burst is still going on, as far as it knows
    core.checkpoints.wait()
    assert [c.size for c in core.catalog.checkpoints()] == [5]
