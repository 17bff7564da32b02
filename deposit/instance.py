"""Creating an instance folder: config file, secret key, catalog, owner account."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

from archive.errors import Conflict

from . import build_archive
from .settings import Settings
from .settings import default_config_text


@dataclass(frozen=True)
class Initialised:
    """What ``pligt init`` made; the password exists nowhere else."""

    instance: str
    username: str
    password: str


def is_initialised(settings: Settings) -> bool:
    """Tell whether the instance has its secret and its owner."""
    return settings.secret_file.is_file() and build_archive(settings).has_owner()


def init_instance(settings: Settings) -> Initialised:
    """Create the instance's files and the owner account.

    :raises Conflict: if the instance was initialised before.
    """
    if settings.secret_file.is_file():
        raise Conflict(f"{settings.instance} is already initialised")
    make_folder(settings)
    archive = build_archive(settings)
    archive.catalog.migrate()
    archive.storage.check()
    username, password = archive.set_owner_password()
    archive.catalog.close()
    write_secret(settings)  # last: its presence marks a complete instance
    return Initialised(str(settings.instance), username, password)


def make_folder(settings: Settings) -> None:
    """Create the instance folder (owner-only) with a commented config file."""
    settings.instance.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.instance, 0o700)
    if not settings.config_file.exists():
        settings.config_file.write_text(default_config_text(settings), encoding="utf-8")


def write_secret(settings: Settings) -> None:
    """Create the instance's secret key (sessions, CSRF) unless it exists."""
    if settings.secret_file.exists():
        return
    fd = os.open(settings.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(32))
