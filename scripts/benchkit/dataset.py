"""The data set: small text files, large files of random bytes, and Pligt instances holding them."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from pligt.core.deposits import version_facts
from pligt.core.retention import retain_until
from pligt.core.storage.local import LocalStorage
from pligt.instance import build_archive
from pligt.settings import load_settings

from .common import Failed
from .common import MiB
from .servers import init_instance

SMALL = 4096
#: Purely random bytes look like a DOS program to libmagic about 1 % of the time
#: (and would be refused); a plain start keeps them application/octet-stream.
HEADER = b"Pligt benchmark data, not a program.\n\x00\x01"
REQUEST_FIELDS = {
    "institution": "Det Kgl. Bibliotek",
    "contact_name": "Netarkivet Høstning",
    "contact_email": "netarkivet@example.dk",
    "legal_basis": "",
    "message": "Benchmark: access to the protected material.",
}


def small_body(i: int) -> bytes:
    """4 KiB of text, different for every file (so every digest differs)."""
    line = f"Pligt benchmark file {i:05d}: material subject to legal deposit.\n".encode()
    return (line * (SMALL // len(line) + 1))[:SMALL]


def small_name(i: int) -> str:
    """The file name of small file ``i``."""
    return f"f{i:05d}.txt"


def write_small(folder: Path, count: int) -> None:
    """Write ``count`` small files into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / small_name(i)).write_bytes(small_body(i))


def random_bytes(size: int) -> bytes:
    """``size`` random bytes behind :data:`HEADER`, which libmagic always calls data."""
    return (HEADER + os.urandom(max(0, size - len(HEADER))))[:size]


def write_random(path: Path, size: int) -> str:
    """Write ``size`` random bytes (behind :data:`HEADER`) to ``path``; return their SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    left = size
    with path.open("wb") as out:
        while left:
            chunk = random_bytes(min(4 * MiB, left)) if left == size else os.urandom(min(4 * MiB, left))
            digest.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


@dataclass
class Instance:
    """A Pligt instance of the benchmark: its folder, the owner's and a crawler's credentials."""

    path: Path
    owner: tuple[str, str]
    crawler: tuple[str, str]


def make_instance(path: Path, env: dict[str, str], count: int, catalog: str | None = None) -> Instance:
    """``pligt init``, then ``count`` protected items and a crawler credential, in-process.

    ``catalog``: the instance's catalog setting (written into its pligt.toml first), e.g. a
    PostgreSQL URL; None: the default SQLite file.

    The catalog rows and the stored files are written in one transaction,
    without libmagic or an fsync per file: :meth:`Archive.publish` takes about
    10 ms a file, which would add minutes for 10,000 items.
    """
    if catalog is not None:
        path.mkdir(parents=True)
        (path / "pligt.toml").write_text(f"catalog = {json.dumps(catalog)}\n", encoding="utf-8")
    owner = init_instance(path, env)
    archive = build_archive(load_settings(path, env={}))
    if not isinstance(archive.storage, LocalStorage):
        raise Failed(f"the benchmark writes its small files into local storage, not {archive.storage.url}")
    root = archive.storage.root
    now = archive.clock()
    until = retain_until(now, archive.retention_days)
    with archive.catalog.transaction():
        for i in range(count):
            body = small_body(i)
            slug = small_name(i).removesuffix(".txt")
            key = f"{slug}/{secrets.token_hex(12)}"
            target = root / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
            target.chmod(0o444)
            version = archive.catalog.add_version(
                slug=slug,
                title=f"Benchmark file {i}",
                visibility="protected",
                filename=small_name(i),
                size=len(body),
                sha256=hashlib.sha256(body).hexdigest(),
                content_type="text/plain; charset=utf-8",
                storage_key=key,
                published_at=now,
                retain_until=until,
            )
            archive.catalog.append_audit("version.published", version_facts(version), None, now)
    request = archive.access.file(dict(REQUEST_FIELDS))
    approval = archive.access.approve(request.id, valid_days=30)
    _, credential, password = archive.access.release(approval.release_token)
    return Instance(path, owner, (credential.username, password))
