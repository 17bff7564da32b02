"""The contract every storage backend must keep (parametrised over backends).

The same tests run against local files and against S3 (moto in server mode,
over HTTP on 127.0.0.1, in a versioned bucket with Object Lock).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import pytest

from pligt.core.errors import ConfigurationError
from pligt.core.errors import InvalidInput
from pligt.core.storage import LocalStorage
from pligt.core.storage import Storage
from pligt.core.storage import open_backend
from pligt.core.storage.base import EMPTY_FOLDER
from pligt.core.storage.base import INCOMPLETE_UPLOAD
from pligt.core.storage.base import TEMPORARY_FILE
from pligt.core.storage.base import Debris
from pligt.core.storage.s3 import PART_SIZE


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def opened(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, object]]:
    """The URL and options of a fresh backend, as a process of its own would open it."""
    if request.param == "local":
        return (tmp_path / "files").as_uri(), {}
    if request.param == "s3":
        bucket = request.getfixturevalue("bucket")  # also sets fake AWS credentials, loopback only
        return bucket.url("contract"), bucket.options()
    raise AssertionError(request.param)


@pytest.fixture
def backend(opened: tuple[str, dict[str, object]]) -> Storage:
    url, options = opened
    return open_backend(url, **options)


def chunks_of(data: bytes, size: int = 7) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def read_all(backend: Storage, key: str) -> bytes:
    with backend.open(key) as f:
        return f.read()


def test_save_measures_and_reads_back(backend: Storage) -> None:
    data = os.urandom(100_003)
    stored = backend.save("item/abc", chunks_of(data, 4096))
    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert read_all(backend, "item/abc") == data
    assert backend.exists("item/abc")
    assert backend.size("item/abc") == len(data)


def test_read_range_yields_only_the_range(backend: Storage) -> None:
    data = bytes(range(256)) * 10
    backend.save("r/1", [data])
    assert b"".join(backend.read_range("r/1", 10, 20)) == data[10:30]
    assert b"".join(backend.read_range("r/1", 2500)) == data[2500:]
    assert b"".join(backend.read_range("r/1")) == data


def test_open_stream_is_seekable(backend: Storage) -> None:
    backend.save("s/1", [b"0123456789"])
    with backend.open("s/1") as f:
        assert f.seekable()
        f.seek(5)
        assert f.read(3) == b"567"


def test_existing_key_is_never_overwritten(backend: Storage) -> None:
    backend.save("k/1", [b"first"])
    with pytest.raises(FileExistsError):
        backend.save("k/1", [b"second"])
    assert read_all(backend, "k/1") == b"first"


def test_failed_stream_leaves_nothing(backend: Storage) -> None:
    def broken() -> Iterator[bytes]:
        yield b"x" * 10_000
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        backend.save("k/broken", broken())
    assert not backend.exists("k/broken")
    assert list(backend.iter_keys()) == []


def test_missing_keys(backend: Storage) -> None:
    assert not backend.exists("no/such")
    with pytest.raises(FileNotFoundError):
        backend.open("no/such")
    backend.delete("no/such")  # no error


def test_delete_removes(backend: Storage) -> None:
    backend.save("d/1", [b"bytes"])
    backend.delete("d/1")
    assert not backend.exists("d/1")
    assert "d/1" not in list(backend.iter_keys())


def test_iter_keys_lists_complete_objects(backend: Storage) -> None:
    for key in ("b/2", "a/1", "b/1"):
        backend.save(key, [key.encode()])
    assert sorted(backend.iter_keys()) == ["a/1", "b/1", "b/2"]


@pytest.mark.parametrize(
    "key", ["../escape", "/etc/passwd", "a/../../b", "", "a//b", "a/./b", ".hidden", "a b", "a\x00b"]
)
def test_unsafe_keys_are_refused(backend: Storage, key: str) -> None:
    with pytest.raises(InvalidInput):
        backend.save(key, [b"x"])
    with pytest.raises(InvalidInput):
        backend.open(key)


def test_check_passes_on_a_usable_backend(backend: Storage) -> None:
    facts = backend.check()
    assert facts["url"] == backend.url


def test_save_with_a_retention_date_stores_and_reads_back(backend: Storage) -> None:
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=183)
    stored = backend.save("kept/1", chunks_of(b"kept for half a year\n" * 100, 1000), retain_until=until)
    assert stored.size == 2100
    assert read_all(backend, "kept/1") == b"kept for half a year\n" * 100


def test_large_object_streams_in_and_reads_back_from_any_position(backend: Storage) -> None:
    data = os.urandom(PART_SIZE * 2 + 12_345)  # several multipart parts on S3
    stored = backend.save("big/1", chunks_of(data, 1024 * 1024))
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    with backend.open("big/1") as f:
        assert f.read(10) == data[:10]
        f.seek(PART_SIZE - 5)
        assert f.read(10) == data[PART_SIZE - 5 : PART_SIZE + 5]
        assert f.tell() == PART_SIZE + 5
        f.seek(-3, os.SEEK_END)
        assert f.read() == data[-3:]
        assert f.read(10) == b""
    assert hashlib.sha256(b"".join(backend.read_range("big/1"))).hexdigest() == stored.sha256


def test_failed_large_stream_leaves_nothing(backend: Storage) -> None:
    def broken() -> Iterator[bytes]:
        yield os.urandom(PART_SIZE + 1)  # at least one part has gone up on S3
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        backend.save("k/broken-big", broken())
    assert not backend.exists("k/broken-big")
    assert list(backend.iter_keys()) == []


# -- what interrupted writes leave ----------------------------------------------------

#: A writer in a process of its own: it stores more than one S3 part of KEY, says so, and waits to be killed.
WRITER = """
import json, sys, time
from pligt.core.storage import open_backend

