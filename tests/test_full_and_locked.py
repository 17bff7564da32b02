"""Out of space and out of locks: a full disk or a catalog another process has locked.

An upload gets 507 (no space) or 503 with Retry-After (the catalog's write lock
held elsewhere), as JSON or HTML, and the CLI one line and exit 6, never a
traceback; nothing half-stored remains and what was stored before still
downloads. Commands whose audit entry cannot be written change nothing, and
download records that cannot be written are kept and land later.

The full disk is a small tmpfs mounted for the test (it needs root; the tests
that need it are skipped otherwise); the lock is held by a helper process with
BEGIN IMMEDIATE, as any other SQLite client would.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from pligt.core import Archive
from pligt.core import catalog as core_catalog
from pligt.core.batches import Batches
from pligt.core.errors import CatalogBusy
from pligt.core.errors import OutOfSpace
from pligt.core.storage.local import LocalStorage
from pligt.instance import init_instance
from pligt.settings import load_settings
from pligt.web.services import pligt
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.app import make_app
from tests.support.cli import invoke
from tests.support.cli import run_cli
from tests.support.data import binary_bytes
from tests.support.data import pdf_bytes

# -- a small disk and a held lock ------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs of 2048 files, unmounted afterwards (lazily: a connection may still hold a file)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16m,nr_inodes=2048,mode=0700", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        pytest.skip("no mount command here: a full disk is simulated on a small tmpfs")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (it needs root): {mounted.stderr.strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the file system of ``folder`` until only about ``leave`` bytes are free; return the filler."""
    reserve = folder / "reserve"
    if leave:
        reserve.write_bytes(b"\0" * leave)
    filler = folder / "filler"
    with open(filler, "ab", buffering=0) as out:
        for block in (1 << 20, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * block)
    reserve.unlink(missing_ok=True)
    return filler


def free_bytes(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


HOLD = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"""


@contextlib.contextmanager
def lock_held(catalog: str | Path) -> Iterator[None]:
    """Hold the catalog's write lock from another process until the block ends."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(catalog)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        try:
            assert holder.stdout.readline() == "locked\n"
            yield
        finally:
            holder.stdin.close()
            holder.wait(timeout=30)


@dataclass
class Setup:
    """An instance, its app (whose catalog connection stays open) and a file published before."""

    instance: Instance
    app: Flask
    client: FlaskClient
    archive: Archive
    earlier: bytes

    @property
    def path(self) -> str:
        return str(self.instance.path)

    def upload(self, data: bytes, filename: str = "new.bin", **headers: str) -> TestResponse:
        return self.client.post(
            "/api/items",
            query_string={"filename": filename},
            data=data,
            auth=self.instance.owner_auth,
            headers=headers,
        )

    def stored(self) -> list[str]:
        """Every file below the storage folder, temporary ones included."""
        root = Path(self.archive.storage.url.removeprefix("file://"))
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def versions(self) -> int:
        with sqlite3.connect(self.instance.settings.catalog) as db:
            return int(db.execute("SELECT COUNT(*) FROM versions").fetchone()[0])

    def audit_actions(self) -> list[str]:
        with sqlite3.connect(self.instance.settings.catalog) as db:
            return [row[0] for row in db.execute("SELECT action FROM audit_log ORDER BY seq")]

    def assert_earlier_version_downloads(self) -> None:
        response = self.client.get("/files/earlier/v1/earlier.pdf")
        assert response.status_code == 200
        assert response.data == self.earlier


def make_setup(folder: Path, clock: Clock, **overrides: str) -> Setup:
    settings = load_settings(folder, env={}, overrides=overrides)
    instance = Instance(settings, init_instance(settings, chosen=tuple(overrides)))
    app = make_app(settings, clock)
    with app.app_context():
        core = pligt().archive
    earlier = pdf_bytes("published before the disk filled")
    core.publish([earlier], filename="earlier.pdf", slug="earlier", visibility="public")
    core.checkpoints.wait()  # its checkpoint too, before the disk fills or the catalog is locked
    return Setup(instance, app, app.test_client(), core, earlier)


@contextlib.contextmanager
def closed_after(setup: Setup, disk: Path) -> Iterator[Setup]:
    """Yield ``setup``; then free the disk, write what the recorder kept and close the catalog."""
    yield setup
    (disk / "filler").unlink(missing_ok=True)
    setup.archive.recorder.flush()
    setup.archive.checkpoints.wait()
    setup.archive.catalog.close()


@pytest.fixture
def on_small_disk(small_disk: Path, clock: Clock) -> Iterator[Setup]:
    """Catalog and files on the small disk."""
    with closed_after(make_setup(small_disk / "instance", clock), small_disk) as setup:
        yield setup


@pytest.fixture
def catalog_on_small_disk(small_disk: Path, tmp_path: Path, clock: Clock) -> Iterator[Setup]:
    """Files on the test's own disk; only the catalog on the small one."""
    setup = make_setup(tmp_path / "instance", clock, catalog=str(small_disk / "catalog.sqlite3"))
    with closed_after(setup, small_disk):
        yield setup


@pytest.fixture
def plain(tmp_path: Path, clock: Clock) -> Setup:
    return make_setup(tmp_path / "instance", clock)


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info]


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# -- out of space: the bytes -----------------------------------------------------------------


