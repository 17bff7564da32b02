"""Killed uploads: real processes killed with SIGKILL mid-upload, and what they leave, cleaned up.

A `pligt serve` worker killed mid-body, the whole server killed mid-body, a
`pligt add` killed mid-file and a worker killed between storing the bytes and
committing the version. Then: `pligt fixity` reports the debris and fails; a
restart of `pligt serve` sweeps the temporary files; `pligt fixity --repair`
removes the orphan (once past its grace period); `pligt fixity` passes, and
every version published before downloads byte-identical.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any
from typing import TypeVar
from urllib.parse import urlsplit

import psutil
import pytest
import requests

from pligt.core.errors import StorageError
from pligt.core.keeping.leftovers import MAX_ORPHANS_REMOVED
from pligt.core.storage.s3 import PART_SIZE
from tests.support.app import Instance
from tests.support.cli import PLIGT
from tests.support.cli import invoke
from tests.support.data import BINARY_HEADER
from tests.support.data import pdf_bytes
from tests.support.s3 import Bucket
from tests.support.servers import Server
from tests.support.servers import start_server
from tests.support.servers import stop_server

MiB = 1024 * 1024
T = TypeVar("T")


def wait_for(what: str, condition: Callable[[], T], timeout: float = 15) -> T:
    """Return ``condition()`` once it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        time.sleep(0.02)


def files(instance: Instance) -> Path:
    return instance.path / "files"


def temp_files(instance: Instance, slug: str | None = None) -> dict[str, int]:
    """The temporary files in storage (of one item's folder), with their sizes."""
    root = files(instance)
    found = {}
    for path in root.glob(f"{slug or '*'}/.tmp-*"):
        with contextlib.suppress(FileNotFoundError):
            found[path.relative_to(root).as_posix()] = path.stat().st_size
    return found


def objects(instance: Instance, slug: str) -> list[Path]:
    return [p for p in (files(instance) / slug).glob("*") if not p.name.startswith(".tmp-")]


def fixity(instance: Instance, *args: str) -> tuple[int, dict[str, Any]]:
    result = invoke("fixity", "--json", "--instance", str(instance.path), *args)
    return result.exit_code, json.loads(result.stdout)


