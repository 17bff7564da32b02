"""Serving on every address needs base_url: no absolute URL may follow a client's Host header."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests

from tests.support.app import Instance
from tests.support.cli import PLIGT
from tests.support.net import free_port
from tests.support.servers import start_server
from tests.support.servers import stop_server

pytestmark = pytest.mark.server


def test_serving_on_every_address_without_base_url_is_refused(instance: Instance) -> None:
    result = subprocess.run(
        # Refused before anything binds: no socket is opened on every address.
        [PLIGT, "serve", "--instance", str(instance.path), "--host", "0.0.0.0", "--port", str(free_port())],  # noqa: S104
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 7, result.stderr
    assert "needs base_url" in result.stderr and result.stderr.count("\n") == 1


def test_with_base_url_a_forged_host_is_never_echoed(instance: Instance, tmp_path: Path) -> None:
    port = free_port()
    public = "https://deposit.example.dk"
    server = start_server(instance.path, tmp_path / "server.log", "--base-url", public, port=port)
    try:
        forged = {"Host": "evil.example"}
        robots = requests.get(server.url + "/robots.txt", headers=forged, timeout=10).text
        sitemap = requests.get(server.url + "/sitemap.xml", headers=forged, timeout=10).text
        assert "evil.example" not in robots + sitemap
        assert f"Sitemap: {public}/sitemap.xml" in robots
    finally:
        stop_server(server)
