"""``pligt audit``: check and show the tamper-evident audit log."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pligt.cli.common import instance_option
from pligt.cli.common import json_option
from pligt.cli.common import print_json
from pligt.cli.common import warn_unreadable
from pligt.core.errors import StorageError
from pligt.core.proof.receipts import record_harvest
from pligt.instance import open_instance
from pligt.instance import rename_log


@click.group()
def audit() -> None:
    """Check and show the tamper-evident audit log."""


@audit.command("verify")
@instance_option
@json_option
@click.option("--head", "head", help="A head hash kept earlier: the log must still contain it.")
def audit_verify(instance: Path | None, as_json: bool, head: str | None) -> None:
    """Verify the audit chain and its signed, time-stamped checkpoints; exit non-zero naming what was changed.

    Without --head, the checkpoints show a log rewritten or cut short since they were signed.
    """
    _, archive = open_instance(instance)
    report = archive.audit_report(head)
    # Sealed fields whose keys are gone verify as erased: the chain covers only their keyed digests.
    warn_unreadable(archive.catalog)
    if as_json:
        print_json({"ok": True, "entries": report.entries, "head": report.head, "checkpoints": report.checkpoints})
        return
    click.echo(f"audit log intact: {report.entries} entries, head {report.head}")
    click.echo(f"checkpoints: {report.checkpoints}")


@audit.command("rename")
@instance_option
def audit_rename(instance: Path | None) -> None:
    """Name the checkpoint key and the audit log after base_url (a new key), before any credential is issued.

    For an instance first run without base_url, whose key carries the local
    address it served on. The rename is audited and names the key it
    retires, so the checkpoints signed before still verify. Restart a running
    `pligt serve` afterwards, so that it signs with the new key.
    """
    settings, archive = open_instance(instance)
    old, new = rename_log(settings, archive)
    click.echo(f"the checkpoint key and the audit log are now named {new} (before: {old})")
    click.echo("publish the new key (GET /checkpoint-key serves it) and restart a running `pligt serve`", err=True)


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


@audit.command("checkpoint")
@instance_option
@json_option
@click.option("--new", is_flag=True, help="Sign a new checkpoint even if the newest covers the whole log.")
def audit_checkpoint(instance: Path | None, as_json: bool, new: bool) -> None:
    """Print the newest signed checkpoint of the audit log (C2SP signed note), signing one if the log grew."""
    _, archive = open_instance(instance)
    checkpoint = archive.checkpoints.write(new=new)
    assert checkpoint is not None  # an opened instance has its key
    if new:
        archive.checkpoints.stamp_pending()
        checkpoint = next(c for c in archive.catalog.checkpoints(newest_first=True, limit=1))
    if as_json:
        print_json(
            {
                "id": checkpoint.id,
                "size": checkpoint.size,
                "root": checkpoint.root,
                "note": checkpoint.note,
                "created_at": checkpoint.created_at.isoformat(),
                "stamped_at": checkpoint.stamped_at.isoformat() if checkpoint.stamped_at else None,
            }
        )
        return
    click.echo(checkpoint.note, nl=False)


@audit.command("key")
@instance_option
def audit_key(instance: Path | None) -> None:
    """Print the public key that verifies the checkpoints (publish it; the site serves it too)."""
    _, archive = open_instance(instance)
    assert archive.checkpoints.signer is not None
    click.echo(archive.checkpoints.signer.verifier_key)


@audit.command("stamp")
@instance_option
@json_option
def audit_stamp(instance: Path | None, as_json: bool) -> None:
    """Record the crawler's fetches, sign the day's checkpoint, have every unstamped one time-stamped (cron).

    Exits non-zero when the TSA did not answer; the checkpoints are stamped on a later run.
    """
    settings, archive = open_instance(instance)
    record_harvest(archive)  # the deposit crawler's fetches, into the log
    archive.checkpoints.write()
    archive.checkpoints.daily()
    done = archive.checkpoints.stamp_pending()
    errors = [error for _, error in done if error]
    if as_json:
        print_json({"stamped": [c.id for c, e in done if e is None], "error": errors[0] if errors else None})
    else:
        if not settings.tsa_url:
            click.echo("no tsa_url: checkpoints are signed, not time-stamped")
        for checkpoint, error in done:
            click.echo(f"checkpoint {checkpoint.id} (of {checkpoint.size} entries): {error or 'time-stamped'}")
    if errors:
        raise StorageError(errors[0])


COMMANDS = (audit,)
