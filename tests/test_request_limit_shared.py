"""The request form's limit per client holds across the server's workers (it was per worker)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.support.access import REQUEST_FIELDS
from tests.support.app import Instance
from tests.support.servers import start_server
from tests.support.servers import stop_server

pytestmark = pytest.mark.server


def test_a_client_files_at_most_the_limit_whichever_worker_answers(instance: Instance, tmp_path: Path) -> None:
    server = start_server(
        instance.path, tmp_path / "server.log", "--workers", "2", env={"PLIGT_REQUESTS_PER_HOUR_PER_CLIENT": "3"}
    )
    try:
        statuses = []
        for _ in range(12):  # new connections: the kernel spreads them over both workers
            with requests.Session() as session:
                statuses.append(session.post(server.url + "/access/requests", json=REQUEST_FIELDS, timeout=10))
        codes = [r.status_code for r in statuses]
        assert codes.count(201) == 3, codes
        assert set(codes[3:]) == {429}, codes
        assert all(int(r.headers["Retry-After"]) > 0 for r in statuses[3:])
    finally:
        stop_server(server)
