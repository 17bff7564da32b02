"""The contract every catalog must keep, run against SQLite and PostgreSQL alike.

Each test gets a fresh, migrated catalog of each kind (a SQLite file in the
test's folder; a new database in the session's throw-away PostgreSQL cluster,
reached directly and through PgBouncer in transaction pooling, where any
transaction may run on another server connection) and uses only the catalog's
interface, as the archive does. Where a test needs
a second app server, it opens a second catalog on the same location.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest

from pligt.core.catalog import SCHEMA_VERSION
from pligt.core.catalog import Catalog
from pligt.core.catalog import open_catalog
from pligt.core.catalog.postgresql import create_schema
from pligt.core.credentials.shared_checks import failures_after
from pligt.core.errors import CatalogBusy
from pligt.core.errors import Conflict
from pligt.core.errors import StorageError
from pligt.core.proof.audit import verify_chain
from tests.support.net import free_port

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
OpenCatalog = Callable[..., Catalog]


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("pgbouncer", marks=pytest.mark.postgres),
        pytest.param("postgresql schema", marks=pytest.mark.postgres),
        pytest.param("pgbouncer schema", marks=pytest.mark.postgres),
    ]
)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The ``catalog`` setting of a fresh catalog of each kind (PostgreSQL directly, and behind PgBouncer).

    "schema": a hosted publisher's catalog (pligt/hosting.py), a schema of the database chosen
    in the URL, set per transaction on the pool its database's catalogs share in a process.
    """
    if request.param == "sqlite":
        return str(tmp_path / "catalog.sqlite3")
    kind, _, schema = str(request.param).partition(" ")
    url = str(request.getfixturevalue("postgres_url" if kind == "postgresql" else "pgbouncer_url"))
    if not schema:
        return url
    create_schema(url, "p_contract")
    return f"{url}?options=-csearch_path%3Dp_contract"


@pytest.fixture
def opener(location: str, tmp_path: Path) -> Iterator[OpenCatalog]:
    """Open (and migrate) catalogs on the test's location, as app servers would; close them afterwards."""
    opened: list[Catalog] = []

    def open_one(**options: object) -> Catalog:
        catalog = open_catalog(location, tmp_path, **options)  # type: ignore[arg-type]
        catalog.migrate()
        opened.append(catalog)
        return catalog

    yield open_one
    for catalog in opened:
        catalog.close()


@pytest.fixture
def catalog(opener: OpenCatalog) -> Catalog:
    return opener()


def publish(catalog: Catalog, slug: str = "brochure", *, visibility: str = "public", at: datetime = T0) -> int:
    version = catalog.add_version(
        slug=slug,
        title=slug.title(),
        visibility=visibility,
        filename=f"{slug}.pdf",
        size=1234,
        sha256="ab" * 32,
        content_type="application/pdf",
        storage_key=f"{slug}/{at.timestamp():.0f}/{time.monotonic_ns()}",
        published_at=at,
        retain_until=at + timedelta(days=183),
    )
    return version.id


def approved_request(catalog: Catalog) -> int:
    request = catalog.add_request(
        {
            "institution": "Det Kgl. Bibliotek",
            "contact_name": "Netarkivet",
            "contact_email": "netarkivet@kb.dk",
            "legal_basis": "Pligtafleveringsloven",
            "message": "",
        },
        T0,
    )
    catalog.set_request_status(request.id, "approved", T0, decided=True)
    return request.id


def test_a_new_catalog_is_at_the_current_schema_and_migrating_again_changes_nothing(catalog: Catalog) -> None:
    assert catalog.schema_version() == SCHEMA_VERSION
    catalog.ping()
    publish(catalog)
    catalog.migrate()
    assert catalog.schema_version() == SCHEMA_VERSION
    assert [v.slug for v in catalog.versions()] == ["brochure"]


def test_versions_are_numbered_per_item_and_listed_in_order(catalog: Catalog) -> None:
    publish(catalog, "b")
    publish(catalog, "a")
    publish(catalog, "b", at=T0 + timedelta(days=1))
    assert [(v.slug, v.number) for v in catalog.versions()] == [("a", 1), ("b", 1), ("b", 2)]
    assert [(v.slug, v.number) for v in catalog.versions(limit=2, offset=1)] == [("b", 1), ("b", 2)]
    assert catalog.count_versions() == 3
    assert catalog.count_versions(visibility="protected") == 0
    latest = catalog.download_version("b", None)
    assert latest is not None and latest.number == 2 and latest.published_at == T0 + timedelta(days=1)
    assert catalog.download_version("nothing", None) is None


def test_an_item_keeps_its_visibility(catalog: Catalog) -> None:
    publish(catalog, "c", visibility="protected")
    with pytest.raises(Conflict, match="protected"):
        publish(catalog, "c", visibility="public")
    assert [v.number for v in catalog.item_versions("c")] == [1]


