"""A deployment: many publishers on one server, each a complete instance, each on its own host name.

A publisher IS what ``pligt init`` makes (config, secret key, catalog, storage,
signing key, owner), in ``DEPLOYMENT/publishers/<host name>/``; every per-publisher
thing (catalog, keys, caches, counters, sessions) follows from that by
construction. The folder's name is the publisher's host name, and its
``base_url`` is made from that name alone, so a request is routed by its host
name to exactly one folder, or to none: nothing else is consulted.

``DEPLOYMENT/deployment.toml`` holds the hosting choices (the scheme and port of
the publishers' addresses, how many publishers a worker keeps in memory) and,
in its ``[settings]`` table, the settings the server listens with and that
every publisher starts from (its own pligt.toml wins; its identity, the
``base_url``, ``catalog`` and ``storage``, is the deployment's to decide).

Nothing here imports Flask, click or gunicorn: the CLI and the server share it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import tomllib
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from pathlib import Path
from typing import Any

from pligt.core.errors import ConfigurationError
from pligt.core.errors import Conflict
from pligt.core.errors import InvalidInput
from pligt.core.errors import NotFound
from pligt.core.keeping.backup import BackupSummary
from pligt.core.keeping.backup import backup as make_backup
from pligt.core.models import PENDING
from pligt.instance import Initialised
from pligt.instance import build_archive
from pligt.instance import init_instance
from pligt.settings import CHECKPOINT_KEY_FILE
from pligt.settings import CONFIG_FILE
from pligt.settings import ENV_PREFIX
from pligt.settings import LATEST_CHECKPOINT_FILE
from pligt.settings import SECRET_FILE
from pligt.settings import Settings
from pligt.settings import default_config_text
from pligt.settings import load_settings

DEPLOYMENT_FILE = "deployment.toml"
PUBLISHERS = "publishers"
#: One empty file per suspended publisher, named by its host name (the host's, not the publisher's).
SUSPENDED = "suspended"
#: In a publisher's folder: the audit head at the backup it was handed (pligt publishers hand-over).
HANDED_OVER = "handed-over"
#: Settings that make a publisher who it is: set by the deployment, never inherited or taken from the environment.
IDENTITY = frozenset({"base_url", "catalog", "storage"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

#: One label of a host name (letters, digits, inner hyphens; at most 63).
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
#: A publisher's name: two labels or more, lower case, no trailing dot, not an IPv4 address.
_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
#: A Host header: a name (any case, as sent) and an optional port.
_HOST_HEADER = re.compile(r"([A-Za-z0-9.-]{1,253})(?::([0-9]{1,5}))?")


def publisher_name(text: str) -> str:
    """Return the publisher name for a host name given by the host (IDNA-encoded, lower case).

    :raises InvalidInput: for anything that is not a host name of two labels or more.
    """
    try:
        name = text.strip().encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidInput(f"{text!r} is not a host name") from None
    if len(name) > 253 or not _NAME.fullmatch(name) or name.replace(".", "").isdigit():
        raise InvalidInput(f"{text!r} is not a host name like deposit.example.dk (no port, no trailing dot)")
    return name


@dataclass(frozen=True)
class Deployment:
    """A deployment folder and its hosting choices."""

    folder: Path
    #: The scheme of every publisher's address.
    scheme: str = "https"
    #: The port of every publisher's address (0: the scheme's default); tests and proxies on other ports.
    public_port: int = 0
    #: Publishers whose web app one worker keeps built; the least recently used beyond go.
    apps_in_memory: int = 50
    #: Every publisher's catalog: "" a SQLite file in its folder; ``postgresql://…`` one database, a schema each.
    catalog: str = ""
    #: Every publisher's bytes: "" a folder in its folder; ``s3://bucket/prefix`` one bucket, a prefix each.
    storage: str = ""
    #: The ``[settings]`` every publisher starts from, and the server listens with.
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def publishers_folder(self) -> Path:
        return self.folder / PUBLISHERS

    def folder_of(self, name: str) -> Path:
        """Return the folder of the publisher ``name`` (a checked name: see :func:`publisher_name`)."""
        return self.publishers_folder / name

    def base_url(self, name: str) -> str:
        """Return the publisher's address: the deployment's scheme and port, the publisher's name."""
        port = f":{self.public_port}" if self.public_port else ""
        return f"{self.scheme}://{name}{port}"

    @property
    def port(self) -> int:
        """The port a request's Host names when it names none."""
        return self.public_port or _DEFAULT_PORTS[self.scheme]

    # -- routing ----------------------------------------------------------------------------

    def route(self, host: str | None) -> str | None:
        """Return the publisher a request's ``Host`` header names, or None.

        Exact: the name in any case, without a trailing dot, and the port of the
        publishers' address (written or implied by the scheme); the publisher must
        be a complete instance (its secret key is written last). A Host with
        anything else (two values, percent signs, an IP address) names no one.
        """
        if not host:
            return None
        match = _HOST_HEADER.fullmatch(host)
        if match is None:
            return None
        name, port = match.group(1).lower(), match.group(2)
        if (int(port) if port else self.port) != self.port or not _NAME.fullmatch(name):
            return None
        return name if self.is_publisher(name) else None

    def is_publisher(self, name: str) -> bool:
        """Tell whether ``name`` (a checked name) is a complete publisher of this deployment."""
        return (self.folder_of(name) / SECRET_FILE).is_file()

    def is_suspended(self, name: str) -> bool:
        return (self.folder / SUSPENDED / name).exists()

    def any_publisher(self) -> str | None:
        """Return one publisher's name (the first the folder lists), or None; reads no more of the folder."""
        if not self.publishers_folder.is_dir():
            return None
        with os.scandir(self.publishers_folder) as entries:
            return next((e.name for e in entries if _NAME.fullmatch(e.name) and self.is_publisher(e.name)), None)

    def names(self) -> list[str]:
        """Return the publishers' names, sorted."""
        if not self.publishers_folder.is_dir():
            return []
        return sorted(
            p.name for p in self.publishers_folder.iterdir() if _NAME.fullmatch(p.name) and self.is_publisher(p.name)
        )

    # -- settings ---------------------------------------------------------------------------

    def identity(self, name: str) -> dict[str, str]:
        """Return the settings that make ``name`` who it is: its address, its catalog, its storage."""
        catalog = ""
        if self.catalog:
            separator = "&" if "?" in self.catalog else "?"
            catalog = f"{self.catalog}{separator}options=-csearch_path%3D{schema_name(name)}"
        storage = f"{self.storage.rstrip('/')}/{name}" if self.storage else (self.folder_of(name) / "files").as_uri()
        return {"base_url": self.base_url(name), "catalog": catalog, "storage": storage}

    def publisher_settings(self, name: str, env: Mapping[str, str] | None = None) -> Settings:
        """Return the settings of the publisher ``name``: the deployment's, its own file's, then its identity.

        The environment's ``PLIGT_*`` variables reach every publisher, but never
        one of the identity settings (``PLIGT_BASE_URL`` would make every
        publisher the same one).
        """
        env = os.environ if env is None else env
        shared = {
            k: v for k, v in env.items() if k.startswith(ENV_PREFIX) and k[len(ENV_PREFIX) :].lower() not in IDENTITY
        }
        shared.pop("PLIGT_INSTANCE", None)
        return load_settings(self.folder_of(name), env=shared, overrides=self.identity(name), defaults=self.settings)

    def server_settings(self, overrides: Mapping[str, Any] | None = None) -> Settings:
        """Return the settings the server listens with (host, port, workers, threads, proxies)."""
        return load_settings(self.folder, overrides=overrides, defaults=self.settings)


