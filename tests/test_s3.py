"""S3 storage with Object Lock, against a real S3 endpoint over HTTP (moto in server mode on 127.0.0.1).

The contract suite (``test_storage_contract.py``) and the crawler's end-to-end
harvest (``test_e2e_crawl.py``) run on S3 too; this file shows what only S3
has: retention enforced by the bucket itself, the bucket checks (region,
versioning, Object Lock), faults of the endpoint, ranged reads, and moving an
instance's files from local storage to S3 and back.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import time
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from warcio.archiveiterator import ArchiveIterator

from pligt.core.errors import ConfigurationError
from pligt.core.errors import RetentionActive
from pligt.core.errors import StorageError
from pligt.core.models import Version
from pligt.core.models import utcnow
from pligt.core.storage import S3Storage
from pligt.core.storage import open_backend
from pligt.core.storage.s3 import MIN_WINDOW
from pligt.core.storage.s3 import PART_SIZE
from pligt.instance import build_archive
from pligt.settings import load_settings
from tests.support.access import issue_credential
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.app import make_app
from tests.support.cli import invoke
from tests.support.cli import run_cli
from tests.support.cli import run_on_terminal
from tests.support.data import binary_bytes
from tests.support.data import pdf_bytes
from tests.support.net import free_port
from tests.support.s3 import Bucket
from tests.support.s3 import MakeBucket
from tests.support.s3 import MotoEndpoint
from tests.support.servers import start_server
from tests.support.servers import stop_server


@pytest.fixture(autouse=True)
def _fake_aws(aws_env: None) -> None:
    """Fake credentials, and nothing but 127.0.0.1 reachable, for every test here."""


@pytest.fixture
def now_clock() -> Clock:
    """A clock at the real time: S3 judges Object Lock dates by its own (real) clock."""
    clock = Clock()
    clock.now = utcnow()
    return clock


def on_s3(instance: Instance, bucket: Bucket, endpoint: str | None = None, extra: str = "") -> Instance:
    """Point an initialised instance at ``bucket`` (through ``endpoint``, default the session's server)."""
    with instance.settings.config_file.open("a", encoding="utf-8") as config:
        config.write(bucket.settings_toml(endpoint=endpoint) + extra)
    return Instance(load_settings(instance.path, env={}), instance.owner)


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def object_key(version: Version, prefix: str = "pligt") -> str:
    return f"{prefix}/{version.storage_key}"


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("s3://", "s3://bucket/prefix"),
        ("s3://Not_A_Bucket/x", "not a valid S3 bucket name"),
        ("s3://ab/x", "not a valid S3 bucket name"),
        ("s3://AKIAKEY:secret@bucket-name/x", "credentials never go in the URL"),
        ("s3://bucket-name:9000/x", "no port"),
        ("s3://bucket-name/x?region=eu-north-1", "query"),
        ("s3://bucket-name/../x", "prefix"),
        ("s3://bucket-name/a b", "prefix"),
    ],
)
def test_malformed_s3_urls_are_refused(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        open_backend(url)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"endpoint": "http://127.0.0.1:9000"}, "unknown option"),
        ({"object_lock_mode": "STRICT"}, "GOVERNANCE or COMPLIANCE"),
        ({"addressing_style": "dns"}, "addressing style"),
        ({"allowed_regions": []}, "at least one region"),
        ({"endpoint_url": "ftp://s3.example"}, "https://host"),
        ({"endpoint_url": "https://key:secret@s3.example"}, "no credentials"),
        ({"require_object_lock": "yes"}, "true or false"),
    ],
)
def test_bad_s3_options_are_refused(options: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        open_backend("s3://bucket-name/pligt", **options)


def test_the_backend_is_described_by_its_url_and_connects_only_when_used() -> None:
    storage = open_backend("s3://archive.example-1/pligt/files/", endpoint_url="http://127.0.0.1:9", region="x")
    assert isinstance(storage, S3Storage)
    assert storage.url == "s3://archive.example-1/pligt/files"  # nothing has connected (port 9 is closed)
    with pytest.raises(StorageError, match="down or too slow"):
        storage.exists("a/b")


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"PLIGT_S3_OBJECT_LOCK_MODE": "strict"}, "s3_object_lock_mode"),
        ({"PLIGT_S3_ADDRESSING_STYLE": "dns"}, "s3_addressing_style"),
        ({"PLIGT_S3_REQUIRE_OBJECT_LOCK": "maybe"}, "s3_require_object_lock"),
        ({"PLIGT_ALLOWED_REGIONS": " , "}, "allowed_regions"),
        ({"PLIGT_S3_ENDPOINT_URL": "https://key:secret@s3.example"}, "s3_endpoint_url"),
        ({"PLIGT_STORAGE": "s3://bucket-name:1/x"}, "no port"),
    ],
)
def test_bad_s3_settings_stop_start_up_with_one_line(tmp_path: Path, env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says) as info:
        load_settings(tmp_path, env={"PLIGT_STORAGE": "s3://bucket-name/pligt", **env})
    assert "\n" not in info.value.message