def test_a_withdrawn_version_is_still_found_by_number_but_not_as_the_latest(catalog: Catalog) -> None:
    first = publish(catalog)
    publish(catalog, at=T0 + timedelta(days=1))
    second = catalog.download_version("brochure", 2)
    assert second is not None
    catalog.mark_withdrawn(second.id, T0 + timedelta(days=2))
    latest = catalog.download_version("brochure", None)
    assert latest is not None and latest.id == first
    withdrawn = catalog.download_version("brochure", 2)
    assert withdrawn is not None and withdrawn.withdrawn_at == T0 + timedelta(days=2)
    assert catalog.count_versions() == 1 and catalog.count_versions(include_withdrawn=True) == 2


def test_a_table_read_whole_in_a_snapshot_gives_every_row_in_key_order(opener: OpenCatalog) -> None:
    catalog, other = opener(), opener()
    version_id = publish(catalog)
    count = 5_000  # more than one fetch of PostgreSQL's server-side cursor
    catalog.record_downloads([(None, version_id, 200, n, True, T0, None, None) for n in range(count)])
    with catalog.snapshot():
        rows = catalog.rows("downloads")
        first = next(rows)
        other.record_downloads([(None, version_id, 206, 1, False, T0, None, None)])  # meanwhile: not seen
        rest = list(rows)
    assert [first["bytes_sent"]] + [row["bytes_sent"] for row in rest] == list(range(count))
    with pytest.raises(ValueError, match="no catalog table"):
        next(catalog.rows("pg_authid"))


def test_the_lookups_generation_moves_with_items_versions_and_credentials_only(catalog: Catalog) -> None:
    start = catalog.lookups_generation()
    version_id = publish(catalog)
    after_publish = catalog.lookups_generation()
    assert after_publish > start
    catalog.record_downloads([(None, version_id, 200, 1234, True, T0, None, None)])
    catalog.append_audit("item.published", {"slug": "brochure"}, None, T0)
    assert catalog.lookups_generation() == after_publish
    request_id = approved_request(catalog)
    credential = catalog.add_credential(request_id, "kb-crawler", "hash", T0, T0 + timedelta(days=30))
    after_credential = catalog.lookups_generation()
    assert after_credential > after_publish
    catalog.revoke_credential(credential.id, T0 + timedelta(days=1))
    assert catalog.lookups_generation() > after_credential


def test_a_change_through_one_server_is_seen_by_another_at_its_next_question(opener: OpenCatalog) -> None:
    one, other = opener(), opener()
    seen = other.lookups_generation()
    publish(one)
    assert other.lookups_generation() > seen
    assert other.download_version("brochure", None) is not None
    request_id = approved_request(one)
    credential = one.add_credential(request_id, "kb-crawler", "hash", T0, T0 + timedelta(days=30))
    found = other.get_credential(credential.id)
    assert found is not None and found.active(T0)
    one.revoke_credential(credential.id, T0)
    revoked = other.get_credential(credential.id)
    assert revoked is not None and not revoked.active(T0)


def test_what_a_request_asks_sees_any_servers_change_at_its_next_question(opener: OpenCatalog) -> None:
    """The change counter, as every download asks it: its own change and another server's, at once."""
    one, other = opener(), opener()
    before = one.lookups_generation()
    assert other.lookups_generation() == before
    publish(one)
    assert one.lookups_generation() > before
    assert other.lookups_generation() == one.lookups_generation() == other.lookups_generation()
    request_id = approved_request(other)
    other.add_credential(request_id, "u", "h", T0, T0 + timedelta(days=1))
    assert one.lookups_generation() == other.lookups_generation() > before


def test_under_load_no_question_begun_after_a_change_misses_it(opener: OpenCatalog) -> None:
    """Requests asking at once: none begun after a commit may answer from before it."""
    writer, server = opener(), opener()
    committed = [server.lookups_generation()]
    stop = threading.Event()
    missed: list[tuple[int, int]] = []

    def ask() -> None:
        while not stop.is_set():
            known = committed[-1]  # committed before this question begins
            answer = server.lookups_generation()
            if answer < known:
                missed.append((known, answer))

    readers = [threading.Thread(target=ask) for _ in range(8)]
    for reader in readers:
        reader.start()
    try:
        for n in range(40):
            publish(writer, f"item-{n}")
            committed.append(writer.lookups_generation())
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert missed == []


