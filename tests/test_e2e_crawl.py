"""End to end: a real `pligt serve`, material published through the CLI and the API,
harvested by wget as the deposit crawler does, checked record by record with warcio."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from urllib.parse import urlsplit

import pytest
import requests
from warcio.archiveiterator import ArchiveIterator

from pligt.core.storage import S3Storage
from pligt.instance import build_archive
from pligt.settings import load_settings
from tests.support.access import issue_credential
from tests.support.app import Instance
from tests.support.cli import invoke
from tests.support.data import binary_bytes
from tests.support.data import pdf_bytes
from tests.support.servers import Server
from tests.support.servers import start_server
from tests.support.servers import stop_server


def publish_cli(instance: Instance, path: Path, *flags: str) -> None:
    result = invoke("add", "--instance", str(instance.path), *flags, str(path))
    assert result.exit_code == 0, result.stderr


def publish_api(server: Server, instance: Instance, data: bytes, **params: str) -> dict[str, Any]:
    response = requests.post(f"{server.url}/api/items", params=params, data=data, auth=instance.owner_auth, timeout=30)
    assert response.status_code == 201, response.text
    version: dict[str, Any] = response.json()["version"]
    return version


def read_warc(path: Path) -> tuple[dict[str, list[tuple[int, str, bytes]]], list[tuple[str, bool]]]:
    """Return responses by URL (status, content type, payload) and requests (url, had Authorization)."""
    responses: dict[str, list[tuple[int, str, bytes]]] = {}
    requests_seen: list[tuple[str, bool]] = []
    with path.open("rb") as stream:
        for record in ArchiveIterator(stream):
            url = record.rec_headers.get_header("WARC-Target-URI")
            if record.rec_type == "response":
                status = int(record.http_headers.get_statuscode())
                ctype = record.http_headers.get_header("Content-Type")
                responses.setdefault(url, []).append((status, ctype, record.content_stream().read()))
            elif record.rec_type == "request":
                requests_seen.append((url, record.http_headers.get_header("Authorization") is not None))
    return responses, requests_seen


@pytest.fixture(params=["local", "s3"])
def storage_instance(request: pytest.FixtureRequest, instance: Instance) -> Instance:
    """The instance, storing its files locally or in S3 (moto on 127.0.0.1, a locked bucket)."""
    if request.param == "local":
        return instance
    bucket = request.getfixturevalue("bucket")  # also sets fake AWS credentials for the children
    with instance.settings.config_file.open("a", encoding="utf-8") as config:
        config.write(bucket.settings_toml())
    return Instance(load_settings(instance.path, env={}), instance.owner)


@pytest.fixture
def storage_server(storage_instance: Instance, tmp_path: Path) -> Iterator[Server]:
    running = start_server(storage_instance.path, tmp_path / "server.log")
    yield running
    stop_server(running)


@pytest.mark.parametrize("scheme_flags", [()])
def test_wget_harvests_every_retained_version_byte_identical(
    storage_instance: Instance, storage_server: Server, tmp_path: Path, scheme_flags: tuple[str, ...]
) -> None:
    instance, server = storage_instance, storage_server
    files = tmp_path / "to-publish"
    files.mkdir()
    (files / "Årsrapport æøå 2026.pdf").write_bytes(pdf_bytes("aarsrapport", pad=300_000))
    (files / "prisliste.csv").write_bytes(b"vare;pris\nkursus;1200\nbog;300\n")
    (files / "Kursusmateriale for øvede.txt").write_bytes(b"Beskyttet materiale, kun for pligtaflevering.\n" * 50)
    publish_cli(instance, files / "Årsrapport æøå 2026.pdf", "--public")
    publish_cli(instance, files / "prisliste.csv", "--public", "--slug", "prisliste")
    publish_cli(instance, files / "Kursusmateriale for øvede.txt", "--protected", "--slug", "kursus")
    publish_api(
        server, instance, pdf_bytes("brochure v1"), filename="brochure.pdf", slug="brochure", visibility="public"
    )
    publish_api(server, instance, pdf_bytes("brochure v2"), filename="brochure-2026.pdf", slug="brochure")
    publish_api(server, instance, binary_bytes(2_000_000), filename="data.bin", slug="raadata", visibility="protected")
    publish_api(server, instance, b"Fortrolig opdatering\n", filename="opdatering.txt", slug="kursus")

    credential, password = issue_credential(build_archive(instance.settings))
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text(f"machine 127.0.0.1 login {credential.username} password {password}\n")
    netrc.chmod(0o600)
    warc = tmp_path / "harvest"
    result = subprocess.run(
        [
            "wget",
            "--recursive",
            "--level=10",
            "--no-verbose",
            "--no-host-directories",
            "--directory-prefix",
            str(tmp_path / "mirror"),
            "--warc-file",
            str(warc),
            "--warc-cdx",
            "--tries=1",
            "--timeout=20",
            f"{server.url}/",
        ],
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # wget exits 8 when some response was an error; the 401 challenges are expected.
    assert result.returncode in (0, 8), result.stderr

    responses, requests_made = read_warc(Path(f"{warc}.warc.gz"))
    expected = build_archive(instance.settings).versions()
    assert len(expected) == 7
    for version in expected:
        path = f"/files/{version.slug}/v{version.number}/"
        matches = [url for url in responses if urlsplit(url).path.startswith(path)]
        assert matches, f"{path} was not harvested; wget said:\n{result.stderr}"
        [url] = matches
        assert unquote(urlsplit(url).path.rsplit("/", 1)[1]) == version.filename
        status, ctype, payload = responses[url][-1]
        assert status == 200
        assert ctype == version.content_type
        assert hashlib.sha256(payload).hexdigest() == version.sha256
        assert len(payload) == version.size

    # Credentials were sent only after the challenge: the first request to the
    # protected index carried none and got 401 with a realm.
    protected = [had_auth for url, had_auth in requests_made if urlsplit(url).path == "/protected/"]
    assert protected[0] is False
    assert True in protected
    first_protected = responses[f"{server.url}/protected/"][0]
    assert first_protected[0] == 401
    assert any(urlsplit(url).path == "/robots.txt" for url in responses)

    if instance.settings.storage.startswith("s3://"):
        # The bytes the crawler got came from the bucket: every version is there, locked.
        storage = build_archive(instance.settings).storage
        assert isinstance(storage, S3Storage)
        assert sorted(storage.iter_keys()) == sorted(v.storage_key for v in expected)
        assert not list((instance.path / "files").rglob("*"))
        for version in expected:
            head = storage.client.head_object(Bucket=storage.bucket, Key=f"{storage.prefix}/{version.storage_key}")
            assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]) == ("GOVERNANCE", version.retain_until)

    # The server logged the harvest without a single client address.
    access_lines = server.log_lines('"GET ', at_least=11)
    assert len(access_lines) > 10
    assert not [line for line in access_lines if "127.0.0.1" in line]