def test_an_upload_larger_than_the_free_space_gets_507_and_leaves_nothing(
    on_small_disk: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    setup = on_small_disk
    before = setup.stored()
    fill(setup.instance.path.parent, leave=64 * 1024)
    response = setup.upload(binary_bytes(300_000))
    assert response.status_code == 507, response.data
    assert response.json is not None
    assert response.json["name"] == "OutOfSpace"
    assert "no space left" in response.json["description"]
    assert "Retry-After" not in response.headers  # waiting alone does not free space
    assert setup.stored() == before  # no temporary file, no object
    assert setup.versions() == 1
    setup.assert_earlier_version_downloads()
    assert no_tracebacks(caplog) == []


def test_a_small_upload_that_fails_at_the_last_flush_gets_507(on_small_disk: Setup) -> None:
    """The bytes fit the write buffer; the flush fails, and closing (which flushes again) must not hide that."""
    setup = on_small_disk
    before = setup.stored()
    fill(setup.instance.path.parent, leave=4096)
    response = setup.upload(binary_bytes(6000))
    assert response.status_code == 507, response.data
    assert setup.stored() == before
    setup.assert_earlier_version_downloads()


# The upload form's SelectField warns about its choices (wtforms 3.3) when the form is validated.
@pytest.mark.filterwarnings("ignore:Passing SelectField choices:DeprecationWarning")
def test_the_console_upload_page_says_507_when_the_disk_is_full(on_small_disk: Setup) -> None:
    setup = on_small_disk
    setup.app.config["WTF_CSRF_ENABLED"] = False
    signed_in = setup.client.post("/admin/login", data={"password": setup.instance.owner.password})
    assert signed_in.status_code == 302
    fill(setup.instance.path.parent, leave=64 * 1024)
    page = setup.client.post(
        "/admin/upload",
        data={"files": (io.BytesIO(binary_bytes(300_000)), "big.bin"), "visibility": "public"},
        content_type="multipart/form-data",
    )
    assert page.status_code == 507
    assert "no space left" in page.text


def test_pligt_add_on_a_full_disk_says_one_line_and_exits_6(on_small_disk: Setup, tmp_path: Path) -> None:
    setup = on_small_disk
    before = setup.stored()
    big = tmp_path / "big.bin"
    big.write_bytes(binary_bytes(300_000))
    fill(setup.instance.path.parent, leave=64 * 1024)
    result = invoke("add", "--instance", setup.path, str(big))
    assert result.exit_code == 6
    assert "no space left" in one_line(result.stderr)
    assert setup.stored() == before
    assert setup.versions() == 1
    setup.assert_earlier_version_downloads()


def test_no_file_left_to_create_on_the_disk_gets_507(on_small_disk: Setup) -> None:
    """A disk out of inodes refuses the temporary file itself (ENOSPC at open)."""
    setup = on_small_disk
    before = setup.stored()
    spare = setup.instance.path.parent / "inodes"
    spare.mkdir()
    with contextlib.suppress(OSError):
        for n in range(10**6):
            (spare / str(n)).touch()
    response = setup.upload(binary_bytes(1000))
    assert response.status_code == 507, response.data
    assert setup.stored() == before
    setup.assert_earlier_version_downloads()


@pytest.mark.parametrize("stage", ["fsync", "link", "folder fsync"])
def test_each_step_of_a_local_write_that_finds_no_space_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    """ENOSPC at the steps a tmpfs does not fail at (write and flush are shown on the real one above)."""
    import pligt.core.storage.local as local

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    storage = LocalStorage(tmp_path / "files")
    if stage == "fsync":
        monkeypatch.setattr(os, "fsync", no_space)
    elif stage == "link":
        monkeypatch.setattr(os, "link", no_space)
    else:
        monkeypatch.setattr(local, "_fsync_dir", no_space)
    with pytest.raises(OutOfSpace, match="no space left"):
        storage.save("item/key", [b"some bytes"])
    monkeypatch.undo()
    assert [p for p in (tmp_path / "files").rglob("*") if p.is_file()] == []


# -- out of space: the catalog ------------------------------------------------------------------


def test_an_upload_whose_catalog_disk_is_full_gets_507_and_its_bytes_go(
    catalog_on_small_disk: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    setup = catalog_on_small_disk
    before = setup.stored()
    fill(Path(setup.instance.settings.catalog).parent)
    response = setup.upload(binary_bytes(10_000))
    assert response.status_code == 507, response.data
    assert response.json is not None
    assert "no space left on the disk of the catalog" in response.json["description"]
    assert setup.stored() == before  # stored first, removed when the catalog refused
    assert setup.versions() == 1
    setup.assert_earlier_version_downloads()
    assert no_tracebacks(caplog) == []


def test_pligt_add_when_the_catalog_disk_is_full_exits_6(catalog_on_small_disk: Setup, tmp_path: Path) -> None:
    setup = catalog_on_small_disk
    before = setup.stored()
    new = tmp_path / "new.pdf"
    new.write_bytes(pdf_bytes("new"))
    fill(Path(setup.instance.settings.catalog).parent)
    result = invoke("add", "--instance", setup.path, str(new))
    assert result.exit_code == 6
    assert "no space left on the disk of the catalog" in one_line(result.stderr)
    assert setup.stored() == before
    assert setup.versions() == 1


def test_an_access_request_form_on_a_full_catalog_disk_gets_an_html_507(catalog_on_small_disk: Setup) -> None:
    setup = catalog_on_small_disk
    setup.app.config["WTF_CSRF_ENABLED"] = False
    fill(Path(setup.instance.settings.catalog).parent)
    page = setup.client.post(
        "/access/",
        data={
            "institution": "Det Kgl. Bibliotek",
            "contact_name": "Karen Hansen",
            "contact_email": "karen@kb.dk",
            "legal_basis": "Pligtafleveringsloven § 8",
            "message": "",
        },
    )
    assert page.status_code == 507, page.text[:500]
    assert page.mimetype == "text/html"
    assert "no space left" in page.text


# -- a locked catalog ---------------------------------------------------------------------------------


def test_an_upload_while_another_process_holds_the_write_lock_gets_503_with_retry_after(
    plain: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    before = plain.stored()
    with lock_held(plain.instance.settings.catalog):
        started = time.monotonic()
        response = plain.upload(binary_bytes(10_000))
        waited = time.monotonic() - started
        assert response.status_code == 503, response.data
        assert response.headers["Retry-After"] == str(CatalogBusy.retry_after)
        assert response.json is not None
        assert response.json["name"] == "CatalogBusy"
        assert "write lock" in response.json["description"]
        # A request waits its own, shorter busy timeout, not the CLI's 30 s.
        assert core_catalog.REQUEST_BUSY_TIMEOUT <= waited < core_catalog.BUSY_TIMEOUT - 10
        assert plain.stored() == before
        plain.assert_earlier_version_downloads()  # reading needs no lock
    assert no_tracebacks(caplog) == []
    assert plain.versions() == 1
    assert plain.upload(binary_bytes(10_000)).status_code == 201  # and once it is free, it works


def test_pligt_add_while_the_catalog_is_locked_says_one_line_and_exits_6(
    plain: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core_catalog, "BUSY_TIMEOUT", 1.0)  # the real 30 s: the slow test below
    new = tmp_path / "new.pdf"
    new.write_bytes(pdf_bytes("new"))
    before = plain.stored()
    with lock_held(plain.instance.settings.catalog):
        result = invoke("add", "--instance", plain.path, str(new))
    assert result.exit_code == 6
    assert "busy" in one_line(result.stderr)
    assert plain.stored() == before
    assert plain.versions() == 1


@pytest.mark.slow
def test_the_real_pligt_add_outwaits_a_short_lock_and_gives_up_on_a_long_one(plain: Setup, tmp_path: Path) -> None:
    new = tmp_path / "new.pdf"
    new.write_bytes(pdf_bytes("new"))
    with lock_held(plain.instance.settings.catalog):
        started = time.monotonic()
        result = run_cli("add", "--instance", plain.path, str(new))
        waited = time.monotonic() - started
    assert result.returncode == 6, result.stderr
    assert "busy" in one_line(result.stderr)
    assert waited >= core_catalog.BUSY_TIMEOUT
    assert plain.versions() == 1


# -- commands whose audit entry cannot be written ---------------------------------------------------


def file_request(setup: Setup) -> int:
    request = setup.archive.access.file(
        {
            "institution": "Det Kgl. Bibliotek",
            "contact_name": "Karen Hansen",
            "contact_email": "karen@kb.dk",
            "legal_basis": "Pligtafleveringsloven § 8",
            "message": "",
        }
    )
    return request.id


def old_download_records(setup: Setup) -> int:
    """Add download records from a year ago (the purge deletes them); return how many there are."""
    [version] = setup.archive.versions()
    then = setup.archive.clock().replace(year=setup.archive.clock().year - 1)
    setup.archive.catalog.record_downloads([(None, version.id, 200, version.size, True, then, None, None)] * 3)
    return count_downloads(setup)


def count_downloads(setup: Setup) -> int:
    with sqlite3.connect(setup.instance.settings.catalog) as db:
        return int(db.execute("SELECT COUNT(*) FROM downloads").fetchone()[0])


def null_sha1(setup: Setup) -> None:
    with sqlite3.connect(setup.instance.settings.catalog) as db:
        db.execute("UPDATE versions SET sha1 = NULL")


def sha1s(setup: Setup) -> list[str | None]:
    with sqlite3.connect(setup.instance.settings.catalog) as db:
        return [row[0] for row in db.execute("SELECT sha1 FROM versions")]


Blocker = Callable[[Setup], contextlib.AbstractContextManager[None]]


@contextlib.contextmanager
def locked(setup: Setup) -> Iterator[None]:
    with lock_held(setup.instance.settings.catalog):
        yield


@contextlib.contextmanager
def full(setup: Setup) -> Iterator[None]:
    filler = fill(Path(setup.instance.settings.catalog).parent)
    yield
    filler.unlink()


@pytest.fixture(params=["locked", "full"])
def blocked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, clock: Clock) -> tuple[Setup, Blocker]:
    """An instance whose catalog will be locked by another process, or whose disk will be full."""
    monkeypatch.setattr(core_catalog, "BUSY_TIMEOUT", 1.0)
    if request.param == "locked":
        return request.getfixturevalue("plain"), locked
    return request.getfixturevalue("catalog_on_small_disk"), full


def test_approve_that_cannot_write_its_audit_entry_changes_nothing(blocked: tuple[Setup, Blocker]) -> None:
    setup, blocker = blocked
    request_id = file_request(setup)
    actions = setup.audit_actions()
    with blocker(setup):
        result = invoke("approve", "--instance", setup.path, str(request_id), "--show")
    assert result.exit_code == 6, result.stdout + result.stderr
    one_line(result.stderr)
    assert result.stdout == ""  # no password shown for a credential that does not exist
    assert setup.archive.access.get(request_id).status == "pending"
    assert setup.archive.access.credentials() == []
    assert setup.audit_actions() == actions
    assert invoke("approve", "--instance", setup.path, str(request_id), "--show").exit_code == 0  # once it can


def test_purge_that_cannot_write_its_audit_entry_erases_nothing(blocked: tuple[Setup, Blocker]) -> None:
    setup, blocker = blocked
    records = old_download_records(setup)
    actions = setup.audit_actions()
    with blocker(setup):
        result = invoke("purge", "--instance", setup.path)
    assert result.exit_code == 6, result.stdout + result.stderr
    one_line(result.stderr)
    assert count_downloads(setup) == records
    assert setup.audit_actions() == actions
    assert invoke("purge", "--instance", setup.path).exit_code == 0
    assert count_downloads(setup) == 0
    assert setup.audit_actions()[-1] == "privacy.purged"


def test_fixity_that_cannot_write_its_audit_entry_records_nothing(blocked: tuple[Setup, Blocker]) -> None:
    setup, blocker = blocked
    null_sha1(setup)  # as if published before the SHA-1 was kept: fixity records it
    actions = setup.audit_actions()
    with blocker(setup):
        result = invoke("fixity", "--instance", setup.path)
    assert result.exit_code == 6, result.stdout + result.stderr
    assert "could not be recorded" in one_line(result.stderr)
    assert sha1s(setup) == [None]
    assert setup.audit_actions() == actions
    assert invoke("fixity", "--instance", setup.path).exit_code == 0
    assert sha1s(setup) != [None]
    assert setup.audit_actions()[-1] == "fixity.checked"


def test_fixity_records_no_sha1_when_only_its_audit_entry_fails(plain: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SHA-1s and the entry go in one transaction: an entry refused at the last moment takes them along."""
    null_sha1(plain)
    real = core_catalog.Catalog.append_audit

    def refuse_fixity(self: core_catalog.Catalog, action: str, *args: object) -> object:
        if action == "fixity.checked":
            raise OutOfSpace("no space left on the disk of the catalog (simulated)")
        return real(self, action, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(core_catalog.Catalog, "append_audit", refuse_fixity)
    result = invoke("fixity", "--instance", plain.path)
    assert result.exit_code == 6
    assert sha1s(plain) == [None]


# -- download records ------------------------------------------------------------------------------------


def download(setup: Setup, times: int) -> None:
    for _ in range(times):
        assert setup.client.get("/files/earlier/v1/earlier.pdf").status_code == 200


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_download_records_made_while_the_catalog_is_locked_land_once_it_is_free(
    plain: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="pligt")
    recorder = plain.archive.recorder
    with lock_held(plain.instance.settings.catalog):
        download(plain, 20)
        assert wait_for(lambda: any("could not write" in r.getMessage() for r in caplog.records), 30)
        download(plain, 5)
        assert recorder.waiting() == 25  # kept, none dropped
        assert count_downloads(plain) == 0
    assert wait_for(lambda: count_downloads(plain) == 25, 40)  # written by the batch writer itself
    assert recorder.waiting() == 0
    assert not any("lost" in r.getMessage() for r in caplog.records)


def test_download_records_made_while_the_catalog_disk_is_full_land_once_there_is_space(
    catalog_on_small_disk: Setup,
) -> None:
    setup = catalog_on_small_disk
    filler = fill(Path(setup.instance.settings.catalog).parent)
    download(setup, 30)
    setup.archive.recorder.flush()  # fails for want of space: kept
    assert setup.archive.recorder.waiting() == 30
    filler.unlink()
    assert wait_for(lambda: count_downloads(setup) == 30, 30)


def test_kept_items_are_bounded_and_every_loss_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    written: list[int] = []
    failing = True

    def write(batch: list[int]) -> None:
        if failing:
            raise CatalogBusy("the catalog is busy (simulated)")
        written.extend(batch)

    batches: Batches[int] = Batches(write, "test records", interval=3600, max_items=10**6, max_kept=10)
    for n in range(25):
        batches.add(n)
        if n % 5 == 4:
            batches.flush()
    assert batches.waiting() == 10
    assert batches.lost == 15
    assert any("lost 5 test records" in r.getMessage() for r in caplog.records)
    failing = False
    batches.flush()
    assert written == list(range(15, 25))  # the newest kept, the oldest lost
    assert batches.waiting() == 0


def test_an_error_that_is_no_storage_failure_still_loses_only_its_batch(caplog: pytest.LogCaptureFixture) -> None:
    def write(batch: list[int]) -> None:
        raise ValueError("a bug")

    batches: Batches[int] = Batches(write, "test records", interval=3600)
    batches.add(1)
    batches.flush()
    assert batches.waiting() == 0
    assert batches.lost == 1
    assert any(r.exc_info and "they are lost" in r.getMessage() for r in caplog.records)
