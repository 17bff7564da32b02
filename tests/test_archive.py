"""The archive API: publication, versions, retention, content checks, credentials."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pligt.core import Archive
from pligt.core import SqliteCatalog
from pligt.core.errors import ConfigurationError
from pligt.core.errors import Conflict
from pligt.core.errors import ContentRefused
from pligt.core.errors import Gone
from pligt.core.errors import InvalidInput
from pligt.core.errors import NotFound
from pligt.core.errors import RetentionActive
from pligt.core.errors import TooLarge
from pligt.core.storage import LocalStorage
from tests.support.access import issue_credential
from tests.support.app import Clock
from tests.support.data import elf_bytes
from tests.support.data import pdf_bytes
from tests.support.data import pe_bytes
from tests.support.data import zip_bytes


@pytest.fixture
def core(tmp_path: Path, clock: Clock) -> Archive:
    catalog = SqliteCatalog(tmp_path / "catalog.sqlite3")
    catalog.migrate()
    return Archive(catalog, LocalStorage(tmp_path / "files"), clock=clock, max_upload_bytes=1_000_000)


def stored_files(core: Archive) -> list[str]:
    return sorted(core.storage.iter_keys())


def test_publish_lists_the_version_with_retention(core: Archive, clock: Clock) -> None:
    publication = core.publish([pdf_bytes()], filename="Brochure 2026 æøå.pdf", visibility="public")
    v = publication.version
    assert (v.slug, v.number, v.filename, v.visibility) == (
        "brochure-2026-aeoeaa",
        1,
        "Brochure 2026 æøå.pdf",
        "public",
    )
    assert v.content_type == "application/pdf"
    assert v.published_at == clock.now
    assert v.retain_until == clock.now + timedelta(days=183)
    assert publication.warnings == []
    assert [x.id for x in core.versions()] == [v.id]


def test_new_items_are_protected_unless_said_otherwise(core: Archive) -> None:
    assert core.publish([b"hello\n"], filename="notes.txt").version.visibility == "protected"


def test_republishing_a_slug_adds_a_version_and_keeps_the_old(core: Archive) -> None:
    first = core.publish([pdf_bytes("one")], filename="a.pdf", slug="catalogue", visibility="public").version
    second = core.publish([pdf_bytes("two")], filename="a-v2.pdf", slug="catalogue").version
    assert (first.number, second.number) == (1, 2)
    assert second.visibility == "public"
    assert [v.number for v in core.versions()] == [1, 2]
    assert core.find_download("catalogue").version.number == 2
    assert core.find_download("catalogue", 1).version.sha256 == first.sha256


def test_a_new_version_cannot_change_visibility(core: Archive) -> None:
    core.publish([pdf_bytes()], filename="a.pdf", slug="cat", visibility="public")
    with pytest.raises(Conflict, match="public"):
        core.publish([pdf_bytes("x")], filename="b.pdf", slug="cat", visibility="protected")
    assert len(core.versions()) == 1
    assert len(stored_files(core)) == 1


def test_withdraw_inside_retention_names_the_date_and_keeps_everything(core: Archive, clock: Clock) -> None:
    v = core.publish([pdf_bytes()], filename="a.pdf", slug="cat").version
    clock.advance(days=182)
    with pytest.raises(RetentionActive, match=f"{v.retain_until:%Y-%m-%d}"):
        core.withdraw("cat")
    assert core.find_download("cat", 1).version.withdrawn_at is None
    assert stored_files(core) == [v.storage_key]


def test_withdraw_after_retention_removes_bytes_and_answers_gone(core: Archive, clock: Clock) -> None:
    v = core.publish([pdf_bytes()], filename="a.pdf", slug="cat").version
    clock.advance(days=183)
    withdrawn = core.withdraw("cat", 1)
    assert [w.withdrawn_at for w in withdrawn] == [clock.now]
    assert core.versions() == []
    assert stored_files(core) == []
    with pytest.raises(Gone):
        core.find_download("cat", 1)
    with pytest.raises(Gone):
        core.withdraw("cat", 1)
    assert core.item_versions("cat")[0].withdrawn_at == clock.now
    assert v.storage_key not in stored_files(core)


def test_withdrawing_an_item_is_all_or_nothing(core: Archive, clock: Clock) -> None:
    core.publish([pdf_bytes("1")], filename="a.pdf", slug="cat")
    clock.advance(days=100)
    core.publish([pdf_bytes("2")], filename="a.pdf", slug="cat")
    clock.advance(days=100)  # the first is past retention, the second is not
    with pytest.raises(RetentionActive):
        core.withdraw("cat")
    assert len(core.versions()) == 2
    assert [v.number for v in core.withdraw("cat", 1)] == [1]
    assert [v.number for v in core.versions()] == [2]


def test_unknown_items_and_versions(core: Archive) -> None:
    with pytest.raises(NotFound):
        core.find_download("nothing")
    with pytest.raises(NotFound):
        core.withdraw("nothing")
    core.publish([pdf_bytes()], filename="a.pdf", slug="cat")
    with pytest.raises(NotFound):
        core.find_download("cat", 7)
    with pytest.raises(NotFound):
        core.withdraw("cat", 7)


@pytest.mark.parametrize(
    ("data", "filename", "says"),
    [
        (zip_bytes(), "brochure.pdf", "Zip archive"),
        (elf_bytes(), "tool.txt", "executable"),
        (elf_bytes(), "program", "executable"),
        (pe_bytes(), "setup.pdf", "executable"),
        (pe_bytes(), "setup.exe", "executable"),
        (pdf_bytes(), "notes.txt", "PDF"),
        (b"", "empty.pdf", "empty"),
    ],
)
def test_content_that_contradicts_its_name_is_refused(core: Archive, data: bytes, filename: str, says: str) -> None:
    before = core.publish([pdf_bytes()], filename="kept.pdf").version
    with pytest.raises(ContentRefused, match=says):
        core.publish([data], filename=filename)
    assert core.versions() == [before]
    assert stored_files(core) == [before.storage_key]


@pytest.mark.parametrize(
    "filename",
    [
        "../etc/passwd",
        "a/b.pdf",
        "a\\b.pdf",
        "x\x00.pdf",
        "line\nbreak.pdf",
        "tab\t.pdf",
        ".hidden.pdf",
        "",
        "  ",
        "a" * 300 + ".pdf",
    ],
)
def test_bad_file_names_are_refused(core: Archive, filename: str) -> None:
    with pytest.raises(InvalidInput):
        core.publish([pdf_bytes()], filename=filename)
    assert stored_files(core) == []


@pytest.mark.parametrize("slug", ["../x", "a/b", "Upper", "-lead", "trail-", "a--b", "æøå", "a" * 81, "x\x00"])
def test_bad_slugs_are_refused(core: Archive, slug: str) -> None:
    with pytest.raises(InvalidInput):
        core.publish([pdf_bytes()], filename="a.pdf", slug=slug)
    assert stored_files(core) == []


def test_bad_visibility_is_refused(core: Archive) -> None:
    with pytest.raises(InvalidInput):
        core.publish([pdf_bytes()], filename="a.pdf", visibility="secret")


def test_too_large_upload_leaves_nothing(core: Archive) -> None:
    def big() -> Iterator[bytes]:
        yield pdf_bytes()
        for _ in range(20):
            yield b"x" * 100_000

    with pytest.raises(TooLarge):
        core.publish(big(), filename="big.pdf")
    assert core.versions() == []
    assert stored_files(core) == []


def test_upload_cut_off_half_way_leaves_nothing(core: Archive) -> None:
    def cut() -> Iterator[bytes]:
        yield pdf_bytes(pad=200_000)
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        core.publish(cut(), filename="cut.pdf")
    assert core.versions() == []
    assert stored_files(core) == []


def test_catalog_failure_removes_the_stored_bytes(core: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**kwargs: object) -> None:
        raise Conflict("simulated race")

    monkeypatch.setattr(core.catalog, "add_version", refuse)
    with pytest.raises(Conflict):
        core.publish([pdf_bytes()], filename="a.pdf")
    assert stored_files(core) == []


def test_large_files_get_a_warning_about_the_crawler_budget(tmp_path: Path, clock: Clock) -> None:
    catalog = SqliteCatalog(tmp_path / "c.sqlite3")
    catalog.migrate()
    core = Archive(catalog, LocalStorage(tmp_path / "f"), clock=clock, fetch_budget_bytes=1000)
    publication = core.publish([pdf_bytes(pad=5000)], filename="big.pdf")
    assert len(publication.warnings) == 1
    assert "crawler" in publication.warnings[0]
    assert "1200 s" in publication.warnings[0]


def test_retention_below_six_months_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="183"):
        Archive(SqliteCatalog(tmp_path / "c"), LocalStorage(tmp_path / "f"), retention_days=182)


def test_longer_retention_is_honoured(tmp_path: Path, clock: Clock) -> None:
    catalog = SqliteCatalog(tmp_path / "c.sqlite3")
    catalog.migrate()
    core = Archive(catalog, LocalStorage(tmp_path / "f"), clock=clock, retention_days=400)
    v = core.publish([pdf_bytes()], filename="a.pdf").version
    assert v.retain_until == clock.now + timedelta(days=400)
    clock.advance(days=399)
    with pytest.raises(RetentionActive):
        core.withdraw(v.slug)


def test_credentials_are_random_ascii_hashed_and_expire(core: Archive, clock: Clock) -> None:
    credential, password = issue_credential(core, valid_days=30)
    assert credential.username.isascii()
    assert password.isascii()
    assert len(password) >= 22  # >= 128 bits of randomness
    assert password not in credential.password_hash
    assert credential.password_hash.startswith("scrypt$")
    assert credential.expires_at == clock.now + timedelta(days=30)
    other, other_password = issue_credential(core)
    assert other.username != credential.username
    assert other_password != password


def test_schema_is_versioned_and_migration_idempotent(tmp_path: Path) -> None:
    catalog = SqliteCatalog(tmp_path / "c.sqlite3")
    catalog.migrate()
    catalog.migrate()
    from pligt.core.catalog import SCHEMA_VERSION

    assert catalog.schema_version() == SCHEMA_VERSION
    catalog.ping()
