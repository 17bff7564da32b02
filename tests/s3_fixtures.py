"""Fixtures for S3 storage: a real S3 endpoint over HTTP on 127.0.0.1 (moto in server mode).

Loaded by ``tests/conftest.py`` (``pytest_plugins``). Nothing here is autouse:
each S3 test module asks for ``aws_env`` in an autouse fixture of its own, so
fake credentials are set and no request can leave the loopback interface.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import os
import socket
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import pytest

from archive.storage import S3Storage

REGION = "eu-north-1"
#: Fake credentials: boto3 finds them first in its chain, so no real ones are ever read.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
_names = itertools.count()


def _start_moto(port: int = 0) -> Any:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server


@dataclass
class MotoEndpoint:
    """A moto server on 127.0.0.1 that a test may stop and start again.

    Every moto server in this process shares moto's in-memory state, so a
    bucket made through one is there through another, and survives a stop,
    as a real provider keeps its data through an outage.
    """

    port: int
    _server: Any = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop listening: from now on every connection is refused."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def start(self) -> None:
        """Listen again on the same port."""
        if self._server is None:
            self._server = _start_moto(self.port)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[MotoEndpoint]:
    """One moto server for the whole session (buckets keep tests apart)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's access log
    server = _start_moto()
    endpoint = MotoEndpoint(server.get_host_and_port()[1], server)
    yield endpoint
    endpoint.stop()


@pytest.fixture
def stoppable_endpoint(moto_endpoint: MotoEndpoint) -> Iterator[MotoEndpoint]:
    """A second moto server, this test's own, to stop and start (same state as the first)."""
    server = _start_moto()
    endpoint = MotoEndpoint(server.get_host_and_port()[1], server)
    yield endpoint
    endpoint.stop()


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An endpoint that accepts connections and never answers: a hung S3."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # the kernel completes the handshakes; nobody ever reads
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake AWS credentials, and a test process that cannot connect beyond loopback.

    Child processes (``pligt serve``) inherit the credentials; their only
    endpoint is the moto server on 127.0.0.1, and the metadata service is off.
    """
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in _UNSET:
        monkeypatch.delenv(name, raising=False)
    connect = socket.socket.connect

    def loopback_only(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = host == "localhost"
            if not loopback:
                raise AssertionError(f"a test tried to connect to {address!r}: only 127.0.0.1 is allowed")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)


@dataclass
class Bucket:
    """A bucket on the moto server, with an admin client that bypasses Pligt."""

    name: str
    endpoint: str
    region: str
    client: Any

    def url(self, prefix: str = "pligt") -> str:
        return f"s3://{self.name}/{prefix}" if prefix else f"s3://{self.name}"

    def options(self, endpoint: str | None = None) -> dict[str, Any]:
        """The backend options for this bucket (``endpoint``: another server with the same state)."""
        return {"endpoint_url": endpoint or self.endpoint, "region": self.region, "addressing_style": "path"}

    def storage(self, prefix: str = "pligt", **overrides: Any) -> S3Storage:
        options = {**self.options(), **overrides}
        return S3Storage.from_url(self.url(prefix), **options)

    def settings_toml(self, prefix: str = "pligt", endpoint: str | None = None) -> str:
        """Lines for pligt.toml that point an instance at this bucket."""
        return (
            f'storage = "{self.url(prefix)}"\n'
            f's3_endpoint_url = "{endpoint or self.endpoint}"\n'
            f's3_region = "{self.region}"\n'
            's3_addressing_style = "path"\n'
        )

    def versions(self, key: str | None = None) -> list[dict[str, Any]]:
        """Every object version (and delete marker) in the bucket, or of one key."""
        found: list[dict[str, Any]] = []
        for page in self.client.get_paginator("list_object_versions").paginate(Bucket=self.name):
            found += page.get("Versions", []) + page.get("DeleteMarkers", [])
        return [v for v in found if key is None or v["Key"] == key]


MakeBucket = Callable[..., Bucket]


@pytest.fixture
def make_bucket(moto_endpoint: MotoEndpoint, aws_env: None) -> MakeBucket:
    """Make a fresh bucket (unique name) with the given region, versioning and Object Lock."""
    import boto3

    def make(region: str = REGION, *, versioning: bool = True, object_lock: bool = True) -> Bucket:
        name = f"pligt-{next(_names)}-{uuid.uuid4().hex[:12]}"
        client = boto3.session.Session().client("s3", endpoint_url=moto_endpoint.url, region_name=region)
        arguments: dict[str, Any] = {"Bucket": name}
        if region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
        if object_lock:
            arguments["ObjectLockEnabledForBucket"] = True  # turns versioning on with it
        client.create_bucket(**arguments)
        if versioning and not object_lock:
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return Bucket(name, moto_endpoint.url, region, client)

    return make


@pytest.fixture
def bucket(make_bucket: MakeBucket) -> Bucket:
    """A versioned, Object-Lock-enabled bucket in eu-north-1, new for each test."""
    return make_bucket()
