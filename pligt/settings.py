"""One settings object: defaults, then the instance's ``pligt.toml``, then ``PLIGT_*`` variables.

A bad value stops start-up with one line that names the setting and where it
came from.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Collection
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pligt.core.catalog import locate_catalog
from pligt.core.crawl_budget import FILE_BUDGET_BYTES
from pligt.core.crawl_budget import SITE_BUDGET_BYTES
from pligt.core.deposits import DEFAULT_CRAWLER_USER_AGENTS
from pligt.core.deposits import GiB
from pligt.core.errors import ConfigurationError
from pligt.core.errors import InvalidOption
from pligt.core.retention import MINIMUM_RETENTION_DAYS
from pligt.core.retention import check_retention_days
from pligt.core.storage import check_backend

CONFIG_FILE = "pligt.toml"
SECRET_FILE = "secret_key"  # noqa: S105 - a file name, not a secret
#: The instance's Ed25519 key that signs the audit log's checkpoints (owner-only, in the backup).
CHECKPOINT_KEY_FILE = "checkpoint_key"
#: A copy of the newest signed checkpoint, outside the catalog.
LATEST_CHECKPOINT_FILE = "checkpoint"
ENV_PREFIX = "PLIGT_"


@dataclass(frozen=True)
class Settings:
    """Everything an instance can be configured with; see the table in docs/operators.md."""

    instance: Path
    #: Where the bytes live: ``file:///path`` (default: ``<instance>/files``) or ``s3://bucket/prefix``.
    storage: str = ""
    #: The catalog: a SQLite file (a path, absolute or relative to the instance folder, or
    #: ``sqlite:///absolute/path``; default ``<instance>/catalog.sqlite3``) or a PostgreSQL
    #: database shared by several app servers (``postgresql://user@host:5432/database``).
    catalog: str = ""
    #: Where the keys of the personal data are (each access request's own; see docs/privacy.md):
    #: a SQLite file (default ``<instance>/personal_keys.sqlite3``, whatever the catalog) or, for
    #: several machines sharing a PostgreSQL catalog, ``postgresql://…`` of a database of its own.
    #: Never inside the catalog or its backups: destroying a key is what erases every copy.
    key_store: str = ""
    retention_days: int = MINIMUM_RETENTION_DAYS
    max_upload_bytes: int = 2 * GiB
    #: The most bytes (of versions not withdrawn) the instance may hold; 0: no limit. A host's quota (507 beyond).
    quota_bytes: int = 0
    #: The most versions (not withdrawn) the instance may hold; 0: no limit. A host's quota (507 beyond).
    quota_versions: int = 0
    #: Warn of a file larger than the deposit crawler fetches in one go (pligt/core/crawl_budget.py).
    fetch_budget_bytes: int = FILE_BUDGET_BYTES
    #: Warn when the retained versions add up to more than a harvest job fetches from one domain.
    site_budget_bytes: int = SITE_BUDGET_BYTES
    #: The HTTP Basic realm the crawler's credentials are stored under: keep it fixed.
    realm: str = "Pligt legal deposit"
    #: The publisher's name, shown on the pages.
    site_name: str = "Pligt"
    #: The canonical public URL (e.g. ``https://deposit.example.dk``), used in the
    #: sitemap and release pages; empty means "the host the request came to".
    base_url: str = ""
    #: How many proxies in front set X-Forwarded-Proto/-Host/-Port (0: none).
    trusted_proxies: int = 0
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    threads: int = 32
    #: How long a successful crawler password check is remembered (sliding, per worker).
    auth_cache_seconds: int = 300
    #: Failed password checks per client (counted in memory only) before its passwords are refused unchecked.
    auth_max_failures: int = 10
    #: How long a client must stay quiet after its last failure for its count to lapse (and refusal to end).
    auth_lockout_seconds: int = 300
    #: No new access requests while this many wait for a decision.
    max_pending_requests: int = 50
    #: Access requests one client may file per hour (counted in memory, never stored).
    requests_per_hour_per_client: int = 5
    #: SMTP for telling the owner of requests and the requester of releases; empty: no email.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_sender: str = ""
    #: Where the owner is told of new access requests.
    owner_email: str = ""
    #: S3 storage (``storage = "s3://bucket/prefix"``): the endpoint of an S3-compatible
    #: provider (empty: AWS), the region to sign for (empty: boto3's default chain) and
    #: how buckets are addressed. Credentials come from boto3's chain, never from here.
    s3_endpoint_url: str = ""
    s3_region: str = ""
    s3_addressing_style: str = "auto"
    #: GOVERNANCE (an account with the bypass permission can still delete) or COMPLIANCE (no one can).
    s3_object_lock_mode: str = "GOVERNANCE"
    #: Refuse a bucket without Object Lock (retention enforced by the storage itself).
    s3_require_object_lock: bool = True
    #: Comma-separated regions the bucket may be in: personal data stays in Scandinavia.
    allowed_regions: str = "eu-north-1"
    #: Comma-separated parts of a User-Agent (any case) that name the deposit crawler: an
    #: anonymous download by such a client is credited to it in the proof of deposit (weakly:
    #: anyone can send them). Only the part matched is stored. Empty: credit none this way.
    crawler_user_agents: str = ",".join(DEFAULT_CRAWLER_USER_AGENTS)
    #: Open connections one client address may hold per worker (0: no limit; behind trusted
    #: proxies every connection comes from the proxy, so the proxy limits clients instead).
    max_connections_per_client: int = 64
    #: Comma-separated email domains of the deposit institution: its access requests are
    #: taken even while max_pending_requests wait (still limited per client).
    institution_email_domains: str = "kb.dk"
    #: The RFC 3161 time-stamping authority each checkpoint of the audit log is sent to
    #: (``https://…``; a qualified TSA gives the time legal weight in the EU). Empty: none.
    tsa_url: str = ""
    #: A PEM file with the CA certificate(s) the TSA's certificate chains to: stamps are
    #: checked against it (and it goes into every receipt). Needed with ``tsa_url``.
    tsa_ca_file: str = ""

    @property
    def config_file(self) -> Path:
        return self.instance / CONFIG_FILE

    @property
    def secret_file(self) -> Path:
        return self.instance / SECRET_FILE

    @property
    def checkpoint_key_file(self) -> Path:
        return self.instance / CHECKPOINT_KEY_FILE

    @property
    def latest_checkpoint_file(self) -> Path:
        return self.instance / LATEST_CHECKPOINT_FILE


_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name != "instance"}


def resolve_instance(instance: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Path:
    """Return the instance folder: the argument, else ``PLIGT_INSTANCE``, else ``./instance``."""
    env = os.environ if env is None else env
    return Path(instance or env.get("PLIGT_INSTANCE") or "instance").absolute()


def load_settings(
    instance: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings for an instance.

    :param defaults: values in force before the file's (a deployment's settings for its publishers).
    :raises ConfigurationError: with one line naming the bad setting.
    """
    env = os.environ if env is None else env
    folder = resolve_instance(instance, env)
    values: dict[str, Any] = {key: _coerce(key, value, "deployment.toml") for key, value in (defaults or {}).items()}
    path = folder / CONFIG_FILE
    if path.is_file():
        try:
            with path.open("rb") as f:
                from_file = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ConfigurationError(f"{path}: not valid TOML: {e}") from e
        for key, value in from_file.items():
            values[key] = _coerce(key, value, str(path))
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == "PLIGT_INSTANCE":
            continue
        key = name[len(ENV_PREFIX) :].lower()
        values[key] = _coerce(key, value, f"environment variable {name}")
    for key, value in (overrides or {}).items():
        values[key] = _coerce(key, value, "command line")
    values.setdefault("storage", (folder / "files").as_uri())
    # A SQLite catalog is named by its absolute path from here on (never relative to the cwd);
    # an unknown scheme or a malformed URL stops start-up (InvalidOption names the setting).
    location = locate_catalog(values.get("catalog", ""), folder)
    values["catalog"] = str(location.path) if location.path is not None else location.url
    settings = Settings(instance=folder, **values)
    _validate(settings)
    return settings


