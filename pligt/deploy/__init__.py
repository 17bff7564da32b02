"""What ``pligt deploy`` writes on a Debian or Ubuntu machine, decided without touching it.

:func:`render` turns a :class:`Plan` (the public address, the service user, the
folders, the upload limit) into every file of a deployment: the hardened
systemd service that runs ``pligt serve`` on loopback, one service and timer
per scheduled job, Caddy's configuration (HTTPS with automatic certificates,
one canonical host, no access log) and a ``pligt`` wrapper for the
administrator. It reads no file and runs nothing, so tests check its output
(``systemd-analyze verify``, a real Caddy) and the command only writes it.
The templates are package data in ``templates/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from pligt.core.errors import ConfigurationError

#: Placeholders in the templates: ``@NAME@``.
_PLACEHOLDER = re.compile(r"@([A-Z_]+)@")

SYSTEMD_DIR = PurePosixPath("/etc/systemd/system")
CADDYFILE = PurePosixPath("/etc/caddy/Caddyfile")
WRAPPER = PurePosixPath("/usr/local/bin/pligt")


@dataclass(frozen=True)
class Job:
    """A scheduled job: a oneshot service and the timer that starts it."""

    name: str
    #: What it does, for the unit's description.
    why: str
    #: systemd's OnCalendar= (see systemd.time(7)).
    when: str
    #: The ``pligt`` arguments, or a whole shell command line when ``through_sh`` is set.
    command: str
    through_sh: bool = False
    jitter: str = "5min"


@dataclass(frozen=True)
class Plan:
    """Everything a deployment's files depend on."""

    #: The public address, ``https://host`` (a port only where the machine's 443 is not used).
    base_url: str
    #: The largest upload the instance takes (its ``max_upload_bytes``): Caddy's body limit.
    max_upload_bytes: int
    user: str = "pligt"
    #: The service user's home: the instance and its backups, nothing else writable.
    state_dir: PurePosixPath = PurePosixPath("/var/lib/pligt")
    #: The clone Pligt runs from, with its ``.venv``.
    app_dir: PurePosixPath = PurePosixPath("/opt/pligt")
    #: Where ``pligt serve`` listens, on loopback (Caddy proxies to it).
    port: int = 8000
    #: Days a nightly backup is kept on the machine (backups hold personal data).
    keep_backups_days: int = 7

    @property
    def instance(self) -> PurePosixPath:
        return self.state_dir / "instance"

    @property
    def backups(self) -> PurePosixPath:
        return self.state_dir / "backups"

    @property
    def key_backups(self) -> PurePosixPath:
        """Where the nightly key backups go: a folder of their own, never the catalog backups'."""
        return self.state_dir / "key-backups"

    @property
    def pligt(self) -> PurePosixPath:
        return self.app_dir / ".venv" / "bin" / "pligt"


@dataclass(frozen=True)
class File:
    """A file to write: where (absolute, on the target machine), its text and its mode."""

    path: PurePosixPath
    text: str
    mode: int = 0o644


def jobs(plan: Plan) -> list[Job]:
    """Return the scheduled jobs (``scripts/cron.example`` for machines without systemd)."""
    backup = (
        f"{plan.pligt} backup {plan.backups}/pligt-$$(date +%%Y-%%m-%%dT%%H%%M%%S)"
        f" && find {plan.backups} -mindepth 1 -maxdepth 1 -type d -mtime +{plan.keep_backups_days}"
        " -exec rm -rf {} +"
    )
    return [
        Job(
            "pligt-purge",
            "erase personal data past its schedule (requests, download records, release links)",
            "*-*-* 03:17:00",
            "purge",
        ),
        Job(
            "pligt-fixity",
            "re-read every stored byte, compare with the catalog, remove what killed uploads left",
            "Sun *-*-* 04:41:00",
            "fixity --repair",
            jitter="30min",
        ),
        Job(
            "pligt-backup",
            f"a consistent backup into {plan.backups}, kept {plan.keep_backups_days} days",
            "*-*-* 02:05:00",
            backup,
            through_sh=True,
        ),
        Job(
            "pligt-keys-backup",
            f"the keys of the personal data into {plan.key_backups} (key backups older than 7 days deleted)",
            "*-*-* 02:07:00",
            f"keys backup {plan.key_backups}",
        ),
        Job(
            "pligt-audit-stamp",
            "record the crawler's fetches in the audit log and sign (and time-stamp) a checkpoint",
            "*:0/10",
            "audit stamp",
            jitter="1min",
        ),
    ]