def load_deployment(folder: str | os.PathLike[str]) -> Deployment:
    """Read ``DEPLOYMENT/deployment.toml`` (a missing file: every default).

    :raises ConfigurationError: naming the bad key.
    """
    folder = Path(folder).absolute()
    path = folder / DEPLOYMENT_FILE
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeError) as e:
            raise ConfigurationError(f"{path}: not valid TOML: {e}") from e
    elif not folder.is_dir():
        raise ConfigurationError(f"{folder} is no deployment folder (pligt publishers add makes one)")
    settings = data.pop("settings", {})
    known = {"scheme", "public_port", "apps_in_memory", "catalog", "storage"}
    unknown = set(data) - known
    if unknown or not isinstance(settings, dict):
        raise ConfigurationError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown)) or 'settings'} "
            f"(known: {', '.join(sorted(known))}, [settings])"
        )
    if IDENTITY & set(settings):
        raise ConfigurationError(
            f"{path}: [settings] cannot set {', '.join(sorted(IDENTITY & set(settings)))}: each publisher's own"
        )
    deployment = Deployment(folder, settings=settings, **data)
    if deployment.scheme not in _DEFAULT_PORTS:
        raise ConfigurationError(f"{path}: scheme must be http or https, not {deployment.scheme!r}")
    if not isinstance(deployment.public_port, int) or not 0 <= deployment.public_port <= 65535:
        raise ConfigurationError(f"{path}: public_port must be a port number (0: the scheme's default)")
    if not isinstance(deployment.apps_in_memory, int) or deployment.apps_in_memory < 1:
        raise ConfigurationError(f"{path}: apps_in_memory must be at least 1")
    if deployment.catalog and not deployment.catalog.startswith(("postgresql://", "postgres://")):
        raise ConfigurationError(f"{path}: catalog is empty (SQLite in each publisher's folder) or postgresql://…")
    if deployment.storage and not deployment.storage.startswith("s3://"):
        raise ConfigurationError(f"{path}: storage is empty (a folder per publisher) or s3://bucket/prefix")
    return deployment


