"""A deployment on PostgreSQL: its publishers share one pool per server process, each schema set per transaction.

Sixty publishers answer through one ``pligt serve --deployment`` on a PostgreSQL
server that accepts only forty connections (a pool per publisher needed four or
more each, per worker), again after the server has let some of them go; and the
same deployment behind PgBouncer in transaction pooling (which refuses a
schema chosen at connection time) with a single server connection: every
transaction of every publisher then runs on that one connection, one publisher's
after another's, and none ever lists another's file, nor leaves its schema on
the connection for the next client. Nor does one publisher's write wait for
another's.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from pligt.core.catalog import Catalog
from pligt.core.catalog import open_catalog
from pligt.core.catalog.postgresql import POOL_SIZE
from pligt.core.catalog.postgresql import close_shared_pools
from pligt.core.catalog.postgresql import create_schema
from pligt.core.errors import CatalogBusy
from pligt.core.models import PUBLIC
from pligt.hosting import add_publisher
from pligt.hosting import load_deployment
from pligt.hosting import schema_name
from pligt.instance import build_archive
from pligt.settings import Settings
from tests.support.data import pdf_bytes
from tests.support.hosting import Hosted
from tests.support.hosting import serve
from tests.support.hosting import stop
from tests.support.pgbouncer import start_bouncer
from tests.support.postgres import Cluster
from tests.support.postgres import start_cluster

pytestmark = [pytest.mark.postgres]

PUBLISHERS = 60
#: Below what a pool per publisher needed (four ready per publisher, per worker), far above one shared pool's.
MAX_CONNECTIONS = 40
#: Fewer than the publishers, so that the server lets some go and builds them again.
APPS_IN_MEMORY = 20
WORKERS = Settings.workers
MARK = re.compile(rb"only-p\d{3}")


@dataclass
class Deployed:
    cluster: Cluster
    database: str
    hosted: Hosted
    names: list[str]


def _name(i: int) -> str:
    return f"p{i:03d}.example"


def _mark(name: str) -> bytes:
    return f"only-{name.split('.')[0]}".encode()


def _toml(catalog: str) -> str:
    return f'scheme = "http"\napps_in_memory = {APPS_IN_MEMORY}\ncatalog = "{catalog}"\n'


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """Sixty publishers in schemas of one database, each with one public file named after it."""
    cluster = start_cluster(max_connections=MAX_CONNECTIONS)
    try:
        database = cluster.new_database()
        folder = tmp_path_factory.mktemp("pool") / "deployment"
        folder.mkdir()
        (folder / "deployment.toml").write_text(_toml(database), encoding="utf-8")
        deployment = load_deployment(folder)
        names = []
        for i in range(PUBLISHERS):
            name, _ = add_publisher(deployment, _name(i), f"owner@{_name(i)}")
            archive = build_archive(deployment.publisher_settings(name, env={}))
            try:
                archive.publish([pdf_bytes(name)], filename=f"{_mark(name).decode()}.pdf", visibility=PUBLIC)
            finally:
                archive.catalog.close()
            names.append(name)
        close_shared_pools()  # this process's connections: the server's alone are counted below
        yield Deployed(cluster, database, Hosted(folder), names)
    finally:
        cluster.remove()


def _front_page_marks(hosted: Hosted, name: str) -> list[bytes]:
    answer = hosted.get(name, "/")
    assert answer.status_code == 200, (name, answer.status_code, answer.text[:300])
    return sorted(set(MARK.findall(answer.content)))


def _interleave(hosted: Hosted, names: list[str], threads: int = 8, rounds: int = 12) -> list[str]:
    """Ask for ``names``' front pages from several threads at once, each in another order; return what crossed."""
    crossed: list[str] = []

    def ask(offset: int) -> None:
        for r in range(rounds):
            name = names[(offset + r) % len(names)]
            try:
                marks = _front_page_marks(hosted, name)
            except AssertionError as e:
                crossed.append(f"{name}: {e}")
                continue
            if marks != [_mark(name)]:
                crossed.append(f"{name} listed {marks}")

    workers = [threading.Thread(target=ask, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    return crossed


def _connections(database: str) -> int:
    with psycopg.connect(database, autocommit=True) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.server
def test_sixty_publishers_answer_on_a_server_of_forty_connections(deployed: Deployed, tmp_path: Path) -> None:
    hosted = deployed.hosted
    serve(hosted, tmp_path / "serve.log")
    try:
        for name in deployed.names:
            assert _front_page_marks(hosted, name) == [_mark(name)]
        # The first ones were let go meanwhile (APPS_IN_MEMORY): built again, on the same pools.
        for name in deployed.names[:APPS_IN_MEMORY]:
            assert _front_page_marks(hosted, name) == [_mark(name)]
        assert _interleave(hosted, deployed.names[:6]) == []
        assert _connections(deployed.database) <= WORKERS * POOL_SIZE
    finally:
        stop(hosted)


@pytest.mark.server
def test_behind_pgbouncer_on_one_server_connection_no_publisher_lists_anothers_file(
    deployed: Deployed, tmp_path: Path
) -> None:
    bouncer = start_bouncer(deployed.cluster, pool_size=1)
    hosted = deployed.hosted
    toml = hosted.folder / "deployment.toml"
    toml.write_text(_toml(bouncer.url(deployed.database)), encoding="utf-8")
    try:
        serve(hosted, tmp_path / "serve.log")
        alpha, bravo = deployed.names[:2]
        # Alpha's and Bravo's requests interleaved, from many threads of two workers, on one server connection.
        assert _interleave(hosted, [alpha, bravo], threads=8, rounds=16) == []
        assert _interleave(hosted, deployed.names[:8]) == []
        # The next client of that connection finds no publisher's schema on it.
        with psycopg.connect(bouncer.url(deployed.database), autocommit=True, prepare_threshold=None) as conn:
            row = conn.execute("SHOW search_path").fetchone()
        assert row is not None
        assert not any(schema_name(name) in str(row[0]) for name in deployed.names), row
    finally:
        stop(hosted)
        toml.write_text(_toml(deployed.database), encoding="utf-8")
        bouncer.stop()


def test_one_publishers_write_waits_for_no_other_publishers(postgres_url: str, tmp_path: Path) -> None:
    """Each schema has its own write lock: a long write at one publisher holds up its own writes only."""

    def opened(schema: str, busy_timeout: float) -> Catalog:
        catalog = open_catalog(f"{postgres_url}?options=-csearch_path%3D{schema}", tmp_path, busy_timeout=busy_timeout)
        catalog.migrate()
        return catalog

    for schema in ("p_one", "p_two"):
        create_schema(postgres_url, schema)
    holder, same, other = opened("p_one", 5), opened("p_one", 0.5), opened("p_two", 0.5)
    now = datetime.now(UTC)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder.transaction():
            holder.append_audit("test.holding", {}, None, now)
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert holding.wait(10)
        other.append_audit("test.other", {}, None, now)  # another publisher: at once
        with pytest.raises(CatalogBusy):
            same.append_audit("test.same", {}, None, now)  # the same publisher: after the holder
    finally:
        release.set()
        thread.join(30)
    assert [e.action for e in other.audit_entries()] == ["test.other"]
    assert [e.action for e in holder.audit_entries()] == ["test.holding"]