def chunks():
    yield b"w" * int(sys.argv[3])
    print("written", flush=True)
    time.sleep(120)

open_backend(sys.argv[1], **json.loads(sys.argv[2])).save(sys.argv[4], chunks())
"""
KILLED_KEY = "killed/0123456789abcdef01234567"


def kill_a_writer_mid_save(opened: tuple[str, dict[str, object]], key: str = KILLED_KEY) -> None:
    """Start a real process saving ``key``, and SIGKILL it once it has stored more than one part."""
    url, options = opened
    argv = [sys.executable, "-c", WRITER, url, json.dumps(options), str(PART_SIZE + 1000), key]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=Path(__file__).parent.parent) as writer:
        try:
            assert writer.stdout is not None
            assert writer.stdout.readline() == b"written\n"
        finally:
            writer.send_signal(signal.SIGKILL)


class PausedWriter:
    """A save in a thread of this process, stopped mid-stream until :meth:`finish`."""

    def __init__(self, backend: Storage, key: str, data: bytes) -> None:
        self.data = data
        self.half = threading.Event()
        self.go_on = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._save, args=(backend, key), daemon=True)
        self.thread.start()
        assert self.half.wait(10)

    def _chunks(self) -> Iterator[bytes]:
        yield self.data[: PART_SIZE + 1]
        yield self.data[PART_SIZE + 1 : PART_SIZE + 2]  # asked for once the first part is stored
        self.half.set()
        assert self.go_on.wait(30)
        yield self.data[PART_SIZE + 2 :]

    def _save(self, backend: Storage, key: str) -> None:
        try:
            backend.save(key, self._chunks())
        except BaseException as e:
            self.error = e

    def finish(self) -> None:
        self.go_on.set()
        self.thread.join(30)
        assert self.error is None


def test_objects_are_listed_with_size_and_time_written(backend: Storage) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    backend.save("listed/1", [b"12345"])
    [info] = backend.iter_objects()
    assert (info.key, info.size) == ("listed/1", 5)
    assert before <= info.modified <= datetime.now(UTC) + timedelta(seconds=5)
    assert info.modified.utcoffset() == timedelta(0)


def test_a_killed_writers_leftover_is_debris_never_an_object_and_a_sweep_removes_it(
    backend: Storage, opened: tuple[str, dict[str, object]]
) -> None:
    backend.save("kept/1", [b"an object beside the debris"])
    kill_a_writer_mid_save(opened)

    assert list(backend.iter_keys()) == ["kept/1"]
    assert not backend.exists(KILLED_KEY)
    [item] = [d for d in backend.debris(timedelta(0)) if d.kind != EMPTY_FOLDER]
    assert item.kind in (TEMPORARY_FILE, INCOMPLETE_UPLOAD)
    assert item.name.startswith("killed/")
    assert item.size >= PART_SIZE  # what the killed writer had stored
    assert item.abandoned

    swept = backend.sweep(timedelta(0))
    assert [d.name for d in swept.removed] == [item.name]
    assert swept.bytes_freed == item.size and swept.failed == []
    assert backend.debris(timedelta(0)) == []
    assert list(backend.iter_keys()) == ["kept/1"]
    assert read_all(backend, "kept/1") == b"an object beside the debris"
    assert backend.sweep(timedelta(0)).removed == []  # nothing left to sweep


def test_a_live_writer_keeps_its_leftover_through_a_sweep(backend: Storage) -> None:
    data = os.urandom(PART_SIZE + 5000)
    writer = PausedWriter(backend, "live/1", data)
    try:
        [item] = backend.debris()
        assert not item.abandoned  # locked (local), or sent a part just now (S3)
        swept = backend.sweep()
        assert swept.removed == [] and [d.name for d in swept.in_use] == [item.name]
    finally:
        writer.finish()
    assert read_all(backend, "live/1") == data
    assert backend.debris() == []


def test_storage_side_retention_is_reported(backend: Storage) -> None:
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=183)
    backend.save("ret/1", [b"retained"], retain_until=until)
    backend.save("ret/2", [b"not"])
    if isinstance(backend, LocalStorage):  # no retention of its own: the archive core keeps versions
        assert backend.retained_until("ret/1") is None
    else:
        assert backend.retained_until("ret/1") == until
    assert backend.retained_until("ret/2") is None
    with pytest.raises(FileNotFoundError):
        backend.retained_until("ret/none")


def test_only_its_own_leftovers_are_removed(backend: Storage) -> None:
    now = datetime.now(UTC)
    for forged in (
        Debris(TEMPORARY_FILE, "../outside/.tmp-1", 0, now, True),
        Debris(TEMPORARY_FILE, "item/not-a-temporary-file", 0, now, True),
        Debris("object", "item/1", 0, now, True),
    ):
        with pytest.raises(InvalidInput):
            backend.remove_debris(forged)


# -- local specifics -------------------------------------------------------------


def test_local_files_are_read_only_and_no_temporary_file_remains(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "files")
    storage.save("x/1", [b"content"])
    path = tmp_path / "files" / "x" / "1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert [p.name for p in path.parent.iterdir()] == ["1"]


def test_local_crash_leftovers_are_not_objects(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "files")
    storage.save("x/1", [b"content"])
    (tmp_path / "files" / "x" / ".tmp-deadbeef").write_bytes(b"half")  # as a crash mid-write leaves it
    assert list(storage.iter_keys()) == ["x/1"]
    [item] = storage.debris()
    assert (item.kind, item.name, item.size, item.abandoned) == (TEMPORARY_FILE, "x/.tmp-deadbeef", 4, True)


def test_local_killed_writers_are_told_by_their_lock_whatever_their_age(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "files")
    kill_a_writer_mid_save((storage.url, {}))
    [item] = storage.debris()  # the default grace period: the lock alone decides
    assert item.abandoned
    assert [d.name for d in storage.sweep().removed] == [item.name]
    assert not (tmp_path / "files" / "killed").exists()  # and the folder it left empty

    writer = PausedWriter(storage, "live/1", os.urandom(PART_SIZE + 10))
    try:
        assert storage.sweep(timedelta(0)).removed == []  # whatever the grace period: a held lock
        [item] = storage.debris(timedelta(0))
        assert not item.abandoned and not storage.remove_debris(replace(item, abandoned=True))
    finally:
        writer.finish()
    assert storage.exists("live/1")


def test_local_empty_folders_are_debris_and_a_delete_leaves_none(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "files")
    storage.save("gone/1", [b"x"])
    storage.delete("gone/1")
    assert not (tmp_path / "files" / "gone").exists()
    (tmp_path / "files" / "empty" / "deeper").mkdir(parents=True)
    storage.save("full/1", [b"y"])
    assert [(d.kind, d.name) for d in storage.debris()] == [(EMPTY_FOLDER, "empty/deeper"), (EMPTY_FOLDER, "empty")]
    assert len(storage.sweep().removed) == 2
    assert sorted(p.name for p in (tmp_path / "files").iterdir()) == ["full"]


def test_local_saves_survive_sweeps_running_beside_them(tmp_path: Path) -> None:
    """A sweep may empty a folder a save has just made, or find its file before it is locked: the save goes on."""
    storage = LocalStorage(tmp_path / "files")
    stop = threading.Event()

    def sweeping() -> None:
        while not stop.is_set():
            storage.sweep(timedelta(0))

    sweeper = threading.Thread(target=sweeping, daemon=True)
    sweeper.start()
    try:
        for n in range(300):
            storage.save(f"item-{n}/1", [b"bytes of ", str(n).encode()])
    finally:
        stop.set()
        sweeper.join(10)
    assert sorted(storage.iter_keys()) == sorted(f"item-{n}/1" for n in range(300))
    assert storage.debris() == []


@pytest.mark.parametrize(
    "url",
    ["file://relative/path", "file:///srv?x=1", "ftp://host/path", "s4://bucket", "/no/scheme"],
)
def test_bad_storage_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        open_backend(url)
