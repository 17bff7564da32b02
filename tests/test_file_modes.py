"""Files that hold personal data or secrets are the instance user's alone, whatever the umask (issue 22).

The catalog holds requesters' names and email addresses; the secret key, the
checkpoint key and pligt.toml (SMTP password) are secrets; a backup holds all of
them. Each test runs under umask 000, where a file made without care is 0666.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from pathlib import Path

import pytest

from pligt.core.catalog import SqliteCatalog
from pligt.instance import build_archive
from pligt.settings import load_settings
from tests.support.access import REQUEST_FIELDS
from tests.support.cli import invoke


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_makes_the_instance_folder_and_its_secrets_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "instance"
    assert invoke("init", "--instance", str(folder)).exit_code == 0
    settings = load_settings(folder, env={})
    assert mode(folder) == 0o700
    for path in (settings.config_file, settings.secret_file, settings.checkpoint_key_file, folder / "catalog.sqlite3"):
        assert path.is_file(), path
        assert mode(path) == 0o600, path


def test_the_catalog_and_its_wal_and_shm_are_owner_only_while_open(tmp_path: Path) -> None:
    catalog = SqliteCatalog(tmp_path / "new" / "catalog.sqlite3")
    try:
        catalog.migrate()
        catalog.set_owner("owner", "x", datetime.now(UTC))
        files = sorted((tmp_path / "new").iterdir())
        assert [f.name for f in files] == ["catalog.sqlite3", "catalog.sqlite3-shm", "catalog.sqlite3-wal"]
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert mode(tmp_path / "new") == 0o700
    finally:
        catalog.close()


def test_a_backup_and_what_it_restores_are_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "instance"
    assert invoke("init", "--instance", str(folder)).exit_code == 0
    brochure = tmp_path / "brochure.pdf"
    brochure.write_bytes(b"%PDF-1.4\n" + b"x" * 100 + b"\n%%EOF\n")
    assert invoke("add", "--instance", str(folder), "--public", str(brochure)).exit_code == 0
    backup = tmp_path / "backups" / "monday"
    assert invoke("backup", "--instance", str(folder), str(backup)).exit_code == 0
    made = [backup, *backup.rglob("*")]
    assert {str(p): mode(p) for p in made} == {str(p): 0o700 if p.is_dir() else 0o600 for p in made}
    assert any(p.name == "catalog.sqlite3" for p in made)

    restored = tmp_path / "restored"
    assert invoke("restore", "--instance", str(restored), str(backup)).exit_code == 0, "restore"
    settings = load_settings(restored, env={})
    assert mode(restored) == 0o700
    for path in (settings.config_file, settings.checkpoint_key_file, restored / "catalog.sqlite3"):
        assert mode(path) == 0o600, path


def test_the_personal_data_key_store_and_its_backups_are_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "instance"
    assert invoke("init", "--instance", str(folder)).exit_code == 0
    archive = build_archive(load_settings(folder, env={}))
    try:
        archive.access.file(dict(REQUEST_FIELDS))  # the first request makes the first key
    finally:
        archive.catalog.close()
    store = folder / "personal_keys.sqlite3"
    assert store.is_file() and mode(store) == 0o600
    kept = tmp_path / "key-backups"
    assert invoke("keys", "backup", "--instance", str(folder), str(kept)).exit_code == 0
    made = [kept, *kept.rglob("*")]
    assert len(made) > 1
    assert {str(p): mode(p) for p in made} == {str(p): 0o700 if p.is_dir() else 0o600 for p in made}
