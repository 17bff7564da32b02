"""The contract every storage backend must keep (parametrised over backends).

The same tests run against local files and against S3 (moto in server mode,
over HTTP on 127.0.0.1, in a versioned bucket with Object Lock).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import pytest

from archive.errors import ConfigurationError
from archive.errors import InvalidInput
from archive.storage import LocalStorage
from archive.storage import Storage
from archive.storage import open_backend
from archive.storage.s3 import PART_SIZE


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return open_backend((tmp_path / "files").as_uri())
    if request.param == "s3":
        bucket = request.getfixturevalue("bucket")  # also sets fake AWS credentials, loopback only
        return open_backend(bucket.url("contract"), **bucket.options())
    raise AssertionError(request.param)


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


@pytest.mark.parametrize(
    "url",
    ["file://relative/path", "file:///srv?x=1", "ftp://host/path", "s4://bucket", "/no/scheme"],
)
def test_bad_storage_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        open_backend(url)
