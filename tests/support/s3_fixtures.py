"""Fixtures for S3 storage: a real S3 endpoint over HTTP on 127.0.0.1 (moto in server mode).

Loaded by ``tests/conftest.py`` (``pytest_plugins``); the helpers are in
``tests/support/s3.py``. Nothing here is autouse: each S3 test module asks for
``aws_env`` in an autouse fixture of its own, so fake credentials are set and no
request can leave the loopback interface.
"""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import Iterator

import pytest

from tests.support.s3 import FAKE_AWS_ENV
from tests.support.s3 import UNSET_AWS_ENV
from tests.support.s3 import Bucket
from tests.support.s3 import MakeBucket
from tests.support.s3 import MotoEndpoint
from tests.support.s3 import loopback_only
from tests.support.s3 import new_bucket


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[MotoEndpoint]:
    """One moto server for the whole session (buckets keep tests apart)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's access log
    endpoint = MotoEndpoint.start_new()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def stoppable_endpoint(moto_endpoint: MotoEndpoint) -> Iterator[MotoEndpoint]:
    """A second moto server, this test's own, to stop and start (same state as the first)."""
    endpoint = MotoEndpoint.start_new()
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
    for name in UNSET_AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(socket.socket, "connect", loopback_only(socket.socket.connect))


@pytest.fixture
def make_bucket(moto_endpoint: MotoEndpoint, aws_env: None) -> MakeBucket:
    """Make a fresh bucket (unique name) with the given region, versioning and Object Lock."""
    return functools.partial(new_bucket, moto_endpoint)


@pytest.fixture
def bucket(make_bucket: MakeBucket) -> Bucket:
    """A versioned, Object-Lock-enabled bucket in eu-north-1, new for each test."""
    return make_bucket()
