"""An instance folder: creating it (config file, secret key, catalog, owner account) and opening it."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import tempfile
from collections.abc import Collection
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pligt.core import Archive
from pligt.core import catalog as catalogs
from pligt.core import open_backend
from pligt.core.catalog import open_catalog
from pligt.core.errors import ConfigurationError
from pligt.core.errors import Conflict
from pligt.core.errors import NotInitialised
from pligt.core.models import Clock
from pligt.core.models import utcnow
from pligt.core.private import FOLDER_MODE
from pligt.core.private import write_private
from pligt.core.proof.checkpoints import Checkpoints
from pligt.core.proof.notes import Signer
from pligt.core.proof.notes import new_signer
from pligt.core.proof.notes import read_signer
from pligt.core.proof.notes import write_signer
from pligt.links import public_base
from pligt.settings import Settings
from pligt.settings import crawler_user_agents
from pligt.settings import default_config_text
from pligt.settings import load_settings
from pligt.settings import storage_options

#: A ``[table]`` line of pligt.toml: top-level settings come before the first.
_TABLE_LINE = re.compile(r"^\s*\[")


@dataclass(frozen=True)
class Initialised:
    """What ``pligt init`` made; the password exists nowhere else."""

    instance: str
    username: str
    password: str


def build_archive(settings: Settings, clock: Clock = utcnow, *, busy_timeout: float | None = None) -> Archive:
    """Open the catalog and storage an instance is configured with.

    :param busy_timeout: seconds a catalog write waits for another process's lock
        (default :data:`pligt.core.catalog.BUSY_TIMEOUT`; the web app's is shorter).
    """
    if busy_timeout is None:
        busy_timeout = catalogs.BUSY_TIMEOUT  # looked up now: tests shorten it
    archive = Archive(
        open_catalog(settings.catalog, settings.instance, busy_timeout=busy_timeout, key_store=settings.key_store),
        open_backend(settings.storage, **storage_options(settings)),
        retention_days=settings.retention_days,
        max_upload_bytes=settings.max_upload_bytes,
        fetch_budget_bytes=settings.fetch_budget_bytes,
        site_budget_bytes=settings.site_budget_bytes,
        crawler_user_agents=crawler_user_agents(settings),
        clock=clock,
        quota_bytes=settings.quota_bytes,
        quota_versions=settings.quota_versions,
    )
    archive.checkpoints = Checkpoints(
        archive.catalog,
        archive.clock,
        checkpoint_signer(settings),
        tsa_url=settings.tsa_url,
        tsa_roots_pem=tsa_roots(settings),
        latest_file=settings.latest_checkpoint_file,
    )
    archive.access.max_pending = settings.max_pending_requests
    archive.access.institution_domains = tuple(
        d.strip().lower().lstrip("@") for d in settings.institution_email_domains.split(",") if d.strip()
    )
    return archive


def checkpoint_signer(settings: Settings) -> Signer | None:
    """Return the key that signs the instance's checkpoints, made on first use; None before ``pligt init``.

    Its name, the log's origin, is the public address without its scheme
    (``pligt.example.dk``), as C2SP's checkpoints are named; it stays the
    name the key was made with.
    """
    path = settings.checkpoint_key_file
    if not path.is_file():
        if not settings.secret_file.is_file():
            return None  # not an instance (yet): `pligt init` makes the key
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            write_signer(new_signer(checkpoint_origin(settings)), path)
    return read_signer(path)


def checkpoint_origin(settings: Settings) -> str:
    """Return the origin line a new key names its checkpoints with: the public URL's host and path."""
    parts = urlsplit(public_base(settings))
    return parts.netloc + parts.path.rstrip("/")


def is_local_name(name: str) -> bool:
    """Tell whether a log name (``host[:port][/path]``) is an address no one outside this machine or network reaches."""
    host = urlsplit(f"//{name}").hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local or address.is_unspecified


def log_name_problem(settings: Settings, signer: Signer | None) -> str | None:
    """Say what is wrong with the name the checkpoint key (and so the audit log) carries; None if nothing.

    A first run without base_url names them after the loopback address it
    served on; checkpoints and receipts handed out later would carry that name.
    """
    if signer is None:
        return None
    wanted = checkpoint_origin(settings) if settings.base_url else None
    how = (
        "set base_url (pligt.toml) to the public address and run `pligt audit rename`"
        if wanted is None or is_local_name(wanted)
        else "run `pligt audit rename`"
    )
    if is_local_name(signer.name):
        return (
            f"the checkpoint key and the audit log are named {signer.name}, a local address the deposit institution "
            f"cannot check them against: {how}, possible until the first credential is issued"
        )
    if wanted is not None and wanted != signer.name:
        return (
            f"the checkpoint key and the audit log are named {signer.name}, but base_url says {wanted}: {how}, "
            "possible until the first credential is issued"
        )
    return None


def rename_log(settings: Settings, archive: Archive) -> tuple[str, str]:
    """Name the checkpoint key and the audit log after base_url, with a new key; return the old and new name.

    :raises ConfigurationError: without a public base_url.
    :raises Conflict: once a credential was issued, or when the name is right already.
    """
    if not settings.base_url or is_local_name(checkpoint_origin(settings)):
        raise ConfigurationError(
            "set base_url to the public address first (pligt.toml, or PLIGT_BASE_URL): the log is named after it"
        )
    old = archive.checkpoints.signer
    signer = new_signer(checkpoint_origin(settings))
    path = settings.checkpoint_key_file
    fresh = path.with_name(path.name + ".new")
    fresh.unlink(missing_ok=True)  # one a rename cut short left
    write_signer(signer, fresh)
    try:
        archive.rename_log(signer)
    except BaseException:
        fresh.unlink(missing_ok=True)
        raise
    os.replace(fresh, path)  # right after the entry that names it: a checkpoint needs both
    archive.checkpoints.write()
    return (old.name if old else ""), signer.name


def tsa_roots(settings: Settings) -> str:
    """Return the PEM text of the TSA's CA (``tsa_ca_file``), or "" without one.

    :raises ConfigurationError: naming the file when it cannot be read.
    """
    if not settings.tsa_ca_file:
        return ""
    try:
        return Path(settings.tsa_ca_file).read_text(encoding="ascii")
    except (OSError, UnicodeError) as e:
        raise ConfigurationError(f"tsa_ca_file {settings.tsa_ca_file}: {e}") from e


def require_initialised(settings: Settings) -> None:
    """Refuse an instance that ``pligt init`` has not completed (its secret key is written last).

    :raises NotInitialised: naming the folder and the command that makes it.
    """
    if not settings.secret_file.is_file():
        raise NotInitialised(settings.instance)


def open_instance(
    instance: Path | None, overrides: Mapping[str, Any] | None = None, *, upgrade: bool = False
) -> tuple[Settings, Archive]:
    """Load an initialised instance's settings and open its archive.

    :param instance: the folder; None means $PLIGT_INSTANCE, else ./instance.
    :param overrides: settings given on the command line (they win over file and environment).
    :param upgrade: bring an older catalog's schema up to date first (``pligt serve``);
        otherwise a catalog of another schema is refused.
    :raises NotInitialised: when ``pligt init`` has not made it.
    """
    settings = load_settings(instance, overrides=overrides)
    require_initialised(settings)
    archive = build_archive(settings)
    if upgrade:
        archive.catalog.migrate()
    archive.catalog.ping()
    return settings, archive


def is_initialised(settings: Settings) -> bool:
    """Tell whether the instance has its secret and its owner."""
    return settings.secret_file.is_file() and build_archive(settings).has_owner()


def init_instance(settings: Settings, chosen: Collection[str] = ()) -> Initialised:
    """Create the instance's files and the owner account.

    :param chosen: settings given on the command line, written into pligt.toml as they are.

    :raises Conflict: if the instance was initialised before.
    """
    if settings.secret_file.is_file():
        raise Conflict(f"{settings.instance} is already initialised")
    make_folder(settings, chosen)
    archive = build_archive(settings)
    archive.catalog.migrate()
    archive.storage.check()
    username, password = archive.set_owner_password()
    archive.catalog.close()
    write_signer(new_signer(checkpoint_origin(settings)), settings.checkpoint_key_file)
    write_secret(settings)  # last: its presence marks a complete instance
    return Initialised(str(settings.instance), username, password)


def make_folder(settings: Settings, chosen: Collection[str] = ()) -> None:
    """Create the instance folder (owner-only) with a commented config file (``chosen`` settings in force)."""
    settings.instance.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.instance, FOLDER_MODE)
    if not settings.config_file.exists():  # it may hold the SMTP password: owner-only too
        write_private(settings.config_file, default_config_text(settings, chosen).encode("utf-8"))


def write_secret(settings: Settings) -> None:
    """Create the instance's secret key (sessions, CSRF) unless it exists."""
    if settings.secret_file.exists():
        return
    write_private(settings.secret_file, secrets.token_bytes(32))


def switch_setting(settings: Settings, name: str, value: str | int) -> None:
    """Rewrite (or add) the ``name = "…"`` line of the instance's pligt.toml, atomically (the migrate commands)."""
    path = settings.config_file
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    line = f"{name} = {json.dumps(value)}"
    setting = re.compile(rf"^\s*{re.escape(name)}\s*=")  # not a commented one
    found = [i for i, text in enumerate(lines) if setting.match(text)]
    if found:
        lines[found[0]] = line
        for i in reversed(found[1:]):
            del lines[i]
    else:
        # A top-level key must come before the first [table], if there is one.
        tables = [i for i, text in enumerate(lines) if _TABLE_LINE.match(text)]
        lines.insert(tables[0] if tables else len(lines), line)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".pligt-", suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        os.chmod(temp, path.stat().st_mode & 0o777 if path.exists() else 0o600)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
