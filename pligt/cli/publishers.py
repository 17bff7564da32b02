"""``pligt publishers``: the host's commands for a deployment of many publishers (pligt/hosting.py)."""

from __future__ import annotations

from pathlib import Path

import click

from pligt.cli.common import json_option
from pligt.cli.common import print_json
from pligt.hosting import Deployment
from pligt.hosting import add_publisher
from pligt.hosting import hand_over
from pligt.hosting import load_deployment
from pligt.hosting import remove_publisher
from pligt.hosting import set_suspended
from pligt.hosting import summaries


def deployment_option(f: click.decorators.FC) -> click.decorators.FC:
    """Add ``--deployment DIR`` (default: $PLIGT_DEPLOYMENT)."""
    return click.option(
        "--deployment",
        "folder",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="PLIGT_DEPLOYMENT",
        required=True,
        help="The deployment folder (default: $PLIGT_DEPLOYMENT).",
    )(f)


@click.group()
def publishers() -> None:
    """Host many publishers on one deployment, each on its own host name.

    Each publisher is a complete instance in DEPLOYMENT/publishers/HOST/;
    `pligt serve --deployment DEPLOYMENT` serves them all. The other commands
    work on one publisher with --instance DEPLOYMENT/publishers/HOST.
    """


def _deployment(folder: Path, *, create: bool = False) -> Deployment:
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return load_deployment(folder)


@publishers.command("add")
@deployment_option
@json_option
@click.argument("host")
@click.option("--owner-email", required=True, help="Where the publisher's owner is told of access requests.")
@click.option("--site-name", default="", help="The name shown on the publisher's pages (default: HOST).")
def add(folder: Path, as_json: bool, host: str, owner_email: str, site_name: str) -> None:
    """Add the publisher HOST (its host name, e.g. deposit.example.dk); print its owner's password once."""
    deployment = _deployment(folder, create=True)
    name, made = add_publisher(deployment, host, owner_email, site_name)
    if as_json:
        print_json(
            {
                "name": name,
                "base_url": deployment.base_url(name),
                "instance": made.instance,
                "username": made.username,
                "password": made.password,
            }
        )
        return
    click.echo(f"Added {name} at {deployment.base_url(name)} ({made.instance})")
    click.echo(f"Owner username: {made.username}")
    click.echo(f"Owner password: {made.password}")
    click.echo("Hand the password to the publisher now: it is shown only this once.")


@publishers.command("list")
@deployment_option
@json_option
def list_(folder: Path, as_json: bool) -> None:
    """List the publishers: versions (retained), bytes, pending requests, last harvest."""
    rows = list(summaries(_deployment(folder)))
    if as_json:
        print_json([row.to_dict() for row in rows])
        return
    for row in rows:
        harvest = row.last_harvest.strftime("%Y-%m-%d %H:%M") if row.last_harvest else "never"
        state = " SUSPENDED" if row.suspended else ""
        click.echo(
            f"{row.name}{state}  {row.versions} versions ({row.retained} retained), {row.bytes:,} bytes, "
            f"{row.pending_requests} pending requests, last harvest {harvest}"
        )


@publishers.command("suspend")
@deployment_option
@click.argument("host")
def suspend(folder: Path, host: str) -> None:
    """Suspend HOST: its files and pages stay served to the crawler; its owner, API and forms are refused."""
    click.echo(f"Suspended {set_suspended(_deployment(folder), host, True)}")


@publishers.command("resume")
@deployment_option
@click.argument("host")
def resume(folder: Path, host: str) -> None:
    """Resume a suspended publisher."""
    click.echo(f"Resumed {set_suspended(_deployment(folder), host, False)}")


@publishers.command("remove")
@deployment_option
@click.argument("host")
def remove(folder: Path, host: str) -> None:
    """Remove HOST and everything of it; refused while any of its versions is retained."""
    click.echo(f"Removed {remove_publisher(_deployment(folder), host)}")


@publishers.command("hand-over")
@deployment_option
@json_option
@click.argument("host")
@click.argument("backup", type=click.Path(file_okay=False, path_type=Path))
def hand_over_(folder: Path, as_json: bool, host: str, backup: Path) -> None:
    """Back HOST up into a new BACKUP folder for the publisher to take along.

    On its own server, `pligt restore --instance NEW BACKUP` and base_url set
    to the same address make it an instance of its own: every URL, credential,
    receipt and checkpoint the same once DNS points there. Until its audit log
    moves again, `remove` may then take it off this deployment.
    """
    made = hand_over(_deployment(folder), host, backup)
    if as_json:
        print_json({"folder": str(backup), **made.to_dict()})
        return
    click.echo(f"handed over {made.versions} versions ({made.bytes:,} bytes) in {backup}")
    click.echo(f"audit head at hand-over: {made.audit_head}")


@publishers.command("caddyfile")
@deployment_option
@click.option(
    "--port", type=int, help="Where pligt serve --deployment listens on loopback (default: its port setting)."
)
def caddyfile(folder: Path, port: int | None) -> None:
    """Print Caddy's configuration for the deployment: HTTPS on demand for every publisher's name."""
    from pligt.deploy import hosting_caddyfile

    settings = _deployment(folder).server_settings()
    click.echo(hosting_caddyfile(port or settings.port, settings.max_upload_bytes), nl=False)


COMMANDS = (publishers,)