def check_base_url(base_url: str) -> str:
    """Return the canonical ``https://host[:port]`` of ``base_url``.

    :raises ConfigurationError: for anything but an https URL with a host name and no path.
    """
    parts = urlsplit(base_url.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigurationError(f"--base-url must be https://HOST (the name the crawler reaches), not {base_url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigurationError(f"--base-url is a host name only (https://{parts.netloc}), not {base_url!r}")
    try:
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError as e:
        raise ConfigurationError(f"--base-url {base_url!r}: {e}") from None
    return f"https://{parts.netloc.lower()}"


def render(plan: Plan) -> list[File]:
    """Return every file of a deployment."""
    base_url = check_base_url(plan.base_url)
    values = {
        "BASE_URL": base_url,
        "USER": plan.user,
        "INSTANCE": str(plan.instance),
        "STATE_DIR": str(plan.state_dir),
        "PLIGT": str(plan.pligt),
    }
    hardening = _fill(_template("hardening.conf"), values)
    values["HARDENING"] = hardening
    files = [
        File(SYSTEMD_DIR / "pligt.service", _fill(_template("pligt.service"), values)),
        File(CADDYFILE, caddyfile(plan)),
        File(WRAPPER, _fill(_template("pligt.sh"), values), 0o755),
    ]
    for job in jobs(plan):
        command = f"/bin/sh -c '{job.command}'" if job.through_sh else f"{plan.pligt} {job.command}"
        unit = {**values, "NAME": job.name, "WHY": job.why, "WHEN": job.when, "JITTER": job.jitter, "COMMAND": command}
        files.append(File(SYSTEMD_DIR / f"{job.name}.service", _fill(_template("job.service"), unit)))
        files.append(File(SYSTEMD_DIR / f"{job.name}.timer", _fill(_template("job.timer"), unit)))
    return files


def caddyfile(plan: Plan) -> str:
    """Return Caddy's configuration: HTTPS on the canonical host only, proxied to ``pligt serve``.

    Caddy's global options come first (a test adds its own ports and CA there).
    """
    base_url = check_base_url(plan.base_url)
    return _fill(
        _template("Caddyfile"),
        {
            "BASE_URL": base_url,
            "SITE": base_url,
            "HTTP_SITE": f"http://{urlsplit(base_url).hostname}",
            "MAX_BODY": str(plan.max_upload_bytes),
            "UPSTREAM": f"127.0.0.1:{plan.port}",
        },
    )


def unit_names(plan: Plan) -> list[str]:
    """Return the units to enable: the service and every job's timer."""
    return ["pligt.service", *(f"{job.name}.timer" for job in jobs(plan))]


def _template(name: str) -> str:
    return resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")


def _fill(template: str, values: dict[str, str]) -> str:
    """Replace every ``@NAME@``; a placeholder without a value is a bug here, not a blank."""

    def value(match: re.Match[str]) -> str:
        return values[match.group(1)]

    return _PLACEHOLDER.sub(value, template)


def hosting_caddyfile(
    upstream_port: int, max_upload_bytes: int, *, site: str = "https://", http_site: str = "http://"
) -> str:
    """Return Caddy's configuration for a deployment of many publishers: on-demand HTTPS for each one's name.

    :param upstream_port: where ``pligt serve --deployment`` listens on loopback; Caddy asks it too.
    :param site: the addresses served over HTTPS (every name; a test gives its own port).
    """
    upstream = f"127.0.0.1:{upstream_port}"
    return _fill(
        _template("Caddyfile.hosting"),
        {
            "SITE": site,
            "HTTP_SITE": http_site,
            "ASK": f"http://{upstream}/_pligt/ask",
            "MAX_BODY": str(max_upload_bytes),
            "UPSTREAM": upstream,
        },
    )
