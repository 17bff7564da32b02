"""A throw-away PostgreSQL cluster on a free loopback port, and fresh databases in it.

Debian's server binaries live in /usr/lib/postgresql/<version>/bin (``scripts/test``
installs the ``postgresql`` package when they are missing). The cluster's folder
is a temporary one; as root it is run as the ``postgres`` user (the server
refuses root). For tests durability is off (``fsync=off``): the cluster lives as
long as the test session. The benchmarks start theirs ``durable``, as a
production server runs, so that SQLite (which syncs every commit) is not
compared with a database that does not.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.support.net import free_port

USER = "pligt"
_databases = itertools.count(1)


class NoPostgres(RuntimeError):
    """No PostgreSQL server binaries here: ``scripts/test`` installs Debian's package."""


def server_binaries() -> Path:
    """Return the newest /usr/lib/postgresql/*/bin with initdb and pg_ctl."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        on_path = shutil.which("initdb")
        if on_path is None:
            raise NoPostgres("no PostgreSQL server binaries: apt-get install postgresql (scripts/test does)")
        return Path(on_path).resolve().parent
    return Path(found[-1]).parent


@dataclass
class Cluster:
    """A running cluster: its folder, port and the binaries that run it."""

    folder: Path
    port: int
    bin: Path
    #: fsync and synchronous commits on, as a production server runs (the benchmarks); off for tests.
    durable: bool = False
    #: The server's max_connections (a test of how many connections the server needs sets it low).
    max_connections: int = 300

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database; return its URL."""
        name = f"pligt_test_{os.getpid()}_{next(_databases)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self, mode: str = "immediate") -> None:
        _run_as_owner([str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", mode, "-w", "stop"])

    def start(self) -> None:
        """Start (again) on the same port."""
        data = self.folder / "data"
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c max_connections={self.max_connections}"
        )
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        _run_as_owner(
            [
                str(self.bin / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.folder / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def as_owner() -> list[str]:
    """The prefix that runs a command as the cluster's owner: ``postgres`` when we are root."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _run_as_owner(argv: list[str]) -> None:
    result = subprocess.run(as_owner() + argv, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


def start_cluster(*, durable: bool = False, max_connections: int = 300) -> Cluster:
    """Make and start a cluster in a new temporary folder on a free loopback port (``durable``: fsync on)."""
    binaries = server_binaries()
    folder = Path(tempfile.mkdtemp(prefix="pligt-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    _run_as_owner(
        [
            str(binaries / "initdb"),
            "-D",
            str(folder / "data"),
            "-U",
            USER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]
    )
    cluster = Cluster(folder, free_port(), binaries, durable, max_connections)
    cluster.start()
    return cluster
