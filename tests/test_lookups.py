"""The download path's answers kept in memory: one small catalog query per download, never stale.

Two ``Archive`` objects on one catalog stand for two processes: the server that
serves downloads, and the CLI (or another worker) that changes the catalog.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from pligt.core import Archive
from pligt.core import SqliteCatalog
from pligt.core.errors import Gone
from pligt.core.errors import NotFound
from pligt.core.storage import LocalStorage
from tests.support.access import issue_credential
from tests.support.app import Clock


def open_archive(folder: Path, clock: Clock) -> Archive:
    catalog = SqliteCatalog(folder / "catalog.sqlite3")
    catalog.migrate()
    return Archive(catalog, LocalStorage(folder / "files"), clock=clock)


@pytest.fixture
def server(tmp_path: Path, clock: Clock) -> Archive:
    return open_archive(tmp_path, clock)


@pytest.fixture
def cli(tmp_path: Path, clock: Clock, server: Archive) -> Archive:
    return open_archive(tmp_path, clock)


def statements_during(archive: Archive, action: Callable[[], object]) -> list[str]:
    """The SQL statements this thread's catalog connection ran during ``action()``."""
    seen: list[str] = []
    assert isinstance(archive.catalog, SqliteCatalog)
    connection = archive.catalog._db  # the connection of this thread, as a worker thread has its own
    connection.set_trace_callback(seen.append)
    try:
        action()
    finally:
        connection.set_trace_callback(None)
    return seen


def test_a_repeated_download_lookup_runs_one_small_query(server: Archive, cli: Archive) -> None:
    version = cli.publish([b"report\n"], filename="report.txt").version
    credential, _ = issue_credential(cli)
    first = statements_during(server, lambda: server.find_download(version.slug, 1, credential.id))
    again = statements_during(server, lambda: server.find_download(version.slug, 1, credential.id))
    assert len(first) == 3  # the generation, the version, the credential
    assert len(again) == 1
    assert "lookups_changed" in again[0]


def test_a_withdrawal_by_another_process_counts_from_the_next_download(
    server: Archive, cli: Archive, clock: Clock
) -> None:
    version = cli.publish([b"report\n"], filename="report.txt").version
    assert server.find_download(version.slug, 1).version.withdrawn_at is None
    clock.advance(days=184)
    cli.withdraw(version.slug, 1)
    with pytest.raises(Gone):
        server.find_download(version.slug, 1)


def test_a_revocation_by_another_process_counts_from_the_next_download(server: Archive, cli: Archive) -> None:
    version = cli.publish([b"report\n"], filename="report.txt").version
    credential, _ = issue_credential(cli)
    assert server.find_download(version.slug, 1, credential.id).credential_active is True
    cli.access.revoke(credential.id)
    assert server.find_download(version.slug, 1, credential.id).credential_active is False


def test_a_credential_expires_on_time_without_any_change_to_the_catalog(
    server: Archive, cli: Archive, clock: Clock
) -> None:
    version = cli.publish([b"report\n"], filename="report.txt").version
    credential, _ = issue_credential(cli, valid_days=30)
    assert server.find_download(version.slug, 1, credential.id).credential_active is True
    clock.now = credential.expires_at - timedelta(seconds=1)
    assert server.find_download(version.slug, 1, credential.id).credential_active is True
    clock.now = credential.expires_at
    assert server.find_download(version.slug, 1, credential.id).credential_active is False


def test_a_new_version_published_elsewhere_becomes_the_latest_at_once(server: Archive, cli: Archive) -> None:
    cli.publish([b"first\n"], filename="report.txt", slug="report")
    assert server.find_download("report").version.number == 1
    cli.publish([b"second\n"], filename="report.txt", slug="report")
    assert server.find_download("report").version.number == 2
    assert server.find_download("report", 2).version.size == len(b"second\n")


def test_unknown_versions_are_not_found_and_unknown_credentials_not_active(server: Archive, cli: Archive) -> None:
    cli.publish([b"report\n"], filename="report.txt", slug="report")
    with pytest.raises(NotFound):
        server.find_download("report", 2)
    assert server.find_download("report", 1, credential_id=999).credential_active is False


def test_kept_bytes_of_small_files_are_dropped_when_the_catalog_changes(
    server: Archive, cli: Archive, clock: Clock
) -> None:
    version = cli.publish([b"report\n"], filename="report.txt").version
    found = server.find_download(version.slug, 1).version
    assert server.read_small(found) == b"report\n"
    assert len(server.small_files) == 1
    clock.advance(days=184)
    cli.withdraw(version.slug, 1)  # the bytes are deleted from storage...
    with pytest.raises(Gone):
        server.find_download(version.slug, 1)
    assert len(server.small_files) == 0  # ...and no longer held by the server either


def test_a_catalog_of_the_first_schema_is_upgraded_and_then_counts_changes(tmp_path: Path, clock: Clock) -> None:
    import sqlite3

    from pligt.core.catalog import _MIGRATIONS  # the schema the first release made

    with sqlite3.connect(tmp_path / "catalog.sqlite3") as db:
        db.executescript(_MIGRATIONS[0])
        db.execute("PRAGMA user_version = 1")
    archive = open_archive(tmp_path, clock)  # migrates, as `pligt serve` does at start
    before = archive.catalog.lookups_generation()
    version = archive.publish([b"report\n"], filename="report.txt").version
    assert archive.catalog.lookups_generation() > before
    assert archive.find_download(version.slug, 1).version.id == version.id


def test_preloaded_versions_are_served_without_asking_the_catalog_again(server: Archive, cli: Archive) -> None:
    for n in range(3):
        cli.publish([f"file {n}\n".encode()], filename=f"f{n}.txt")
    assert server.lookups.preload() == 3
    for n in range(3):
        asked = statements_during(server, functools.partial(server.find_download, f"f{n}", 1))
        assert len(asked) == 1 and "lookups_changed" in asked[0]
