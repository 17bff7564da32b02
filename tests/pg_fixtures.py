"""Fixtures for the PostgreSQL catalog: one throw-away cluster per test session, a fresh database per test.

Loaded by ``tests/conftest.py`` (``pytest_plugins``); the helpers are in
``tests/support/postgres.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import Cluster
from tests.support.postgres import start_cluster


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """A PostgreSQL cluster on a free port of 127.0.0.1 for the session, stopped and removed after it."""
    cluster = start_cluster()
    yield cluster
    cluster.remove()


@pytest.fixture
def postgres_url(postgres: Cluster) -> str:
    """The URL of a new, empty database in the session's cluster."""
    return postgres.new_database()