class Upload:
    """A chunked upload to the owner API over a raw socket, sent as slowly as the test likes."""

    def __init__(self, server: Server, instance: Instance, filename: str, *, length: int | None = None) -> None:
        url = urlsplit(server.url)
        auth = base64.b64encode(":".join(instance.owner_auth).encode()).decode()
        framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
        self.chunked = length is None
        self.sock = socket.create_connection((url.hostname, url.port), timeout=10)
        self.sock.sendall(
            f"POST /api/items?filename={filename}&visibility=public HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Authorization: Basic {auth}\r\nContent-Type: application/octet-stream\r\n{framing}\r\n\r\n".encode()
        )
        self.sent = 0
        self.rng = random.Random(filename)

    def send(self, size: int, piece: int = 256 * 1024) -> None:
        while size > 0:
            data = (BINARY_HEADER if self.sent == 0 else b"") + self.rng.randbytes(piece)
            data = data[:size]
            self.sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n" if self.chunked else data)
            self.sent += len(data)
            size -= len(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def worker_of(server: Server, upload: Upload) -> psutil.Process:
    """The worker process that holds the upload's connection."""
    port, client_port = urlsplit(server.url).port, upload.sock.getsockname()[1]

    def find() -> psutil.Process | None:
        for worker in psutil.Process(server.process.pid).children():
            with contextlib.suppress(psutil.NoSuchProcess):
                for c in worker.net_connections("tcp"):
                    if c.laddr.port == port and c.raddr and c.raddr.port == client_port:
                        return worker
        return None

    found = wait_for("the worker holding the upload", find)
    assert found is not None
    return found


def sigkill(process: psutil.Process) -> None:
    process.send_signal(signal.SIGKILL)
    with contextlib.suppress(psutil.NoSuchProcess):
        process.wait(10)


def kill_worker_mid_body(server: Server, instance: Instance, slug: str, size: int = 3 * MiB) -> str:
    """Stream ``size`` bytes of an upload, SIGKILL the worker writing it; return its temporary file."""
    upload = Upload(server, instance, f"{slug}.bin")
    written = min(size // 2, size - 2 * MiB) if size > 3 * MiB else MiB
    try:
        upload.send(size)
        [(temp, _)] = wait_for(
            "the upload's temporary file", lambda: [t for t in temp_files(instance, slug).items() if t[1] >= written]
        )
        sigkill(worker_of(server, upload))
    finally:
        upload.close()
    return temp


def kill_server_mid_body(server: Server, instance: Instance, slug: str) -> str:
    """The same, but SIGKILL the whole server: its arbiter and every worker."""
    upload = Upload(server, instance, f"{slug}.bin")
    try:
        upload.send(3 * MiB)
        [temp] = wait_for("the temporary file", lambda: [t for t, n in temp_files(instance, slug).items() if n])
        master = psutil.Process(server.process.pid)
        workers = master.children()
        for process in (master, *workers):
            process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        psutil.wait_procs(workers, timeout=10)
    finally:
        upload.close()
    return temp


def kill_pligt_add_mid_file(instance: Instance, folder: Path, slug: str) -> str:
    """Run `pligt add` on a large file (fed through a pipe, as fast as it reads) and SIGKILL it mid-file."""
    path = folder / f"{slug}.bin"
    os.mkfifo(path)
    add = subprocess.Popen(
        [PLIGT, "add", "--public", "--instance", str(instance.path), str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with open(path, "wb") as feed:
            feed.write(BINARY_HEADER)
            rng = random.Random(slug)
            while not [t for t, n in temp_files(instance, slug).items() if n >= 2 * MiB]:
                feed.write(rng.randbytes(MiB))
            [temp] = temp_files(instance, slug)
            add.send_signal(signal.SIGKILL)
            add.wait(10)
    except BrokenPipeError:
        raise AssertionError("pligt add stopped reading before it was killed") from None
    finally:
        if add.poll() is None:
            add.kill()
            add.wait()
    path.unlink()
    return temp


@contextlib.contextmanager
def catalog_write_lock(instance: Instance) -> Iterator[None]:
    """Hold the catalog's write lock (as a long transaction of another process would)."""
    db = sqlite3.connect(instance.settings.catalog, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        yield
        db.execute("ROLLBACK")
    finally:
        db.close()


def kill_worker_between_store_and_commit(server: Server, instance: Instance, slug: str) -> str:
    """Upload a whole file while the catalog is locked, SIGKILL the worker once its object is stored."""
    with catalog_write_lock(instance):
        upload = Upload(server, instance, f"{slug}.bin", length=MiB)
        try:
            upload.send(MiB)
            [stored] = wait_for("the stored object", lambda: objects(instance, slug))
            sigkill(worker_of(server, upload))
        finally:
            upload.close()
    return stored.relative_to(files(instance)).as_posix()


def publish(server: Server, instance: Instance, n: int) -> dict[str, bytes]:
    """Publish ``n`` versions through the owner API; return their URLs and bytes."""
    published = {}
    for i in range(n):
        data = pdf_bytes(f"Brochure {i}", pad=i * 100_000)
        response = requests.post(
            server.url + "/api/items",
            params={"filename": f"brochure-{i % 2}.pdf", "visibility": "public"},
            data=data,
            auth=instance.owner_auth,
            timeout=30,
        )
        assert response.status_code == 201, response.text
        published[response.json()["version"]["url"]] = data
    return published


def published_still_served(server: Server, instance: Instance, published: dict[str, bytes]) -> None:
    """Every version published before downloads byte-identical, and nothing else was ever listed."""
    for url, data in published.items():
        path = urlsplit(url).path
        response = requests.get(server.url + path, timeout=30)
        assert (response.status_code, response.content) == (200, data), path
    listed = requests.get(server.url + "/api/items", auth=instance.owner_auth, timeout=10).json()["items"]
    assert sorted(urlsplit(v["url"]).path for item in listed for v in item["versions"]) == sorted(
        urlsplit(u).path for u in published
    )


def test_kills_mid_upload_leave_debris_that_fixity_reports_serve_sweeps_and_repair_removes(
    instance: Instance, tmp_path: Path
) -> None:
    server = start_server(instance.path, tmp_path / "server-1.log")
    try:
        published = publish(server, instance, 3)
        killed_worker = kill_worker_mid_body(server, instance, "cut-worker")
        orphan = kill_worker_between_store_and_commit(server, instance, "cut-commit")
        killed_server = kill_server_mid_body(server, instance, "cut-server")
    finally:
        stop_server(server)
    killed_add = kill_pligt_add_mid_file(instance, tmp_path, "cut-add")

    temps = temp_files(instance)
    assert sorted(temps) == sorted([killed_worker, killed_server, killed_add])
    assert all(size >= MiB for size in temps.values())
    code, report = fixity(instance)
    assert code == 9 and not report["ok"]
    assert report["unexpected"] == []
    debris = {d["name"]: d for d in report["debris"]}
    assert set(debris) == set(temps)
    assert all(d["kind"] == "temporary file" and d["abandoned"] for d in debris.values())
    [found] = report["orphaned"]
    assert found["key"] == orphan and found["size"] == MiB
    assert not found["abandoned"]  # within the grace period: it may yet be committed; reported, left

    server = start_server(instance.path, tmp_path / "server-2.log")
    try:
        assert "swept 3 leftovers of interrupted uploads" in server.log.read_text()
        assert temp_files(instance) == {}
        assert sorted(p.name for p in files(instance).iterdir()) == ["brochure-0", "brochure-1", "cut-commit"]

        said = invoke("fixity", "--instance", str(instance.path))
        assert said.exit_code == 0, said.stderr  # the orphan is still young: reported, not a problem yet
        assert (
            [ln for ln in said.stdout.splitlines() if ln.startswith("orphaned")]
            == [ln for ln in said.stdout.splitlines() if ln.startswith(f"orphaned, recent: {orphan} ")]
            != []
        )
        assert (files(instance) / orphan).exists()

        repaired = invoke("fixity", "--repair", "--older-than", "0", "--instance", str(instance.path))
        assert repaired.exit_code == 0, repaired.stderr
        assert f"removed: orphaned {orphan} (1,048,576 bytes" in repaired.stdout
        assert "repair: removed 1, 1,048,576 bytes freed" in repaired.stdout
        assert not (files(instance) / "cut-commit").exists()

        code, report = fixity(instance, "--older-than", "0")
        assert code == 0 and report["ok"]
        assert (report["debris"], report["orphaned"], report["unexpected"]) == ([], [], [])
        published_still_served(server, instance, published)
    finally:
        stop_server(server)


def test_repair_leaves_what_it_must_and_says_why(instance: Instance) -> None:
    """A live writer's file, a young orphan and something put there by hand stay; the rest goes."""
    root = files(instance)
    (root / "item").mkdir(parents=True)
    (root / "item" / ".tmp-0badc0de").write_bytes(b"x" * 1000)  # no writer holds it
    old = (datetime.now(UTC) - timedelta(hours=2)).timestamp()
    for key, mtime in (("item/00000000000000000000aaaa", old), ("item/00000000000000000000bbbb", None)):
        (root / key).write_bytes(b"orphan")
        if mtime:
            os.utime(root / key, (mtime, mtime))
    (root / "notes.txt").write_bytes(b"put here by hand")
    (root / "empty").mkdir()

    said = invoke("fixity", "--instance", str(instance.path))
    assert said.exit_code == 9
    assert "3 problem(s); pligt fixity --repair removes the debris and orphans" in said.stderr
    lines = said.stdout.splitlines()
    assert "unexpected: notes.txt" in lines
    assert any(ln.startswith("debris: temporary file item/.tmp-0badc0de (1,000 bytes") for ln in lines)
    assert any(ln.startswith("debris: empty folder empty/") for ln in lines)
    assert any(ln.startswith("orphaned: item/00000000000000000000aaaa") for ln in lines)
    assert any(ln.startswith("orphaned, recent: item/00000000000000000000bbbb") for ln in lines)

    result = invoke("fixity", "--repair", "--json", "--instance", str(instance.path))
    assert result.exit_code == 9  # the unexpected object is the owner's to judge
    report = json.loads(result.stdout)
    assert len(report["repair"]["removed"]) == 3 and report["repair"]["failed"] == []
    assert report["repair"]["bytes_freed"] == 1000 + len(b"orphan")
    assert [o["key"] for o in report["orphaned"]] == ["item/00000000000000000000bbbb"]
    assert report["debris"] == [] and report["unexpected"] == ["notes.txt"]
    assert sorted(p.name for p in root.iterdir()) == ["item", "notes.txt"]
    assert sorted(p.name for p in (root / "item").iterdir()) == ["00000000000000000000bbbb"]
    entries = invoke("audit", "log", "--json", "--instance", str(instance.path))
    assert '"repair"' in entries.stdout  # the repair is in the fixity check's audit entry


def test_repair_refuses_to_take_a_whole_storage_for_orphans(instance: Instance) -> None:
    """Many orphans at once is a catalog that is not this storage's: nothing of them is removed."""
    root = files(instance)
    (root / "item").mkdir(parents=True)
    for n in range(MAX_ORPHANS_REMOVED + 1):
        (root / "item" / f"{n:024x}").write_bytes(b"deposited once")
    result = invoke("fixity", "--repair", "--older-than", "0", "--json", "--instance", str(instance.path))
    assert result.exit_code == 9
    report = json.loads(result.stdout)
    [failed] = report["repair"]["failed"]
    assert "none was removed" in failed and "catalog" in failed
    assert len(report["orphaned"]) == MAX_ORPHANS_REMOVED + 1
    assert len(list((root / "item").iterdir())) == MAX_ORPHANS_REMOVED + 1


def test_a_publish_whose_object_went_before_its_commit_lists_nothing(instance: Instance) -> None:
    """A repair that took a publish's object for an orphan: the publish fails, never lists a version without bytes."""
    from pligt.instance import build_archive

    archive = build_archive(instance.settings)
    real_save = archive.storage.save

    def save_then_lose(key: str, chunks: Any, **kwargs: Any) -> Any:
        stored = real_save(key, chunks, **kwargs)
        archive.storage.delete(key)  # as --repair would, just before the commit
        return stored

    archive.storage.save = save_then_lose  # type: ignore[method-assign]
    with pytest.raises(StorageError, match="went from the storage before they were listed"):
        archive.publish([pdf_bytes()], filename="lost.pdf")
    assert archive.versions() == []


# -- S3 ----------------------------------------------------------------------------------------


def test_on_s3_fixity_reports_incomplete_uploads_and_an_object_locked_orphan_is_kept_honestly(
    instance: Instance, bucket: Bucket
) -> None:
    with (instance.path / "pligt.toml").open("a") as config:
        config.write(bucket.settings_toml())
    storage = bucket.storage()
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=183)
    # A publish killed between store and commit: the object, Object-Locked as publish stores it.
    storage.save("item/0123456789abcdef01234567", [b"locked orphan"], retain_until=until)
    # A publish killed mid-body: an incomplete upload with a part sent.
    upload = bucket.client.create_multipart_upload(Bucket=bucket.name, Key="pligt/item/89abcdef0123456789abcdef")
    bucket.client.upload_part(
        Bucket=bucket.name,
        Key="pligt/item/89abcdef0123456789abcdef",
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=b"p" * PART_SIZE,
    )

    code, report = fixity(instance)
    [debris] = report["debris"]
    assert (debris["kind"], debris["name"], debris["size"]) == (
        "incomplete upload",
        "item/89abcdef0123456789abcdef",
        PART_SIZE,
    )
    assert not debris["abandoned"]  # a part came just now: it may be a live upload
    [orphan] = report["orphaned"]
    assert not orphan["abandoned"] and code == 0

    result = invoke("fixity", "--repair", "--older-than", "0", "--instance", str(instance.path))
    assert result.exit_code == 0, result.stderr  # what the storage retains is no failure of the repair
    lines = result.stdout.splitlines()
    assert any(ln.startswith("removed: incomplete upload item/89abcdef0123456789abcdef") for ln in lines)
    [kept] = [ln for ln in lines if ln.startswith("orphaned, retained: item/0123456789abcdef01234567")]
    assert f"retains it until {until:%Y-%m-%d}" in kept
    assert bucket.client.list_multipart_uploads(Bucket=bucket.name).get("Uploads", []) == []
    assert storage.exists("item/0123456789abcdef01234567")


@pytest.mark.slow
def test_twenty_four_kills_leave_nothing_but_what_was_published(instance: Instance, tmp_path: Path) -> None:
    """Workers, whole servers and `pligt add` killed 24 times, large bodies; every leftover goes, nothing else."""
    rng = random.Random(24)
    logs = iter(tmp_path / f"server-{n}.log" for n in range(100))
    server = start_server(instance.path, next(logs))
    orphans: list[str] = []
    debris_bytes = 0  # what the kills left in temporary files, over the whole run
    try:
        published = publish(server, instance, 4)
        for n in range(24):
            slug = f"cut-{n}"
            kind = n % 6
            if kind in (0, 1, 2):
                kill_worker_mid_body(server, instance, slug, size=rng.randrange(8, 48) * MiB)
            elif kind == 3:
                orphans.append(kill_worker_between_store_and_commit(server, instance, slug))
            elif kind == 4:
                kill_pligt_add_mid_file(instance, tmp_path, slug)
            else:
                kill_server_mid_body(server, instance, slug)
                debris_bytes += sum(temp_files(instance).values())
                if n == 23:
                    break  # the last: the server stays down for the checks below
                left = len(temp_files(instance))
                server = start_server(instance.path, next(logs))
                assert f"swept {left} leftovers of interrupted uploads" in server.log.read_text()
                assert temp_files(instance) == {}
    finally:
        stop_server(server)

    temps = temp_files(instance)
    assert len(temps) == 5  # the kills since the last restart: three workers, one pligt add, the server
    code, report = fixity(instance)
    assert code == 9
    assert {d["name"] for d in report["debris"] if d["abandoned"]} == set(temps)
    assert sorted(o["key"] for o in report["orphaned"]) == sorted(orphans)
    assert debris_bytes > 64 * MiB

    server = start_server(instance.path, next(logs))
    try:
        assert "swept 5 leftovers of interrupted uploads" in server.log.read_text()
        result = invoke("fixity", "--repair", "--older-than", "0", "--instance", str(instance.path))
        assert result.exit_code == 0, result.stderr
        assert f"repair: removed {len(orphans)}, {len(orphans) * MiB:,} bytes freed" in result.stdout
        code, report = fixity(instance, "--older-than", "0")
        assert code == 0 and (report["debris"], report["orphaned"], report["unexpected"]) == ([], [], [])
        assert sorted(p.name for p in files(instance).iterdir()) == ["brochure-0", "brochure-1"]
        published_still_served(server, instance, published)
    finally:
        stop_server(server)