def schema_name(name: str) -> str:
    """Return the PostgreSQL schema of the publisher ``name``: one to one, readable, within 63 characters.

    A name holds only letters, digits, dots and hyphens, so writing ``.`` as ``_d``
    and ``-`` as ``_h`` is reversible; a name too long for that gets a digest.
    """
    readable = "p_" + name.replace("-", "_h").replace(".", "_d")
    return readable if len(readable) <= 63 else "p_" + hashlib.sha256(name.encode()).hexdigest()[:40]


# -- the host's commands ----------------------------------------------------------------------


def add_publisher(deployment: Deployment, host: str, owner_email: str, site_name: str = "") -> tuple[str, Initialised]:
    """Make the publisher ``host``: a complete instance in its folder; return its name and owner password.

    :raises Conflict: if the deployment has that publisher already.
    :raises InvalidInput: for a name that is no host name.
    """
    name = publisher_name(host)
    if deployment.folder_of(name).exists():
        raise Conflict(f"{name} is a publisher of this deployment already")
    deployment.publishers_folder.mkdir(parents=True, exist_ok=True)
    os.chmod(deployment.folder, 0o700)
    if deployment.catalog:
        from pligt.core.catalog.postgresql import create_schema  # psycopg only for a PostgreSQL deployment

        create_schema(deployment.catalog, schema_name(name))
    chosen = {"owner_email": owner_email, "site_name": site_name or name}
    settings = load_settings(
        deployment.folder_of(name),
        env={},
        overrides={**chosen, **deployment.identity(name)},
        defaults=deployment.settings,
    )
    # Its address goes into its own pligt.toml too: the folder is an instance that runs on its own.
    return name, init_instance(settings, chosen=("base_url", *chosen))


@dataclass(frozen=True)
class PublisherSummary:
    """What ``pligt publishers list`` shows of one publisher (counts, never content)."""

    name: str
    base_url: str
    suspended: bool
    versions: int
    retained: int
    bytes: int
    pending_requests: int
    last_harvest: datetime | None

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "base_url": self.base_url,
            "suspended": self.suspended,
            "versions": self.versions,
            "retained": self.retained,
            "bytes": self.bytes,
            "pending_requests": self.pending_requests,
            "last_harvest": self.last_harvest.isoformat() if self.last_harvest else None,
        }


def summaries(deployment: Deployment) -> Iterator[PublisherSummary]:
    """Summarise every publisher, one at a time (each catalog is opened and closed in turn)."""
    for name in deployment.names():
        yield summary(deployment, name)