def test_a_credential_needs_an_approved_request(catalog: Catalog) -> None:
    pending = catalog.add_request(
        {"institution": "x", "contact_name": "y", "contact_email": "z@kb.dk", "legal_basis": "l", "message": "m"}, T0
    )
    with pytest.raises(Conflict, match="not approved"):
        catalog.add_credential(pending.id, "u", "h", T0, T0 + timedelta(days=1))
    assert catalog.credentials() == []
    request_id = approved_request(catalog)
    made = catalog.add_credential(request_id, "u", "h", T0, T0 + timedelta(days=1))
    assert catalog.credential_by_username("u") == made
    assert [c.id for c in catalog.credentials(request_id)] == [made.id]
    assert catalog.count_requests("approved") == 1 and catalog.count_requests("pending") == 1


def test_a_release_is_spent_once(catalog: Catalog) -> None:
    request_id = approved_request(catalog)
    credential = catalog.add_credential(request_id, "u", "h", T0, T0 + timedelta(days=1))
    catalog.add_release(request_id, credential.id, "token-hash", "sealed", T0, T0 + timedelta(days=7))
    release = catalog.release_by_token_hash("token-hash")
    assert release is not None and release.sealed_password == "sealed"
    assert catalog.mark_released(release.id, T0)
    assert not catalog.mark_released(release.id, T0)
    spent = catalog.release_by_token_hash("token-hash")
    assert spent is not None and spent.sealed_password is None and spent.released_at == T0
    assert catalog.finished_releases(T0, delete=True) == 1
    assert catalog.releases(request_id) == []


def test_download_records_from_two_servers_land_in_one_report(opener: OpenCatalog) -> None:
    one, other = opener(), opener()
    version_id = publish(one)
    request_id = approved_request(one)
    credential = one.add_credential(request_id, "u", "h", T0, T0 + timedelta(days=30))
    one.record_downloads([(credential.id, version_id, 200, 1234, True, T0 + timedelta(hours=2), "credential", None)])
    other.record_downloads([(credential.id, version_id, 200, 100, False, T0 + timedelta(hours=1), "credential", None)])
    other.record_downloads([(credential.id, version_id, 304, 0, True, T0 + timedelta(hours=3), "credential", None)])
    [row] = one.harvest()
    assert row.request_id == request_id
    assert row.fetched is not None and row.fetched.at == T0 + timedelta(hours=1)
    assert row.complete is not None and row.complete.at == T0 + timedelta(hours=2)
    assert row.revisit is not None and row.revisit.at == T0 + timedelta(hours=3)
    assert len(other.downloads_of([credential.id])) == 3
    assert one.downloads_before(T0 + timedelta(hours=2, minutes=30), delete=True) == 2
    assert len(other.downloads_of([credential.id])) == 1


