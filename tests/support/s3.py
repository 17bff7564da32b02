"""A real S3 endpoint over HTTP on 127.0.0.1 (moto in server mode), buckets on it, fake credentials.

The fixtures that use these live in ``tests/support/s3_fixtures.py``.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from pligt.core.storage import S3Storage
from tests.support.net import ServerDidNotStart
from tests.support.net import answers

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
#: Variables that could point boto3 at real credentials or a real endpoint.
UNSET_AWS_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
_names = itertools.count()


def start_moto(port: int = 0) -> Any:
    """Start a moto server on 127.0.0.1 (``port`` 0: any free one); return it once it answers."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    if not answers(url, timeout=10):
        server.stop()
        raise ServerDidNotStart(f"moto did not answer {url}")
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

    @classmethod
    def start_new(cls) -> MotoEndpoint:
        server = start_moto()
        return cls(server.get_host_and_port()[1], server)

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
            self._server = start_moto(self.port)


def loopback_only(connect: Callable[[socket.socket, Any], None]) -> Callable[[socket.socket, Any], None]:
    """Wrap ``socket.connect`` so that any address beyond loopback fails the test."""

    def guarded(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = host == "localhost"
            if not loopback:
                raise AssertionError(f"a test tried to connect to {address!r}: only 127.0.0.1 is allowed")
        return connect(self, address)

    return guarded


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


def new_bucket(
    endpoint: MotoEndpoint, region: str = REGION, *, versioning: bool = True, object_lock: bool = True
) -> Bucket:
    """Make a bucket with a name no other test uses, with the given region, versioning and Object Lock."""
    import boto3

    name = f"pligt-{next(_names)}-{uuid.uuid4().hex[:12]}"
    client = boto3.session.Session().client("s3", endpoint_url=endpoint.url, region_name=region)
    arguments: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
    if object_lock:
        arguments["ObjectLockEnabledForBucket"] = True  # turns versioning on with it
    client.create_bucket(**arguments)
    if versioning and not object_lock:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return Bucket(name, endpoint.url, region, client)
