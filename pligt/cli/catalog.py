"""``pligt migrate-catalog``: move an instance's catalog between SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import click

from pligt.cli.common import instance_option
from pligt.cli.common import json_option
from pligt.cli.common import print_json
from pligt.core.catalog import locate_catalog
from pligt.core.catalog import open_catalog
from pligt.core.catalog.copy import copy_catalog
from pligt.core.errors import Conflict
from pligt.instance import open_instance
from pligt.instance import switch_setting
from pligt.settings import ENV_PREFIX
from pligt.settings import load_settings


@click.command("migrate-catalog")
@instance_option
@json_option
@click.option(
    "--to",
    "target",
    required=True,
    help="The new catalog: postgresql://user@host:5432/database, or a SQLite file path (or sqlite:///path).",
)
def migrate_catalog(instance: Path | None, as_json: bool, target: str) -> None:
    """Copy every row of the catalog to --to, verify the copy, then switch the instance to it.

    The copy is read from one consistent state of the catalog, taken while
    holding its write lock (a server's writes wait a few seconds, or get 503
    with Retry-After; reading and downloading go on), and written in one
    transaction: an interrupted run leaves the target empty, and running the
    command again starts over. A target that already holds this copy is
    verified and kept. Every table's count and the audit log's chain are
    verified on the target. Finally pligt.toml's catalog setting is rewritten:
    stop every pligt serve before, and start them after (a server still on
    the old catalog would write there). The old catalog is left as it was.
    """
    settings, archive = open_instance(instance)
    source = archive.catalog
    location = locate_catalog(target, settings.instance)
    current = locate_catalog(settings.catalog, settings.instance)
    if location == current:
        raise Conflict(f"{location.label} is the instance's catalog already")
    destination = open_catalog(target, settings.instance, key_store=settings.key_store)
    try:
        with source.transaction():  # no write lands in the source after the copy's snapshot
            summary = copy_catalog(source, destination)
    finally:
        destination.close()
        source.close()
    value = str(location.path) if location.path is not None else target
    switch_setting(settings, "catalog", value)
    reloaded = load_settings(settings.instance)
    if as_json:
        config = str(settings.config_file)
        print_json({"from": source.label, "to": location.label, **summary.to_dict(), "config": config})
    else:
        rows = sum(summary.counts.values())
        done = "copied" if summary.copied else "found already copied, and verified"
        click.echo(
            f"{rows} rows {done} from {source.label} to {location.label}; every count and the audit log "
            f"({summary.audit_entries} entries, head {summary.audit_head}) verified on the target."
        )
        click.echo(f"{settings.config_file} now names the new catalog: start pligt serve again to serve from it.")
        click.echo(f"The old catalog {source.label} is untouched; keep it until you are satisfied.")
    if locate_catalog(reloaded.catalog, settings.instance) != location:
        warning = f"{ENV_PREFIX}CATALOG in the environment still names the old catalog; change it too"
        click.echo(f"pligt: warning: {warning}", err=True)


COMMANDS = (migrate_catalog,)
