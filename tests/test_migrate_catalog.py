"""Moving an instance's catalog to PostgreSQL and back (``pligt migrate-catalog``), and keeping it there.

On the realistic instance (requests in every state, erasures, rotations,
downloads, a long audit log): every row arrives as it was, the audit log
verifies to the same head, the proof of deposit reads the same, and new rows
continue the ids. An interrupted copy (the process killed mid-way) leaves the
target empty and is simply run again. ``pligt backup`` of a PostgreSQL
catalog is the same one-file backup, restorable into either engine.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pligt.core.catalog import TABLES
from pligt.core.catalog import open_catalog
from tests.support.cli import PLIGT
from tests.support.data import pdf_bytes
from tests.support.postgres import Cluster
from tests.support.realistic import END
from tests.support.realistic import World
from tests.support.realistic import copy_instance
from tests.support.realistic import pligt_at
from tests.support.realistic import pligt_json
from tests.support.realistic import shared_world

pytestmark = pytest.mark.external

NOW = END + timedelta(days=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return shared_world(tmp_path_factory.mktemp("world") / "instance")


@pytest.fixture
def inst(world: World, tmp_path: Path) -> Path:
    return copy_instance(world, tmp_path / "instance")


def sqlite_rows(path: Path) -> dict[str, list[dict[str, Any]]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return {t: [dict(r) for r in db.execute(f"SELECT * FROM {t} ORDER BY {k}")] for t, k in TABLES}
    finally:
        db.close()


def postgres_rows(url: str) -> dict[str, list[dict[str, Any]]]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        return {t: list(cursor.execute(f"SELECT * FROM {t} ORDER BY {k}")) for t, k in TABLES}


def configured_catalog(instance: Path) -> str:
    return str(tomllib.loads((instance / "pligt.toml").read_text(encoding="utf-8"))["catalog"])


def same(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Rows comparable across engines: the counters in meta move with every copied row, the rest must not."""
    return {t: [r for r in found if t != "meta"] for t, found in rows.items()}


def test_to_postgresql_and_back_every_row_the_audit_log_and_the_proof_of_deposit_stay(
    inst: Path, postgres_url: str, tmp_path: Path
) -> None:
    before = sqlite_rows(inst / "catalog.sqlite3")
    harvest = pligt_json(NOW, "harvest", "--instance", str(inst))
    head = pligt_json(NOW, "audit", "head", "--instance", str(inst))

    moved = pligt_json(NOW, "migrate-catalog", "--to", postgres_url, "--instance", str(inst))
    assert moved["copied"] and moved["audit_head"] == head["head"]
    assert configured_catalog(inst) == postgres_url
    assert same(postgres_rows(postgres_url)) == same(before)
    assert pligt_at(NOW, "audit", "verify", "--instance", str(inst)).returncode == 0
    assert pligt_json(NOW, "harvest", "--instance", str(inst)) == harvest
    assert pligt_json(NOW, "audit", "head", "--instance", str(inst))["head"] == head["head"]

    (tmp_path / "new.pdf").write_bytes(pdf_bytes("after the move"))
    added = pligt_at(NOW, "add", str(tmp_path / "new.pdf"), "--public", "--instance", str(inst))
    assert added.returncode == 0, added.stderr  # the ids go on after the copied ones
    on_postgres = postgres_rows(postgres_url)
    assert len(on_postgres["versions"]) == len(before["versions"]) + 1

    back = pligt_json(NOW, "migrate-catalog", "--to", "back.sqlite3", "--instance", str(inst))
    assert back["copied"]
    assert configured_catalog(inst) == str(inst / "back.sqlite3")
    assert same(sqlite_rows(inst / "back.sqlite3")) == same(on_postgres)
    assert pligt_at(NOW, "audit", "verify", "--instance", str(inst)).returncode == 0
    assert sqlite_rows(inst / "catalog.sqlite3") == before  # the old catalog is left as it was


