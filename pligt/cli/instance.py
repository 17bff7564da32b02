"""``pligt init`` and ``pligt serve``: make an instance, and serve it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from pligt.cli.common import instance_option
from pligt.cli.common import json_option
from pligt.cli.common import print_json
from pligt.core.deposits import OWNER_USERNAME
from pligt.core.errors import ConfigurationError
from pligt.core.errors import InvalidInput
from pligt.core.errors import StorageError
from pligt.core.storage import Storage
from pligt.instance import init_instance
from pligt.instance import is_initialised
from pligt.instance import open_instance
from pligt.links import SERVED_AT
from pligt.links import WILDCARD_HOSTS
from pligt.links import listening_base
from pligt.links import served_settings
from pligt.settings import Settings
from pligt.settings import load_settings


@click.command()
@instance_option
@json_option
@click.option("--exist-ok", is_flag=True, help="Do nothing (and succeed) if the instance exists.")
@click.option(
    "--base-url",
    help="The public address the crawler reaches the server at (https://host[:port]), written into pligt.toml.",
)
def init(instance: Path | None, as_json: bool, exist_ok: bool, base_url: str | None) -> None:
    """Create an instance: config file, catalog, storage and the owner account.

    The owner's password is printed once and stored only as a slow hash. With
    --base-url, every address handed out (release page, approve --json,
    sitemap, WARC export) is on it; an existing instance is left as it is.
    """
    settings = load_settings(instance, overrides={"base_url": base_url} if base_url else None)
    if exist_ok and is_initialised(settings):
        if as_json:
            print_json({"instance": str(settings.instance), "created": False})
        return
    made = init_instance(settings, chosen=("base_url",) if base_url else ())
    if as_json:
        print_json({"instance": made.instance, "created": True, "username": made.username, "password": made.password})
        return
    click.echo(f"Initialised {made.instance}")
    click.echo(f"Owner username: {made.username}")
    click.echo(f"Owner password: {made.password}")
    click.echo("Keep the password now: it is shown only this once.")


@click.command()
@instance_option
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8000).")
@click.option("--workers", type=int, help="Worker processes (default 2).")
@click.option("--threads", type=int, help="Threads per worker (default 32).")
@click.option(
    "--base-url",
    help="The public address clients reach it at, for this run (default: base_url, else http://HOST:PORT).",
)
@click.option(
    "--deployment",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="PLIGT_DEPLOYMENT",
    help="Serve every publisher of this deployment folder, each by its host name (see pligt publishers).",
)
def serve(
    instance: Path | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    threads: int | None,
    base_url: str | None,
    deployment: Path | None,
) -> None:
    """Serve the instance with gunicorn until stopped.

    Without a base_url, a server on one address is reached at http://HOST:PORT
    and says so in its pages; the other commands find that address while it runs.
    With --deployment, it serves a deployment's publishers instead.
    """
    given = {"host": host, "port": port, "workers": workers, "threads": threads, "base_url": base_url}
    overrides = {k: v for k, v in given.items() if v is not None}
    if deployment is not None:
        if base_url:
            raise ConfigurationError("--base-url is each publisher's own in a deployment")
        _serve_deployment(deployment, overrides)
        return
    settings, archive = open_instance(instance, overrides, upgrade=True)
    archive.check()
    _sweep(archive.storage)
    archive.catalog.close()
    from pligt.server import check_port_free  # Flask and gunicorn load only here
    from pligt.server import serve as run

    settings = served_settings(settings)
    if not settings.base_url and settings.host in WILDCARD_HOSTS:
        # Every absolute URL handed out (release page, sitemap, redirects) would follow
        # whatever Host header a client sends: "Host: evil.example" would be echoed back.
        raise ConfigurationError(
            f"serving on every address ({settings.host or 'all'}) needs base_url, the public address the "
            "crawler uses: pligt serve --base-url https://deposit.example.dk (or PLIGT_BASE_URL, or pligt.toml)"
        )
    check_port_free(settings.host, settings.port)
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    public = f" (public address {settings.base_url})" if settings.base_url else ""
    click.echo(f"Pligt serves {settings.instance} at http://{shown}:{settings.port}/{public}", err=True)
    with _serving_at(settings):
        run(settings)


def _serve_deployment(folder: Path, overrides: dict[str, str | int]) -> None:
    """Serve a deployment: its publishers are opened when first asked for, so start-up reads none of them."""
    from pligt.hosting import load_deployment
    from pligt.server import check_port_free  # Flask and gunicorn load only here
    from pligt.server import serve as run

    deployment = load_deployment(folder)
    settings = deployment.server_settings(overrides)
    check_port_free(settings.host, settings.port)
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    click.echo(f"Pligt serves the publishers of {deployment.folder} at http://{shown}:{settings.port}/", err=True)
    run(settings, deployment)


def _sweep(storage: Storage) -> None:
    """Remove what killed uploads left (never an object, never a live writer's file), and say so.

    Orphans are not touched here: telling them needs the catalog and a grace
    period (`pligt fixity --repair`). A sweep that fails does not stop the server.
    """
    try:
        swept = storage.sweep()
    except StorageError as e:
        click.echo(f"pligt: warning: could not sweep the leftovers of interrupted uploads: {e.message}", err=True)
        return
    if swept.removed:
        click.echo(
            f"swept {len(swept.removed)} leftovers of interrupted uploads ({swept.bytes_freed:,} bytes)", err=True
        )
    for item, reason in swept.failed:
        click.echo(f"pligt: warning: could not remove {item.describe()}: {reason}", err=True)


@contextmanager
def _serving_at(settings: Settings) -> Iterator[None]:
    """Tell the commands run beside the server where it is reached (pligt/links.py), while it runs.

    Behind proxies without a base_url the public address is unknown, and nothing is written.
    """
    address = settings.base_url or (None if settings.trusted_proxies else listening_base(settings))
    record = settings.instance / SERVED_AT
    if address is None:
        yield
        return
    record.write_text(address.rstrip("/") + "\n", encoding="utf-8")
    master = os.getpid()
    try:
        yield
    finally:
        if os.getpid() == master:  # gunicorn's workers leave through here too, by SystemExit
            record.unlink(missing_ok=True)


@click.group()
def owner() -> None:
    """The owner's account (the console and the owner API)."""


@owner.command("password")
@instance_option
@json_option
@click.option("--generate", is_flag=True, help="Make a strong password and print it once, instead of asking for one.")
def owner_password(instance: Path | None, as_json: bool, generate: bool) -> None:
    """Set a new owner password: typed (twice, hidden), or made and shown once.

    Every console session ends (signed-in browsers sign in again), the owner
    API takes only the new password from now on, in the running server too,
    and the audit log records the change (never the password).
    """
    _, archive = open_instance(instance)
    if not generate and as_json:
        raise InvalidInput("--json prints a made password: use it with --generate")
    chosen = None if generate else click.prompt("New owner password", hide_input=True, confirmation_prompt=True)
    password = archive.change_owner_password(chosen)
    if as_json:
        print_json({"username": OWNER_USERNAME, "password": password})
        return
    if generate:
        click.echo(f"Owner password: {password}")
        click.echo("Keep the password now: it is shown only this once.")
    click.echo("The owner password is changed; every console session has ended.", err=True)


COMMANDS = (init, serve, owner)
