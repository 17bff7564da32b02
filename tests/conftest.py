"""Shared fixtures: an initialised instance, the app on it, a clock tests control, a real
`pligt serve` process and an SMTP server. The helpers they use are in ``tests/support/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from pligt.core import Archive
from pligt.instance import init_instance
from pligt.settings import load_settings
from pligt.web.services import pligt
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.app import make_app
from tests.support.mail import Mailbox
from tests.support.mail import receiving_mail
from tests.support.servers import Server
from tests.support.servers import start_server
from tests.support.servers import stop_server

pytest_plugins = ["tests.support.s3_fixtures", "tests.support.pg_fixtures", "tests.support.browser_plugin"]


@pytest.fixture
def instance(tmp_path: Path) -> Instance:
    settings = load_settings(tmp_path / "instance", env={})
    return Instance(settings, init_instance(settings))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(instance: Instance, clock: Clock) -> Iterator[Flask]:
    made = make_app(instance.settings, clock)
    yield made
    with made.app_context():  # the checkpoint its changes left for the background, before the folder goes
        pligt().archive.checkpoints.wait()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def archive(app: Flask) -> Archive:
    with app.app_context():
        return pligt().archive


@pytest.fixture
def server(instance: Instance, tmp_path: Path) -> Iterator[Server]:
    running = start_server(instance.path, tmp_path / "server.log")
    yield running
    stop_server(running)


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """Start an SMTP server on 127.0.0.1; yield its mailbox and port."""
    with receiving_mail() as running:
        yield running
