"""The server log never holds what would let its reader act as someone else: release-link tokens."""

from __future__ import annotations

import requests

from pligt.instance import build_archive
from tests.support.access import REQUEST_FIELDS
from tests.support.app import Instance
from tests.support.servers import Server


def test_a_release_links_token_stays_out_of_the_access_log(instance: Instance, server: Server) -> None:
    archive = build_archive(instance.settings)
    request = archive.access.file(dict(REQUEST_FIELDS))
    token = archive.access.approve(request.id).release_token
    page = requests.get(f"{server.url}/access/release/{token}?lang=en", timeout=10)
    assert page.status_code == 200
    requests.get(f"{server.url}/access/release/{'x' * 43}", timeout=10)
    lines = server.log_lines("/access/release/", at_least=2)
    assert len(lines) == 2, lines
    assert all(token not in line and "x" * 43 not in line for line in lines), lines
    assert any("/access/release/[token]?lang=en" in line for line in lines), lines
    assert archive.access.check_release(token)  # viewing the page did not spend it
