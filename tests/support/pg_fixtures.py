"""Fixtures for the PostgreSQL catalog: one throw-away cluster per test session, a fresh database per test.

Loaded by ``tests/conftest.py`` (``pytest_plugins``); the helpers are in
``tests/support/postgres.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pligt.instance import init_instance
from pligt.settings import load_settings
from tests.support.app import Instance
from tests.support.pgbouncer import Bouncer
from tests.support.pgbouncer import start_bouncer
from tests.support.postgres import Cluster
from tests.support.postgres import start_cluster


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """A PostgreSQL cluster on a free port of 127.0.0.1 for the session, stopped and removed after it."""
    cluster = start_cluster()
    yield cluster
    cluster.remove()


@pytest.fixture(scope="session")
def pgbouncer(postgres: Cluster) -> Iterator[Bouncer]:
    """PgBouncer in transaction pooling in front of the session's cluster, 4 server connections per database."""
    bouncer = start_bouncer(postgres, pool_size=4)
    yield bouncer
    bouncer.stop()


@pytest.fixture
def pgbouncer_url(postgres: Cluster, pgbouncer: Bouncer) -> str:
    """The URL, through PgBouncer, of a new, empty database in the session's cluster."""
    return pgbouncer.url(postgres.new_database())


@pytest.fixture
def postgres_url(postgres: Cluster) -> str:
    """The URL of a new, empty database in the session's cluster."""
    return postgres.new_database()


@pytest.fixture
def pg_instance(tmp_path: Path, postgres_url: str) -> Instance:
    """An instance ``pligt init`` made with its catalog in a new PostgreSQL database (its config file names it)."""
    settings = load_settings(tmp_path / "instance", env={"PLIGT_CATALOG": postgres_url})
    return Instance(settings, init_instance(settings, chosen=("catalog",)))
