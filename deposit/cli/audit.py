"""``pligt audit``: check and show the tamper-evident audit log."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..instance import open_instance
from .common import instance_option
from .common import json_option
from .common import print_json


@click.group()
def audit() -> None:
    """Check and show the tamper-evident audit log."""


@audit.command("verify")
@instance_option
@json_option
@click.option("--head", "head", help="A head hash kept earlier: the log must still contain it.")
def audit_verify(instance: Path | None, as_json: bool, head: str | None) -> None:
    """Verify every link of the audit chain; exit non-zero naming the first bad entry."""
    _, archive = open_instance(instance)
    seq, digest = archive.verify_audit(head)
    if as_json:
        print_json({"ok": True, "entries": seq, "head": digest})
        return
    click.echo(f"audit log intact: {seq} entries, head {digest}")


@audit.command("head")
@instance_option
@json_option
def audit_head(instance: Path | None, as_json: bool) -> None:
    """Print the current head hash; keep it elsewhere to detect a rewrite of the whole log."""
    _, archive = open_instance(instance)
    seq, digest = archive.audit_head()
    if as_json:
        print_json({"entries": seq, "head": digest})
        return
    click.echo(digest)


@audit.command("log")
@instance_option
@json_option
@click.option("--limit", type=int, default=20, show_default=True, help="How many of the newest entries.")
def audit_log(instance: Path | None, as_json: bool, limit: int) -> None:
    """Show the newest audit entries."""
    _, archive = open_instance(instance)
    entries = list(archive.catalog.audit_entries(newest_first=True, limit=limit))
    if as_json:
        print_json([e.to_dict() for e in entries])
        return
    for e in reversed(entries):
        click.echo(f"{e.seq:>6}  {e.at}  {e.action:<20}  {json.dumps(e.data, ensure_ascii=False)}")


COMMANDS = (audit,)