def summary(deployment: Deployment, name: str) -> PublisherSummary:
    settings = deployment.publisher_settings(name)
    archive = build_archive(settings)
    try:
        versions = archive.versions(include_withdrawn=True)
        now = archive.now()
        harvested = [
            e.at
            for row in archive.harvest(personal=False)
            for e in (row.fetched, row.complete, row.revisit)
            if e is not None
        ]
        return PublisherSummary(
            name=name,
            base_url=settings.base_url,
            suspended=deployment.is_suspended(name),
            versions=len(versions),
            retained=sum(1 for v in versions if not v.withdrawn and now < v.retain_until),
            bytes=sum(v.size for v in versions if not v.withdrawn),
            pending_requests=archive.catalog.count_requests(PENDING),
            last_harvest=max(harvested, default=None),
        )
    finally:
        archive.catalog.close()


def existing(deployment: Deployment, host: str) -> str:
    """Return the publisher name for ``host``; raise :class:`NotFound` if the deployment has none."""
    name = publisher_name(host)
    if not deployment.is_publisher(name):
        raise NotFound(f"{name} is not a publisher of this deployment")
    return name


def set_suspended(deployment: Deployment, host: str, suspended: bool) -> str:
    """Suspend (or resume) a publisher: its files stay served, its owner and its forms are refused."""
    name = existing(deployment, host)
    marker = deployment.folder / SUSPENDED / name
    if suspended:
        marker.parent.mkdir(exist_ok=True)
        marker.touch()
    else:
        marker.unlink(missing_ok=True)
    return name


def hand_over(deployment: Deployment, host: str, folder: Path) -> BackupSummary:
    """Back the publisher up into ``folder`` (``pligt restore`` makes it an instance of its own) and note it.

    The note holds the audit log's head at the backup: the publisher may be
    removed while versions are retained only as long as nothing changed since
    (its new server now keeps them, at the same URLs once DNS moves).
    """
    name = existing(deployment, host)
    settings = deployment.publisher_settings(name)
    archive = build_archive(settings)
    try:
        keys = {
            CHECKPOINT_KEY_FILE: settings.checkpoint_key_file,
            LATEST_CHECKPOINT_FILE: settings.latest_checkpoint_file,
        }
        made = make_backup(archive.catalog, archive.storage, folder, None, keys)
    finally:
        archive.catalog.close()
    # Its settings as in force here (the deployment's too), for its own server: the page it shows,
    # the realm its crawler credentials are filed under, its address. Not where this host kept it.
    chosen = [
        f.name
        for f in dataclasses.fields(Settings)
        if f.name not in ("instance", "catalog", "storage", "quota_bytes", "quota_versions")
        and "password" not in f.name
        and getattr(settings, f.name) != f.default
    ]
    (folder / CONFIG_FILE).write_text(default_config_text(settings, chosen), encoding="utf-8")
    (deployment.folder_of(name) / HANDED_OVER).write_text(made.audit_head + "\n", encoding="ascii")
    return made


def _handed_over_unchanged(deployment: Deployment, name: str) -> bool:
    """Tell whether the publisher was handed over and its audit log has not moved since."""
    try:
        noted = (deployment.folder_of(name) / HANDED_OVER).read_text(encoding="ascii").strip()
    except OSError:
        return False
    archive = build_archive(deployment.publisher_settings(name))
    try:
        return archive.audit_head()[1] == noted
    finally:
        archive.catalog.close()


def remove_publisher(deployment: Deployment, host: str) -> str:
    """Remove a publisher and everything of it.

    :raises Conflict: while any of its versions is retained (the crawler may still come for it),
        unless it was handed over (:func:`hand_over`) and nothing changed since.
    """
    name = existing(deployment, host)
    found = summary(deployment, name)
    if found.retained and not _handed_over_unchanged(deployment, name):
        raise Conflict(
            f"{name} has {found.retained} version(s) still retained: a publisher is removed only once "
            "nothing it published must stay online, or once it was handed over "
            "(pligt publishers hand-over) and nothing changed since"
        )
    if deployment.catalog:
        from pligt.core.catalog.postgresql import drop_schema

        drop_schema(deployment.catalog, schema_name(name))
    shutil.rmtree(deployment.folder_of(name))
    (deployment.folder / SUSPENDED / name).unlink(missing_ok=True)
    return name
