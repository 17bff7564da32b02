"""A PostgreSQL catalog that goes away, or whose disk fills: the same domain errors as SQLite's.

A server whose database goes away answers 503 with Retry-After, never a
traceback, and recovers when it returns; a full disk under the database is
:class:`OutOfSpace` (507) and leaves nothing half written. The cluster here is
this module's own (the session's serves the other tests): it is stopped under
a running ``pligt serve`` and started again, and given a tablespace on a small
tmpfs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import requests

from pligt.core.catalog import open_catalog
from pligt.core.catalog.base import DownloadRow
from pligt.core.errors import OutOfSpace
from pligt.instance import build_archive
from pligt.instance import init_instance
from pligt.settings import load_settings
from tests.support.access import REQUEST_FIELDS
from tests.support.data import pdf_bytes
from tests.support.postgres import Cluster
from tests.support.postgres import start_cluster
from tests.support.servers import Server
from tests.support.servers import start_server
from tests.support.servers import stop_server

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[Cluster]:
    cluster = start_cluster()
    yield cluster
    cluster.remove()


def _serving_a_brochure(cluster: Cluster, tmp_path: Path) -> tuple[str, Server]:
    """A new database with one public brochure, and ``pligt serve`` (one worker, four threads) on it."""
    url = cluster.new_database()
    settings = load_settings(tmp_path / "instance", env={"PLIGT_CATALOG": url})
    init_instance(settings, chosen=("catalog",))
    archive = build_archive(settings)
    archive.publish([pdf_bytes("brochure")], filename="brochure.pdf", visibility="public")
    archive.catalog.close()
    return url, start_server(settings.instance, tmp_path / "server.log", "--workers", "1", "--threads", "4")


def test_the_catalog_going_away_is_503_with_retry_after_and_the_server_recovers(
    own_cluster: Cluster, tmp_path: Path
) -> None:
    _, server = _serving_a_brochure(own_cluster, tmp_path)
    path = server.url + "/files/brochure/v1/brochure.pdf"
    try:
        assert requests.get(path, timeout=30).status_code == 200
        own_cluster.stop("fast")
        try:
            for refused in (
                requests.get(path, timeout=60),
                requests.get(server.url + "/", timeout=60),
                requests.post(server.url + "/access/requests", json=REQUEST_FIELDS, timeout=60),
            ):
                assert refused.status_code == 503, (refused.url, refused.status_code, refused.text[:300])
                assert int(refused.headers["Retry-After"]) > 0
                assert "cannot reach the catalog" in refused.text
        finally:
            own_cluster.start()
        deadline = time.monotonic() + 60
        while (status := requests.get(path, timeout=30).status_code) != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert status == 200
        assert requests.get(server.url + "/healthz", timeout=30).status_code == 200
    finally:
        stop_server(server)
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]


@pytest.fixture
def small_tablespace(own_cluster: Cluster) -> Iterator[tuple[str, Path]]:
    """A database whose tables live on a 16 MiB tmpfs (a tablespace); its URL and the mount point."""
    mount = Path(tempfile.mkdtemp(prefix="pligt-pg-small-"))
    mount.chmod(0o755)  # the server's user must reach its tablespace
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a small tmpfs (it needs root): {mounted.stderr.strip()}")
    location = mount / "pg"
    location.mkdir()
    shutil.chown(location, "postgres", "postgres")
    name = f"pligt_small_{os.getpid()}"
    with psycopg.connect(own_cluster.url(), autocommit=True) as conn:
        conn.execute(f"CREATE TABLESPACE {name} LOCATION '{location}'")
        conn.execute(f'CREATE DATABASE "{name}" TABLESPACE {name}')
    try:
        yield own_cluster.url(name), mount
    finally:
        with psycopg.connect(own_cluster.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f"DROP TABLESPACE IF EXISTS {name}")
        subprocess.run(["umount", "-l", str(mount)], check=False)
        shutil.rmtree(mount, ignore_errors=True)


def test_a_full_disk_under_the_postgresql_catalog_is_out_of_space_and_nothing_is_half_written(
    small_tablespace: tuple[str, Path], tmp_path: Path
) -> None:
    url, mount = small_tablespace
    catalog = open_catalog(url, tmp_path)
    catalog.migrate()
    version = catalog.add_version(
        slug="brochure",
        title="Brochure",
        visibility="public",
        filename="brochure.pdf",
        size=10,
        sha256="ab" * 32,
        content_type="application/pdf",
        storage_key="brochure/1",
        published_at=T0,
        retain_until=T0 + timedelta(days=183),
    )
    filler = mount / "filler"
    with filler.open("ab", buffering=0) as out:  # as root: every last block
        for block in (1 << 20, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * block)
    # Pages the table must grow by.
    rows: list[DownloadRow] = [(None, version.id, 200, 10, True, T0, None, None)] * 20_000
    with pytest.raises(OutOfSpace, match="no space left on the disk of the catalog postgresql://"):
        catalog.record_downloads(rows)
    assert catalog.count_rows("downloads") == 0  # the transaction left nothing
    filler.unlink()
    catalog.record_downloads(rows[:10])  # space again: writes go on
    assert catalog.count_rows("downloads") == 10
    catalog.close()