def test_s3_settings_reach_the_backend(tmp_path: Path) -> None:
    env = {
        "PLIGT_STORAGE": "s3://bucket-name/pligt",
        "PLIGT_S3_ENDPOINT_URL": "https://s3.example.se",
        "PLIGT_S3_REGION": "se-sto-1",
        "PLIGT_S3_ADDRESSING_STYLE": "path",
        "PLIGT_S3_OBJECT_LOCK_MODE": "COMPLIANCE",
        "PLIGT_ALLOWED_REGIONS": "se-sto-1, eu-north-1",
    }
    storage = build_archive(load_settings(tmp_path, env=env)).storage
    assert isinstance(storage, S3Storage)
    assert (storage.endpoint_url, storage.region, storage.addressing_style) == (
        "https://s3.example.se",
        "se-sto-1",
        "path",
    )
    assert storage.object_lock_mode == "COMPLIANCE"
    assert storage.allowed_regions == ("se-sto-1", "eu-north-1")
    assert storage.require_object_lock is True


# -- Object Lock: retention enforced by the bucket ----------------------------------------


def test_published_versions_are_locked_until_the_catalogs_retain_until(
    instance: Instance, bucket: Bucket, now_clock: Clock
) -> None:
    archive = build_archive(on_s3(instance, bucket).settings, now_clock)
    small = pdf_bytes("locked")
    large = binary_bytes(PART_SIZE + 300_000)  # a multipart upload
    for data, name in ((small, "locked.pdf"), (large, "large.bin")):
        version = archive.publish([data], filename=name, visibility="public").version
        assert version.published_at == now_clock.now
        assert version.retain_until == now_clock.now + timedelta(days=183)
        head = bucket.client.head_object(Bucket=bucket.name, Key=object_key(version), ChecksumMode="ENABLED")
        assert head["ObjectLockMode"] == "GOVERNANCE"
        assert head["ObjectLockRetainUntilDate"] == version.retain_until
        assert head["ContentLength"] == len(data)
        assert version.sha256 == hashlib.sha256(data).hexdigest()  # the catalog keeps the full SHA-256
        if data is small:
            assert head["ChecksumSHA256"] == b64_sha256(data)  # S3 has it as the object's checksum
        else:
            assert head["ChecksumSHA256"]  # a composite of the parts' SHA-256 checksums


def test_s3_itself_refuses_to_delete_a_locked_version(instance: Instance, bucket: Bucket, now_clock: Clock) -> None:
    archive = build_archive(on_s3(instance, bucket).settings, now_clock)
    version = archive.publish([pdf_bytes("kept")], filename="kept.pdf", visibility="public").version
    [stored] = bucket.versions(object_key(version))

    with pytest.raises(RetentionActive):  # the core refuses first ...
        archive.withdraw(version.slug)
    with pytest.raises(StorageError, match="Object Lock"):  # ... and the backend cannot be talked into it
        archive.storage.delete(version.storage_key)
    with pytest.raises(ClientError) as denied:  # ... nor can anyone with the bucket's credentials
        bucket.client.delete_object(Bucket=bucket.name, Key=object_key(version), VersionId=stored["VersionId"])
    assert denied.value.response["Error"]["Code"] == "AccessDenied"

    assert [v["VersionId"] for v in bucket.versions(object_key(version))] == [stored["VersionId"]]
    with archive.open(version) as f:
        assert f.read() == pdf_bytes("kept")


def test_compliance_mode_cannot_be_bypassed(instance: Instance, bucket: Bucket, now_clock: Clock) -> None:
    settings = on_s3(instance, bucket, extra='s3_object_lock_mode = "COMPLIANCE"\n').settings
    archive = build_archive(settings, now_clock)
    version = archive.publish([pdf_bytes("compliance")], filename="c.pdf", visibility="public").version
    [stored] = bucket.versions(object_key(version))
    assert bucket.client.head_object(Bucket=bucket.name, Key=object_key(version))["ObjectLockMode"] == "COMPLIANCE"
    with pytest.raises(ClientError) as denied:
        bucket.client.delete_object(
            Bucket=bucket.name,
            Key=object_key(version),
            VersionId=stored["VersionId"],
            BypassGovernanceRetention=True,
        )
    assert denied.value.response["Error"]["Code"] == "AccessDenied"