def test_two_servers_appending_at_once_never_fork_the_audit_log(opener: OpenCatalog) -> None:
    servers = [opener(), opener()]
    per_thread = 15
    failures: list[BaseException] = []

    def append(catalog: Catalog, n: int) -> None:
        try:
            for i in range(per_thread):
                catalog.append_audit("test.appended", {"thread": n, "i": i}, None, T0 + timedelta(seconds=i))
        except BaseException as e:  # reported below
            failures.append(e)

    threads = [threading.Thread(target=append, args=(servers[n % 2], n)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    entries = list(servers[0].audit_entries())
    assert [e.seq for e in entries] == list(range(1, 4 * per_thread + 1))
    assert verify_chain(entries)[0] == 4 * per_thread


def test_erasing_a_requests_personal_data_keeps_the_chain_verifying(catalog: Catalog) -> None:
    request_id = approved_request(catalog)
    other = approved_request(catalog)  # personal fields belong to a request: they are sealed under its key
    catalog.append_audit("request.filed", {"request": request_id}, {"contact_email": "netarkivet@kb.dk"}, T0)
    catalog.append_audit("request.filed", {"request": other}, {"contact_email": "other@kb.dk"}, T0)
    catalog.erase_request_personal_data(request_id, T0 + timedelta(days=1))
    catalog.checkpoint()
    entries = list(catalog.audit_entries())
    assert [e.personal for e in entries] == [None, {"contact_email": "other@kb.dk"}]
    assert verify_chain(entries)[0] == 2
    erased = catalog.get_request(request_id)
    assert erased is not None and erased.contact_email is None and erased.purged_at == T0 + timedelta(days=1)
    assert [r.id for r in catalog.requests_by_email("NETARKIVET@kb.dk")] == [other]


def test_a_failed_transaction_leaves_nothing_behind(catalog: Catalog) -> None:
    class Stop(Exception):
        pass

    def publish_then_fail() -> None:
        with catalog.transaction():
            publish(catalog)
            catalog.append_audit("item.published", {"slug": "brochure"}, None, T0)
            raise Stop

    with pytest.raises(Stop):
        publish_then_fail()
    assert catalog.versions() == []
    assert list(catalog.audit_entries()) == []


def test_checkpoints_are_kept_in_order_stamped_once_and_never_rewritten(catalog: Catalog) -> None:
    first = catalog.add_checkpoint(3, "cm9vdA==", "pligt.example\n3\ncm9vdA==\n\n— sig\n", T0)
    second = catalog.add_checkpoint(5, "cm9vdDI=", "pligt.example\n5\ncm9vdDI=\n\n— sig\n", T0 + timedelta(hours=1))
    assert [c.size for c in catalog.checkpoints()] == [3, 5]
    assert [c.id for c in catalog.checkpoints(newest_first=True, limit=1)] == [second.id]
    catalog.set_stamp_error(first.id, "the TSA did not answer")
    assert catalog.checkpoints(unstamped=True)[0].stamp_error == "the TSA did not answer"
    catalog.set_stamp(first.id, b"\x30\x03token", "CHAIN", T0 + timedelta(minutes=1))
    catalog.set_stamp(first.id, b"another", "OTHER", T0 + timedelta(minutes=2))  # the first stamp stays
    kept = catalog.checkpoints()[0]
    assert (kept.stamp, kept.stamp_chain, kept.stamp_error) == (b"\x30\x03token", "CHAIN", None)
    assert [c.id for c in catalog.checkpoints(unstamped=True)] == [second.id]
    # The database itself refuses what an attacker with SQL would try.
    for statement in (
        "DELETE FROM checkpoints",
        "UPDATE checkpoints SET root = 'forged'",
        "UPDATE checkpoints SET stamp = 'forged' WHERE stamp IS NOT NULL",
    ):
        with pytest.raises(Exception, match="append-only|stamped once"), catalog.transaction():
            catalog._execute(statement)
    assert [(c.size, c.root) for c in catalog.checkpoints()] == [(3, "cm9vdA=="), (5, "cm9vdDI=")]


def test_the_owner_and_the_console_epoch(catalog: Catalog) -> None:
    assert catalog.owner() is None
    catalog.set_owner("owner", "hash-1", T0)
    catalog.set_owner("owner2", "hash-2", T0)
    assert catalog.owner() == ("owner2", "hash-2")
    assert catalog.console_epoch() == 0
    catalog.end_console_sessions()
    catalog.end_console_sessions()
    assert catalog.console_epoch() == 2


def test_client_counts_are_shared_refuse_at_the_limit_and_lapse(opener: OpenCatalog) -> None:
    """The catalog keeps the counts and applies the lock-out's rule under its write lock."""
    one, other = opener(), opener()
    by_one = partial(one.count_client, rule=failures_after)
    by_other = partial(other.count_client, rule=failures_after)
    assert by_one("digest-a", 1, 2, 60, 1000.0) == (1, 1000.0, False)
    assert by_other("digest-a", 1, 2, 60, 1001.0) == (2, 1001.0, False)
    assert by_one("digest-a", 1, 2, 60, 1002.0) == (2, 1001.0, True)  # refused, not counted
    assert by_other("digest-b", 0, 2, 60, 1002.0) == (0, 0.0, False)
    assert by_other("digest-a", 0, 2, 60, 1061.0) == (0, 0.0, False)  # quiet long enough: lapsed
    by_one("digest-c", 1, 2, 60, 2000.0)
    by_one("digest-d", 1, 2, 60, 2030.0)
    assert other.forget_lapsed_counts(2070.0) == 1  # c lapsed at 2060, d lapses at 2090
    assert by_one("digest-d", 1, 2, 60, 2071.0) == (2, 2071.0, False)


def test_a_write_waits_for_another_servers_write_lock_then_is_busy(opener: OpenCatalog) -> None:
    holder, waiter = opener(), opener(busy_timeout=0.5)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder.transaction():
            holder.append_audit("test.holding", {}, None, T0)
            held.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(30)
        started = time.monotonic()
        with pytest.raises(CatalogBusy, match="busy"):
            waiter.append_audit("test.waiting", {}, None, T0)
        assert 0.4 < time.monotonic() - started < 10
        assert waiter.lookups_generation() >= 0  # reading goes on meanwhile
    finally:
        release.set()
        thread.join()
    waiter.append_audit("test.waiting", {}, None, T0)
    assert [e.action for e in holder.audit_entries()] == ["test.holding", "test.waiting"]


def test_an_unreachable_catalog_is_a_storage_error(location: str, tmp_path: Path) -> None:
    if location.startswith("postgresql:"):
        broken = f"postgresql://pligt@127.0.0.1:{free_port()}/nothing"
    else:
        (tmp_path / "a-folder").mkdir()
        broken = str(tmp_path / "a-folder")
    catalog = open_catalog(broken, tmp_path, busy_timeout=1)
    with pytest.raises(StorageError):
        catalog.ping()
    catalog.close()