def _coerce(key: str, value: Any, source: str) -> Any:
    field = _FIELDS.get(key)
    if field is None:
        raise ConfigurationError(f"{source}: unknown setting {key!r} (known: {', '.join(sorted(_FIELDS))})")
    kind = field.type
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigurationError(f"{source}: {key} must be true or false, not {value!r}")
    if kind == "int":
        if isinstance(value, bool):
            raise ConfigurationError(f"{source}: {key} must be a whole number, not {value!r}")
        try:
            return int(str(value).replace("_", ""))
        except ValueError:
            raise ConfigurationError(f"{source}: {key} must be a whole number, not {value!r}") from None
    if not isinstance(value, str):
        raise ConfigurationError(f"{source}: {key} must be a string, not {value!r}")
    return value


def storage_options(settings: Settings, url: str | None = None) -> dict[str, Any]:
    """Return the options the storage backend for ``url`` (default: the instance's) is opened with.

    Only ``s3://`` URLs take options; the ``s3_*`` settings may be filled in
    while the instance still stores locally, ready for ``pligt migrate-storage``.
    """
    url = settings.storage if url is None else url
    if urlsplit(url).scheme != "s3":
        return {}
    return {option: getattr(settings, name) for option, name in _S3_SETTINGS.items()}


#: The S3 backend's options, and the settings they come from.
_S3_SETTINGS = {
    "endpoint_url": "s3_endpoint_url",
    "region": "s3_region",
    "addressing_style": "s3_addressing_style",
    "object_lock_mode": "s3_object_lock_mode",
    "allowed_regions": "allowed_regions",
    "require_object_lock": "s3_require_object_lock",
}


