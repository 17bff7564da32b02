"""Caddy for a test: the Caddyfile `pligt deploy` wrote, with global options that keep it on loopback."""

from __future__ import annotations

from pathlib import Path


def local_caddyfile(generated: str, http_port: int, data: Path) -> str:
    """The generated Caddyfile with a test's global options: loopback ports, Caddy's own CA, no admin socket.

    And every log line Caddy can write (debug): none may hold a client address, whatever the level.
    """
    options = [
        "debug",
        "admin off",
        "default_bind 127.0.0.1",
        f"http_port {http_port}",
        "local_certs",
        "skip_install_trust",
        f"storage file_system {data}",
    ]
    assert generated.count("\n{\n") == 1
    return generated.replace("\n{\n", "\n{\n" + "".join(f"\t{line}\n" for line in options), 1)
