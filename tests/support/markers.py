"""A pytest plugin: mark each test by the resources it needs, so that ``-m`` can choose by them.

A test that uses one of the shared fixtures below (directly or through another fixture) gets that
resource's marker here; a test that starts the resource itself carries the marker in its module.
The markers are registered in pyproject.toml: ``server`` (a real ``pligt serve``), ``postgres``
(the throw-away PostgreSQL cluster, PgBouncer), ``s3`` (the moto server), ``browser`` (headless
Chromium) and ``external`` (a program from outside the venv: wget, faketime, OpenSSL's TSA, pywb,
py-wacz, Caddy, systemd-analyze). ``-m "not browser and not postgres"`` runs what needs neither.

A slow test (``-m slow``: a bare machine's set-up, a long fuzz run) gets an hour under
pytest-timeout, where every other test gets pyproject.toml's five minutes.
"""

from __future__ import annotations

import pytest

#: The shared fixtures (tests/conftest.py and the plugins beside this one) that start each resource.
RESOURCE_FIXTURES: dict[str, frozenset[str]] = {
    "server": frozenset({"server"}),
    "postgres": frozenset({"postgres", "postgres_url", "pg_instance", "pgbouncer", "pgbouncer_url"}),
    "s3": frozenset({"moto_endpoint", "stoppable_endpoint", "make_bucket", "bucket"}),
}


#: pytest-timeout's limit for a slow test (a bare machine's set-up, a long fuzz run), in seconds.
SLOW_TIMEOUT = 3600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") is not None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))
        # A fixture of the test's own module with a shared name (test_lookups' ``server``, an Archive)
        # stands in for the shared one: it says nothing of the resource.
        module = getattr(item, "module", None)
        used = {name for name in getattr(item, "fixturenames", ()) if not hasattr(module, name)}
        for marker, fixtures in RESOURCE_FIXTURES.items():
            if used & fixtures and item.get_closest_marker(marker) is None:
                item.add_marker(marker)
