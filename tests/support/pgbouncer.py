"""PgBouncer in front of a throw-away PostgreSQL cluster, in transaction pooling, on a free loopback port.

Hosts that run several app servers often put a pooler between them and the
database. In transaction pooling each transaction (each statement, outside
one) may run on another server connection, so nothing a client sets up on "its"
connection (a prepared statement, a session setting) can be relied on.
``scripts/test`` installs Debian's ``pgbouncer``; it refuses to run as root, so
as root it runs as the ``postgres`` user, as the cluster does.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port
from tests.support.postgres import USER
from tests.support.postgres import Cluster
from tests.support.postgres import as_owner


class NoPgBouncer(RuntimeError):
    """No pgbouncer binary here: ``scripts/test`` installs Debian's package."""


@dataclass
class Bouncer:
    """A running PgBouncer: its folder, port and process."""

    folder: Path
    port: int
    process: subprocess.Popen[bytes]

    def url(self, database_url: str) -> str:
        """The URL of the cluster's database ``database_url``, through the pooler."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database_url.rsplit('/', 1)[1]}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_bouncer(cluster: Cluster, pool_size: int) -> Bouncer:
    """Start PgBouncer, transaction pooling, at most ``pool_size`` server connections per database."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        raise NoPgBouncer("no pgbouncer: apt-get install pgbouncer (scripts/test does)")
    folder = Path(tempfile.mkdtemp(prefix="pligt-pgbouncer-"))
    port = free_port()
    (folder / "users.txt").write_text(f'"{USER}" ""\n', encoding="utf-8")
    (folder / "pgbouncer.ini").write_text(
        "\n".join(
            [
                "[databases]",
                f"* = host=127.0.0.1 port={cluster.port}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {folder / 'users.txt'}",
                "pool_mode = transaction",
                f"default_pool_size = {pool_size}",
                "max_client_conn = 1000",
                f"logfile = {folder / 'pgbouncer.log'}",
                "",
            ]
        ),
        encoding="utf-8",
    )
    for path in (folder, *folder.iterdir()):
        if as_owner():
            shutil.chown(path, "postgres", "postgres")
    # Its log is the file (runuser's own words on SIGTERM are not worth reading).
    process = subprocess.Popen([*as_owner(), binary, "-q", str(folder / "pgbouncer.ini")], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return Bouncer(folder, port, process)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                log = folder / "pgbouncer.log"
                text = log.read_text(errors="replace") if log.exists() else ""
                process.kill()
                raise RuntimeError(f"pgbouncer did not start:\n{text}") from None
            time.sleep(0.1)