#: A shorter part of a User-Agent would credit the deposit crawler with almost anyone's downloads.
MIN_CRAWLER_PATTERN = 6


def crawler_user_agents(settings: Settings) -> list[str]:
    """Return the listed parts of a crawler's User-Agent, without blanks."""
    return [part.strip() for part in settings.crawler_user_agents.split(",") if part.strip()]


def _validate(s: Settings) -> None:
    """Refuse settings the instance cannot run with, naming the setting (checked in this order)."""
    check_retention_days(s.retention_days)
    _check_storage(s)
    _check_limits(s)
    _check_realm(s)
    _check_mail(s)
    _check_crawler_patterns(s)
    _check_urls(s)


def _check_storage(s: Settings) -> None:
    """The backend checks its own URL and options; the message names the setting, not the option."""
    try:
        check_backend(s.storage, **storage_options(s))
    except InvalidOption as e:
        raise ConfigurationError(f"{_S3_SETTINGS.get(e.option, e.option)} {e.problem}") from None


#: Counts and sizes for which zero would stop the instance doing its work at all.
_AT_LEAST_ONE = (
    "max_upload_bytes",
    "fetch_budget_bytes",
    "site_budget_bytes",
    "port",
    "workers",
    "threads",
    "smtp_port",
    "auth_max_failures",
    "max_pending_requests",
    "requests_per_hour_per_client",
)


def _check_limits(s: Settings) -> None:
    for key in _AT_LEAST_ONE:
        if getattr(s, key) < 1:
            raise ConfigurationError(f"{key} must be at least 1, not {getattr(s, key)}")
    if not 0 <= s.trusted_proxies <= 5:
        raise ConfigurationError(f"trusted_proxies must be between 0 and 5, not {s.trusted_proxies}")
    for key in ("auth_cache_seconds", "quota_bytes", "quota_versions"):
        if getattr(s, key) < 0:
            raise ConfigurationError(f"{key} must not be negative")


def _check_realm(s: Settings) -> None:
    """The realm goes into ``WWW-Authenticate`` as a quoted string, and the crawler skips an empty one."""
    if not s.realm or not s.realm.isascii() or '"' in s.realm or "\\" in s.realm:
        raise ConfigurationError(f"realm {s.realm!r} must be non-empty ASCII without quotes or backslashes")


def _check_mail(s: Settings) -> None:
    if s.smtp_host and not (s.smtp_sender and "@" in s.smtp_sender):
        raise ConfigurationError("smtp_sender must be an email address when smtp_host is set")
    if s.owner_email and "@" not in s.owner_email:
        raise ConfigurationError(f"owner_email {s.owner_email!r} is not an email address")


def _check_crawler_patterns(s: Settings) -> None:
    for pattern in crawler_user_agents(s):
        if len(pattern) < MIN_CRAWLER_PATTERN:
            raise ConfigurationError(
                f"crawler_user_agents: {pattern!r} is shorter than {MIN_CRAWLER_PATTERN} characters; "
                "it would credit the deposit crawler with almost anyone's downloads"
            )


def _check_urls(s: Settings) -> None:
    """The time-stamp authority's URL needs its CA to be checkable; the base URL is a host, no path."""
    if s.tsa_url:
        if urlsplit(s.tsa_url).scheme not in ("http", "https") or not urlsplit(s.tsa_url).netloc:
            raise ConfigurationError(f"tsa_url {s.tsa_url!r} must look like https://host/path")
        if not s.tsa_ca_file:
            raise ConfigurationError("tsa_ca_file must name the PEM file of the TSA's CA when tsa_url is set")
    if s.base_url:
        parts = urlsplit(s.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ConfigurationError(f"base_url {s.base_url!r} must look like https://host[:port]")


def default_config_text(settings: Settings, chosen: Collection[str] = ()) -> str:
    """Return the commented config file that ``pligt init`` writes; the ``chosen`` settings are in force."""
    lines = [
        "# Pligt instance configuration. Every setting is optional; PLIGT_<NAME> environment",
        "# variables override what is here. See docs/operators.md for what each one does.",
        "",
    ]
    for name, field in _FIELDS.items():
        value = getattr(settings, name)
        if name.endswith("password"):
            value = ""
        shown = f'"{value}"' if field.type == "str" else str(value).lower() if field.type == "bool" else str(value)
        if name in chosen:  # JSON's string escapes are TOML's
            lines.append(f"{name} = {json.dumps(value) if field.type == 'str' else shown}")
        else:
            lines.append(f"# {name} = {shown}")
    return "\n".join(lines) + "\n"