def test_withdrawal_after_retention_deletes_the_object_version(instance: Instance, bucket: Bucket) -> None:
    # Published 183 days ago less two seconds: S3's lock runs out two seconds from now.
    clock = Clock()
    clock.now = utcnow() - timedelta(days=183) + timedelta(seconds=2)
    settings = on_s3(instance, bucket).settings
    archive = build_archive(settings, clock)
    version = archive.publish([pdf_bytes("ending")], filename="ending.pdf", visibility="public").version
    with pytest.raises(RetentionActive):
        archive.withdraw(version.slug)
    time.sleep(max(0.0, (version.retain_until - utcnow()).total_seconds()) + 1.1)
    clock.now = utcnow()

    archive.withdraw(version.slug)

    assert bucket.versions(object_key(version)) == []  # every version gone, no delete marker left
    client = make_app(settings, clock).test_client()
    assert client.get(f"/files/{version.slug}/v1/ending.pdf").status_code == 410


# -- the bucket checks ---------------------------------------------------------------------


def test_check_describes_a_good_bucket(instance: Instance, bucket: Bucket) -> None:
    on_s3(instance, bucket)
    result = invoke("check", "--instance", str(instance.path), "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["storage"]["region"] == "eu-north-1"
    assert report["storage"]["versioning"] == "Enabled"
    assert report["storage"]["object_lock"] == "Enabled"
    assert report["storage"]["object_lock_mode"] == "GOVERNANCE"


@pytest.mark.server
def test_bucket_outside_the_allowed_regions_is_refused_saying_where_it_is(
    instance: Instance, make_bucket: MakeBucket
) -> None:
    bucket = make_bucket("us-east-2")
    with pytest.raises(StorageError, match="is in us-east-2, outside the allowed regions \\(eu-north-1\\)"):
        bucket.storage().check()
    bucket.storage(allowed_regions=["eu-north-1", "us-east-2"]).check()  # a list of one's own is possible

    on_s3(instance, bucket)
    checked = invoke("check", "--instance", str(instance.path))
    served = run_cli("serve", "--instance", str(instance.path), "--port", str(free_port()))  # a real `pligt serve`
    for code, stderr in ((checked.exit_code, checked.stderr), (served.returncode, served.stderr)):
        assert code == StorageError.exit_code, stderr
        assert "us-east-2" in stderr
        assert "Scandinavia" in stderr


def test_bucket_without_versioning_is_refused(make_bucket: MakeBucket) -> None:
    bucket = make_bucket(versioning=False, object_lock=False)
    with pytest.raises(StorageError, match="versioning is never enabled"):
        bucket.storage(require_object_lock=False).check()


def test_bucket_without_object_lock_is_refused_when_retention_must_be_enforced(
    instance: Instance, make_bucket: MakeBucket, now_clock: Clock
) -> None:
    bucket = make_bucket(object_lock=False)
    with pytest.raises(StorageError, match="Object Lock is not enabled"):
        bucket.storage().check()

    # Without the requirement the bucket is usable, and objects go up without a lock.
    assert bucket.storage(require_object_lock=False).check()["object_lock"] == "Disabled"
    archive = build_archive(on_s3(instance, bucket, extra="s3_require_object_lock = false\n").settings, now_clock)
    version = archive.publish([pdf_bytes("unlocked")], filename="u.pdf", visibility="public").version
    head = bucket.client.head_object(Bucket=bucket.name, Key=object_key(version))
    assert "ObjectLockMode" not in head


def test_missing_bucket_is_refused(bucket: Bucket) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        S3Storage.from_url(f"s3://{bucket.name}-gone/x", **bucket.options()).check()


# -- faults of the endpoint ------------------------------------------------------------------


def test_a_hung_endpoint_fails_fast_instead_of_hanging(bucket: Bucket, silent_endpoint: str) -> None:
    storage = S3Storage.from_url(
        bucket.url(), **bucket.options(silent_endpoint), connect_timeout=0.5, read_timeout=0.5, max_attempts=2
    )
    began = time.monotonic()
    with pytest.raises(StorageError, match="down or too slow"):
        storage.open("some/key")
    assert time.monotonic() - began < 5


class StopsEndpoint(io.BytesIO):
    """A request body that stops the S3 endpoint once ``after`` bytes have been read."""

    def __init__(self, data: bytes, endpoint: MotoEndpoint, after: int) -> None:
        super().__init__(data)
        self._endpoint = endpoint
        self._after = after

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= self._after:
            self._endpoint.stop()
        return super().read(size)

    def readinto(self, buffer: Any) -> int:
        if self.tell() >= self._after:
            self._endpoint.stop()
        return super().readinto(buffer)


@pytest.mark.s3
def test_endpoint_stopped_mid_upload_leaves_nothing_and_the_server_recovers(
    instance: Instance,
    bucket: Bucket,
    stoppable_endpoint: MotoEndpoint,
    now_clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = on_s3(instance, bucket, endpoint=stoppable_endpoint.url).settings
    client = make_app(settings, now_clock).test_client()
    data = binary_bytes(3 * PART_SIZE)
    body = StopsEndpoint(data, stoppable_endpoint, after=PART_SIZE + PART_SIZE // 2)  # a part is up by then

    with caplog.at_level(logging.ERROR, logger="pligt"):
        response = client.post(
            "/api/items",
            query_string={"filename": "big.bin", "visibility": "public"},
            input_stream=body,
            headers={"Content-Length": str(len(data))},
            auth=instance.owner_auth,
        )

    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert "down or too slow" in response.get_json()["description"]
    assert any("storage failure on POST /api/items" in r.getMessage() for r in caplog.records)
    assert client.get("/api/items", auth=instance.owner_auth).get_json()["items"] == []  # no catalog entry

    stoppable_endpoint.start()
    assert bucket.versions() == []  # no object, no version: the multipart upload never completed
    response = client.post(  # the server recovered by itself
        "/api/items",
        query_string={"filename": "big.bin", "visibility": "public"},
        data=data,
        auth=instance.owner_auth,
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    assert client.get(response.headers["Location"]).data == data


@pytest.mark.s3
@pytest.mark.server
def test_endpoint_stopped_mid_download_then_503_then_served_again(
    instance: Instance, bucket: Bucket, stoppable_endpoint: MotoEndpoint, tmp_path: Path
) -> None:
    instance = on_s3(instance, bucket, endpoint=stoppable_endpoint.url)
    data = binary_bytes(24 * 1024 * 1024)  # more than the sockets between us buffer
    server = start_server(instance.path, tmp_path / "server.log", "--workers", "1")
    try:
        published = requests.post(
            f"{server.url}/api/items",
            params={"filename": "big.bin", "visibility": "public"},
            data=data,
            auth=instance.owner_auth,
            timeout=60,
        )
        assert published.status_code == 201, published.text
        url = published.json()["version"]["url"]

        received = bytearray()

        def read_while_the_endpoint_stops() -> None:
            with requests.get(url, stream=True, timeout=30) as download:
                assert download.status_code == 200
                for chunk in download.iter_content(64 * 1024):
                    if not received:
                        stoppable_endpoint.stop()
                    received.extend(chunk)

        with pytest.raises(requests.exceptions.RequestException):  # the body was cut short
            read_while_the_endpoint_stops()
        assert len(received) < len(data)

        # The server goes on serving what needs no storage, and says "later" for the rest.
        assert requests.get(f"{server.url}/", timeout=10).status_code == 200
        assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 503
        unavailable = requests.get(url, timeout=10)
        assert unavailable.status_code == 503
        assert int(unavailable.headers["Retry-After"]) > 0

        stoppable_endpoint.start()
        again = requests.get(url, timeout=60)
        assert again.status_code == 200
        assert again.content == data
        assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
    finally:
        stop_server(server)
    log = server.log.read_text()
    assert "reading big/" in log and "from S3 stopped at byte" in log  # the cut-off download
    assert "storage failure on GET /files/big/v1/big.bin" in log  # the 503s
    assert "down or too slow" in log


# -- ranged reads -------------------------------------------------------------------------------


class GetObjectBytes:
    """Counts what S3 sent in answer to GetObject, via a botocore event hook on the backend's client."""

    def __init__(self, storage: S3Storage) -> None:
        self.sizes: list[int] = []
        storage.client.meta.events.register("after-call.s3.GetObject", self._count)

    def _count(self, parsed: dict[str, Any], **_: Any) -> None:
        self.sizes.append(int(parsed["ContentLength"]))

    @property
    def total(self) -> int:
        return sum(self.sizes)


def test_a_range_request_fetches_only_its_bytes(instance: Instance, bucket: Bucket, now_clock: Clock) -> None:
    settings = on_s3(instance, bucket).settings
    app = make_app(settings, now_clock)
    storage = app.extensions["pligt"].archive.storage
    data = binary_bytes(5 * 1024 * 1024)
    version = app.extensions["pligt"].archive.publish([data], filename="data.bin", visibility="public").version
    url = f"/files/{version.slug}/v1/data.bin"
    client = app.test_client()
    fetched = GetObjectBytes(storage)

    small = client.get(url, headers={"Range": "bytes=3000000-3000099"})
    assert small.status_code == 206
    assert small.data == data[3_000_000:3_000_100]
    assert 0 < fetched.total <= MIN_WINDOW  # a few kilobytes, not the rest of a 5 MiB object

    fetched.sizes.clear()
    mib = client.get(url, headers={"Range": "bytes=1000000-2048575"})
    assert mib.status_code == 206
    assert mib.data == data[1_000_000:2_048_576]
    assert 1_048_576 <= fetched.total <= 2 * 1_048_576 + MIN_WINDOW

    fetched.sizes.clear()
    whole = client.get(url)
    assert whole.data == data
    assert fetched.total == len(data)  # windows that together are exactly the object


def test_an_opened_object_is_lazy_seekable_and_has_no_file_descriptor(bucket: Bucket) -> None:
    storage = bucket.storage()
    storage.save("lazy/1", [b"0123456789" * 1000])
    fetched = GetObjectBytes(storage)
    with storage.open("lazy/1") as f:
        assert fetched.sizes == []  # opening fetched nothing
        with pytest.raises(io.UnsupportedOperation):
            f.fileno()  # so gunicorn iterates instead of trying sendfile
        assert (f.seekable(), f.readable(), f.writable()) == (True, True, False)
        f.seek(9995)
        assert f.read(3) == b"567"
        assert f.tell() == 9998
    assert f.closed


# -- uploads -------------------------------------------------------------------------------------------


def test_a_failed_multipart_upload_is_aborted(bucket: Bucket) -> None:
    storage = bucket.storage()

    def broken() -> Iterator[bytes]:
        yield os.urandom(2 * PART_SIZE)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        storage.save("half/1", broken())
    assert bucket.client.list_multipart_uploads(Bucket=bucket.name).get("Uploads", []) == []
    assert bucket.versions() == []


def test_a_key_that_appears_during_an_upload_is_not_overwritten(bucket: Bucket) -> None:
    storage = bucket.storage()

    def racing() -> Iterator[bytes]:
        yield os.urandom(PART_SIZE)
        storage.save("race/1", [b"first"])  # another writer wins meanwhile
        yield b"late"

    with pytest.raises(FileExistsError):
        storage.save("race/1", racing())
    with storage.open("race/1") as f:
        assert f.read() == b"first"
    assert bucket.client.list_multipart_uploads(Bucket=bucket.name).get("Uploads", []) == []


# -- moving an instance's files: local → S3 → local ------------------------------------------------------


@pytest.mark.server
def test_migrate_storage_from_local_to_s3_verifies_every_byte_and_keeps_retention(
    instance: Instance, bucket: Bucket, tmp_path: Path
) -> None:
    files = tmp_path / "to-publish"
    files.mkdir()
    (files / "brochure.pdf").write_bytes(pdf_bytes("brochure", pad=50_000))
    (files / "kursus.txt").write_bytes(b"Beskyttet kursusmateriale.\n" * 1000)
    (files / "data.bin").write_bytes(binary_bytes(PART_SIZE + 4321))
    for name, flag in (("brochure.pdf", "--public"), ("kursus.txt", "--protected"), ("data.bin", "--public")):
        result = invoke("add", "--instance", str(instance.path), flag, str(files / name))
        assert result.exit_code == 0, result.stderr
    versions = build_archive(instance.settings).versions()
    with instance.settings.config_file.open("a", encoding="utf-8") as config:  # the target's endpoint
        config.write(bucket.settings_toml().split("\n", 1)[1])
    # An interrupted earlier run left one object at the target, complete and verified.
    first = versions[0]
    bucket.storage().save(
        first.storage_key, [(instance.path / "files" / first.storage_key).read_bytes()], retain_until=first.retain_until
    )

    result = invoke("migrate-storage", "--instance", str(instance.path), "--to", bucket.url(), "--json")

    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["copied"], report["already_there"]) == (2, 1)
    assert report["storage"] == bucket.url()
    assert load_settings(instance.path, env={}).storage == bucket.url()
    for v in versions:
        key = object_key(v)
        head = bucket.client.head_object(Bucket=bucket.name, Key=key)
        assert head["ObjectLockMode"] == "GOVERNANCE"
        assert head["ObjectLockRetainUntilDate"] == v.retain_until
        body = bucket.client.get_object(Bucket=bucket.name, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == v.sha256

    # The instance now serves the same bytes at the same URLs, from S3.
    (instance.path / "files").rename(tmp_path / "old-files")  # so they cannot come from the disk
    archive = build_archive(load_settings(instance.path, env={}))
    credential, password = issue_credential(archive)
    server = start_server(instance.path, tmp_path / "server.log")
    try:
        for v in versions:
            response = requests.get(
                f"{server.url}/files/{v.slug}/v{v.number}/{v.filename}",
                auth=(credential.username, password),
                timeout=30,
            )
            assert response.status_code == 200
            assert hashlib.sha256(response.content).hexdigest() == v.sha256
    finally:
        stop_server(server)

    # A second run copies nothing: everything is there and verified.
    objects_before = len(bucket.versions())
    again = invoke("migrate-storage", "--instance", str(instance.path), "--to", bucket.url(), "--json")
    assert again.exit_code == 0, again.stderr
    assert (json.loads(again.stdout)["copied"], json.loads(again.stdout)["already_there"]) == (0, 3)
    assert len(bucket.versions()) == objects_before

    # And back to local files, verified the same way.
    back = (tmp_path / "back").as_uri()
    result = invoke("migrate-storage", "--instance", str(instance.path), "--to", back)
    assert result.exit_code == 0, result.stderr
    assert "Copied 3 versions" in result.stdout
    assert load_settings(instance.path, env={}).storage == back
    for v in versions:
        assert hashlib.sha256((tmp_path / "back" / v.storage_key).read_bytes()).hexdigest() == v.sha256


def test_migration_refuses_bytes_that_differ_from_the_catalog(instance: Instance, bucket: Bucket, clock: Clock) -> None:
    archive = build_archive(instance.settings, clock)
    version = archive.publish([b"vare;pris\n"], filename="prisliste.csv", visibility="public").version
    path = instance.path / "files" / version.storage_key
    path.chmod(0o644)
    path.write_bytes(b"vare;pris\nfalsk;0\n")  # the disk no longer holds what was published
    with instance.settings.config_file.open("a", encoding="utf-8") as config:
        config.write(bucket.settings_toml().split("\n", 1)[1])

    result = invoke("migrate-storage", "--instance", str(instance.path), "--to", bucket.url())

    assert result.exit_code == StorageError.exit_code
    assert "differ from the catalog" in result.stderr
    assert bucket.versions() == []  # nothing made visible at the target
    assert load_settings(instance.path, env={}).storage == instance.settings.storage  # not switched


def test_migrate_storage_shows_a_progress_bar_on_a_terminal(instance: Instance, clock: Clock, tmp_path: Path) -> None:
    archive = build_archive(instance.settings, clock)
    for i in range(3):
        archive.publish([binary_bytes(400_000)], filename=f"part-{i}.bin", visibility="public")
    target = (tmp_path / "moved").as_uri()
    returncode, seen = run_on_terminal("migrate-storage", "--instance", str(instance.path), "--to", target)
    assert returncode == 0, seen.decode(errors="replace")
    assert b"Copying to" in seen
    assert b"100%" in seen


def test_the_wacz_export_streams_versions_from_s3(instance: Instance, bucket: Bucket, tmp_path: Path) -> None:
    s3 = on_s3(instance, bucket)
    archive = build_archive(s3.settings)
    contents = {"brochure.pdf": pdf_bytes("brochure", pad=20_000), "data.bin": binary_bytes(PART_SIZE + 4321)}
    for name, data in contents.items():
        archive.publish([data], filename=name, visibility="public")
    target = tmp_path / "aflevering.wacz"

    result = invoke("export", "--wacz", str(target), "--instance", str(s3.path), "--json")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["versions"] == 2
    found = {}
    with zipfile.ZipFile(target) as package, package.open("archive/data.warc.gz") as warc:
        for record in ArchiveIterator(warc):
            uri = record.rec_headers.get_header("WARC-Target-URI") or ""
            if "/files/" in uri:
                found[uri.rsplit("/", 1)[1]] = record.content_stream().read()
    assert found == contents