def test_a_migration_killed_mid_copy_leaves_the_target_empty_and_runs_again(inst: Path, postgres_url: str) -> None:
    open_catalog(postgres_url, inst).migrate()
    config = (inst / "pligt.toml").read_text(encoding="utf-8")
    with psycopg.connect(postgres_url) as blocker:
        # The copy writes the earlier tables, then waits for this lock on downloads: kill it there.
        blocker.execute("LOCK TABLE downloads IN EXCLUSIVE MODE")  # reading it goes on
        process = subprocess.Popen(
            [PLIGT, "migrate-catalog", "--to", postgres_url, "--instance", str(inst)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        with psycopg.connect(postgres_url, autocommit=True) as watcher:
            while time.monotonic() < deadline:
                waiting = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                ).fetchone()
                if waiting and waiting[0]:
                    break
                assert process.poll() is None, process.communicate()
                time.sleep(0.05)
            else:
                raise AssertionError("the copy never reached the downloads table")
            os.kill(process.pid, signal.SIGKILL)  # items, versions, requests, credentials, releases written
            process.communicate()
        blocker.rollback()
    rows = postgres_rows(postgres_url)
    assert {t: len(r) for t, r in rows.items() if t != "meta"} == {t: 0 for t, _ in TABLES if t != "meta"}
    assert (inst / "pligt.toml").read_text(encoding="utf-8") == config

    again = pligt_json(NOW, "migrate-catalog", "--to", postgres_url, "--instance", str(inst))
    assert again["copied"]
    assert same(postgres_rows(postgres_url)) == same(sqlite_rows(inst / "catalog.sqlite3"))


def test_a_target_that_holds_another_catalog_is_refused_and_nothing_changes(
    inst: Path, postgres_url: str, tmp_path: Path
) -> None:
    other = pligt_at(NOW, "init", "--instance", str(tmp_path / "other"))
    assert other.returncode == 0
    holder = open_catalog(str(tmp_path / "other" / "catalog.sqlite3"), tmp_path)
    target = open_catalog(postgres_url, tmp_path)
    from pligt.core.catalog.copy import copy_catalog

    copy_catalog(holder, target)
    holder.close()
    target.close()
    config = (inst / "pligt.toml").read_text(encoding="utf-8")
    result = pligt_at(NOW, "migrate-catalog", "--to", postgres_url, "--instance", str(inst))
    assert result.returncode == 5, result.stderr
    assert "already holds another catalog" in result.stderr
    assert (inst / "pligt.toml").read_text(encoding="utf-8") == config


def test_an_unknown_target_scheme_is_exit_7(inst: Path) -> None:
    result = pligt_at(NOW, "migrate-catalog", "--to", "mysql://db/pligt", "--instance", str(inst))
    assert result.returncode == 7 and "unknown scheme" in result.stderr


def test_a_postgresql_instance_is_checked_backed_up_and_restored_into_either_engine(
    inst: Path, postgres: Cluster, tmp_path: Path
) -> None:
    url = postgres.new_database()
    pligt_json(NOW, "migrate-catalog", "--to", url, "--instance", str(inst))
    checked = pligt_at(NOW, "check", "--instance", str(inst))
    assert checked.returncode == 0, checked.stderr
    assert "catalog: ok (postgresql://pligt@127.0.0.1" in checked.stdout

    summary = pligt_json(NOW, "backup", str(tmp_path / "backup"), "--instance", str(inst))
    assert (tmp_path / "backup" / "catalog.sqlite3").is_file()
    assert summary["audit_head"] == pligt_json(NOW, "audit", "head", "--instance", str(inst))["head"]

    into_sqlite = tmp_path / "restored-sqlite"
    assert pligt_json(NOW, "restore", str(tmp_path / "backup"), "--instance", str(into_sqlite))["versions"]
    into_postgres = tmp_path / "restored-postgres"
    into_postgres.mkdir()
    second = postgres.new_database()
    (into_postgres / "pligt.toml").write_text(f'catalog = "{second}"\n', encoding="utf-8")
    assert pligt_json(NOW, "restore", str(tmp_path / "backup"), "--instance", str(into_postgres))["versions"]
    for restored in (into_sqlite, into_postgres):
        assert pligt_at(NOW, "audit", "verify", "--instance", str(restored)).returncode == 0
        assert pligt_json(NOW, "audit", "head", "--instance", str(restored))["head"] == summary["audit_head"]
    assert same(postgres_rows(second)) == same(postgres_rows(url))
    again = pligt_at(NOW, "restore", str(tmp_path / "backup"), "--instance", str(into_postgres))
    assert again.returncode == 5 and "holds a catalog already" in again.stderr
