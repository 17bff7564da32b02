"""The app under test: an initialised instance, a clock the tests move, and the test client."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from pligt.instance import Initialised
from pligt.settings import Settings
from pligt.web import create_app


class Clock:
    """A clock the tests move forward; the archive asks it for 'now'."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@dataclass
class Instance:
    """An instance folder ``pligt init`` made, and its owner's one-time password."""

    settings: Settings
    owner: Initialised

    @property
    def path(self) -> Path:
        return self.settings.instance

    @property
    def owner_auth(self) -> tuple[str, str]:
        return (self.owner.username, self.owner.password)


class BufferedClient(FlaskClient):
    """The test client: an English-speaking browser that reads each response whole and
    closes it (as a WSGI server does). Tests of the Danish pages ask for Danish."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.environ_base.setdefault("HTTP_ACCEPT_LANGUAGE", "en")

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


def make_app(settings: Settings, clock: Clock) -> Flask:
    """Build the app for tests: testing mode, buffered test client."""
    app = create_app(settings, clock=clock)
    app.config["TESTING"] = True
    app.test_client_class = BufferedClient
    return app
