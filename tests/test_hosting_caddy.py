"""HTTPS for every publisher's name, on demand: a real Caddy (its local CA, loopback) asks Pligt which names are whose.

Two publishers' names and one stranger's resolve to 127.0.0.1 for curl
(``--resolve``); the TLS handshake names each (SNI). Caddy gets a certificate
for a publisher's name on its first connection, and none for a name Pligt does
not know: adding a publisher while both run needs no change to Caddy.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from pligt.deploy import hosting_caddyfile
from tests.support.caddy import local_caddyfile
from tests.support.cli import invoke
from tests.support.hosting import make_deployment
from tests.support.hosting import serve
from tests.support.hosting import stop
from tests.support.net import free_port
from tests.support.net import start_process
from tests.support.net import stop_process

pytestmark = pytest.mark.external

needs_caddy = pytest.mark.skipif(shutil.which("caddy") is None, reason="apt-get install caddy")


def curl(url: str, name: str, port: int, ca: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``curl`` to ``url`` with ``name`` resolved to 127.0.0.1 (the TLS handshake names it); prints the status."""
    return subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--resolve", f"{name}:{port}:127.0.0.1"]
        + ["--cacert", str(ca), "--max-time", "30", *extra, url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def wait_until_listening(port: int, timeout: float = 30) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port`` (Caddy's https port)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@needs_caddy
def test_caddy_gets_certificates_for_publishers_names_only(tmp_path: Path) -> None:
    https_port, http_port, upstream = free_port(), free_port(), free_port()
    hosted = make_deployment(
        tmp_path / "deployment",
        "a.example",
        "b.example",
        text=f'scheme = "https"\npublic_port = {https_port}\n[settings]\ntrusted_proxies = 1\n',
    )
    printed = invoke("publishers", "caddyfile", "--deployment", str(hosted.folder), "--port", str(upstream))
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == hosting_caddyfile(upstream, 2 * 1024**3)
    assert f"ask http://127.0.0.1:{upstream}/_pligt/ask" in printed.stdout
    data, home = tmp_path / "caddy-data", tmp_path / "home"
    home.mkdir()
    caddyfile = tmp_path / "Caddyfile"
    site = hosting_caddyfile(upstream, 1_000_000, site=f"https://:{https_port}")
    caddyfile.write_text(local_caddyfile(site, http_port, data))
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "XDG_DATA_HOME": str(home), "XDG_CONFIG_HOME": str(home)}
    serve(hosted, tmp_path / "pligt.log", port=upstream)
    try:
        caddy = start_process(
            ["caddy", "run", "--adapter", "caddyfile", "--config", str(caddyfile)],
            tmp_path / "caddy.log",
            f"{hosted.url}/healthz",  # Pligt answers already; Caddy is waited for below
            env=env,
        )
    except BaseException:
        stop(hosted)
        raise
    try:
        wait_until_listening(https_port)
        ca = data / "pki/authorities/local/root.crt"
        for name in ("a.example", "b.example"):
            answer = curl(f"https://{name}:{https_port}/", name, https_port, ca)
            assert answer.stdout == "200", answer.stderr
            page = subprocess.run(
                ["curl", "-sS", "--resolve", f"{name}:{https_port}:127.0.0.1", "--cacert", str(ca)]
                + [f"https://{name}:{https_port}/"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert f"<title>{name}</title>" in page.stdout
        # A name that is no publisher's gets no certificate: the handshake fails, nothing is answered.
        stranger = curl(f"https://c.example:{https_port}/", "c.example", https_port, ca)
        assert stranger.stdout == "000" and stranger.returncode != 0
        # Added while both run: served over HTTPS at once.
        hosted.add("c.example")
        assert curl(f"https://c.example:{https_port}/", "c.example", https_port, ca).stdout == "200"
        # A connection made for one name asks for no other's pages (the handshake's name and Host agree).
        crossed = curl(
            f"https://a.example:{https_port}/", "a.example", https_port, ca, "-H", f"Host: b.example:{https_port}"
        )
        assert crossed.stdout == "421", crossed
    finally:
        stop_process(caddy)
        stop(hosted)
    issued = {p.name for p in data.rglob("*.crt") if "certificates" in p.parts}
    assert issued == {"a.example.crt", "b.example.crt", "c.example.crt"}
