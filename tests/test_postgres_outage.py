"""A server whose PostgreSQL catalog goes away answers 503 with Retry-After, never a traceback, and recovers.

The cluster here is this module's own (the session's serves the other tests):
it is stopped under a running ``pligt serve`` and started again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from deposit.instance import build_archive
from deposit.instance import init_instance
from deposit.settings import load_settings
from tests.support.access import REQUEST_FIELDS
from tests.support.data import pdf_bytes
from tests.support.postgres import Cluster
from tests.support.postgres import start_cluster
from tests.support.servers import start_server
from tests.support.servers import stop_server


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[Cluster]:
    cluster = start_cluster()
    yield cluster
    cluster.remove()


def test_the_catalog_going_away_is_503_with_retry_after_and_the_server_recovers(
    own_cluster: Cluster, tmp_path: Path
) -> None:
    url = own_cluster.new_database()
    settings = load_settings(tmp_path / "instance", env={"PLIGT_CATALOG": url})
    init_instance(settings, chosen=("catalog",))
    archive = build_archive(settings)
    archive.publish([pdf_bytes("brochure")], filename="brochure.pdf", visibility="public")
    archive.catalog.close()
    server = start_server(settings.instance, tmp_path / "server.log", "--workers", "1", "--threads", "4")
    path = server.url + "/files/brochure/v1/brochure.pdf"
    try:
        assert requests.get(path, timeout=30).status_code == 200
        own_cluster.stop("fast")
        try:
            for refused in (
                requests.get(path, timeout=60),
                requests.get(server.url + "/", timeout=60),
                requests.post(server.url + "/access/requests", json=REQUEST_FIELDS, timeout=60),
            ):
                assert refused.status_code == 503, (refused.url, refused.status_code, refused.text[:300])
                assert int(refused.headers["Retry-After"]) > 0
                assert "cannot reach the catalog" in refused.text
        finally:
            own_cluster.start()
        deadline = time.monotonic() + 60
        while (status := requests.get(path, timeout=30).status_code) != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert status == 200
        assert requests.get(server.url + "/healthz", timeout=30).status_code == 200
    finally:
        stop_server(server)
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
