"""Commands that keep the promises over time: schedules, data subjects, fixity, export, backup."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from importlib.metadata import version as package_version
from pathlib import Path

import click

from pligt.cli.common import instance_option
from pligt.cli.common import json_option
from pligt.cli.common import print_json
from pligt.cli.common import progress_bar
from pligt.cli.common import warn_unreadable
from pligt.core.deposits import Archive
from pligt.core.errors import IntegrityFailed
from pligt.core.errors import InvalidInput
from pligt.core.errors import RetentionActive
from pligt.core.errors import StorageError
from pligt.core.keeping.backup import KEY_BACKUP_DAYS
from pligt.core.keeping.backup import backup as make_backup
from pligt.core.keeping.backup import backup_keys
from pligt.core.keeping.backup import restore as restore_backup
from pligt.core.keeping.backup import restore_keys
from pligt.core.keeping.fixity import FixityReport
from pligt.core.keeping.fixity import check_fixity
from pligt.core.keeping.fixity import record_fixity
from pligt.core.keeping.fixity import repair_leftovers
from pligt.core.keeping.privacy import Privacy
from pligt.core.models import Version
from pligt.core.private import private_file
from pligt.core.storage.base import EMPTY_FOLDER
from pligt.core.storage.base import GRACE_PERIOD
from pligt.instance import build_archive
from pligt.instance import make_folder
from pligt.instance import open_instance
from pligt.instance import write_secret
from pligt.links import public_base
from pligt.links import version_path
from pligt.served import http_date
from pligt.served import version_headers
from pligt.settings import CHECKPOINT_KEY_FILE
from pligt.settings import LATEST_CHECKPOINT_FILE
from pligt.settings import load_settings


@click.command()
@instance_option
@json_option
@click.option("--dry-run", is_flag=True, help="Only say what would be erased.")
def purge(instance: Path | None, as_json: bool, dry_run: bool) -> None:
    """Apply the retention schedules for personal data (run daily from cron).

    Access requests' personal fields go 12 months after the request closed,
    download records after 6 months, spent and expired release links at once.
    The audit chain still verifies afterwards.
    """
    _, archive = open_instance(instance)
    privacy = Privacy(archive.catalog, archive.clock)
    carried = None
    if not dry_run:
        archive.access.expire_due()  # lapsed approvals close, so their schedule starts
        carried = privacy.carry_over(archive.access.revoke)  # erasures made after a restored backup
    report = privacy.purge(dry_run=dry_run)
    if not dry_run:
        archive.changed()  # the purge's entry, into a signed checkpoint
    warn_unreadable(archive.catalog)
    if as_json:
        print_json({**report.to_dict(), **({"erasures_carried_over": carried["requests_erased"]} if carried else {})})
        return
    if carried:
        click.echo(_carried_line(carried))
    verb = "would erase" if dry_run else "erased"
    requests = ", ".join(f"#{i}" for i in report.requests) or "none"
    click.echo(
        f"{verb}: personal data of requests {requests}; {report.download_records} download records; "
        f"{report.release_links} release links"
    )


@click.command()
@instance_option
@json_option
def retention(instance: Path | None, as_json: bool) -> None:
    """List every retained version: retained until when, and whether it may be withdrawn now."""
    _, archive = open_instance(instance)
    now = archive.clock()
    versions = archive.versions()
    if as_json:
        print_json([{**v.to_dict(), "withdrawable_now": v.withdrawable(now)} for v in versions])
        return
    for v in versions:
        state = "withdrawable now" if v.withdrawable(now) else f"{(v.retain_until - now).days} days left"
        click.echo(f"{v.slug} v{v.number}  retained until {v.retain_until:%Y-%m-%d}  {state}")


@click.group()
def gdpr() -> None:
    """Answer data-subject requests: list or erase what is held about a person."""


@gdpr.command("export")
@instance_option
@click.option("--email", required=True, help="The data subject's email address.")
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the JSON here (default: stdout)."
)
def gdpr_export(instance: Path | None, email: str, output: Path | None) -> None:
    """Write everything the instance holds about a person, as JSON."""
    _, archive = open_instance(instance)
    data = Privacy(archive.catalog, archive.clock).export(email)
    if warn_unreadable(archive.catalog):
        click.echo("pligt: warning: an unreadable request cannot be matched to an email: none is exported", err=True)
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if output is None:
        click.echo(text)
    else:
        try:
            private_file(output)  # a person's data: owner-only when made here
            output.write_text(text + "\n", encoding="utf-8")
        except OSError as e:
            raise InvalidInput(f"cannot write {output}: {e.strerror}") from e
        click.echo(f"wrote {output}", err=True)


@gdpr.command("erase")
@instance_option
@json_option
@click.option("--email", required=True, help="The data subject's email address.")
@click.option(
    "--item",
    "items",
    multiple=True,
    metavar="SLUG",
    help="Also withdraw this deposited item (it holds the person's data); repeatable.",
)
@click.option(
    "--override-retention",
    is_flag=True,
    help="Withdraw the items even inside their minimum retention (audited; needs --reason).",
)
@click.option("--reason", help="Why retention is overridden (kept in the audit log).")
def gdpr_erase(
    instance: Path | None,
    as_json: bool,
    email: str,
    items: tuple[str, ...],
    override_retention: bool,
    reason: str | None,
) -> None:
    """Erase a person's data, revoke their credentials, and record the erasure in the audit log.

    Deposited material stays for its minimum retention: --item withdraws an
    item only once its retention has ended, unless --override-retention
    --reason is given. On S3 in COMPLIANCE mode the storage refuses even then,
    and the command says so.
    """
    _, archive = open_instance(instance)
    if override_retention and not (reason or "").strip():
        raise InvalidInput("--override-retention needs --reason")
    if reason and not override_retention:
        raise InvalidInput("--reason goes with --override-retention")
    _refuse_before_erasing(archive, items, override_retention)
    summary = Privacy(archive.catalog, archive.clock).erase(email, archive.access.revoke)
    archive.changed()  # the erasure, into a signed checkpoint
    if warn_unreadable(archive.catalog):
        click.echo("pligt: warning: an unreadable request cannot be matched to an email: none was erased", err=True)
    withdrawn, refused = _withdraw_items(archive, items, reason if override_retention else None)
    summary = {**summary, "items_withdrawn": withdrawn, "items_refused_by_storage": refused}
    if as_json:
        print_json(summary)
    else:
        erased = ", ".join(f"#{i}" for i in summary["requests_erased"]) or "none"
        click.echo(
            f"erased the personal data of requests {erased}; revoked {len(summary['credentials_revoked'])} credentials"
        )
        for label in withdrawn:
            click.echo(f"withdrew {label}")
    if refused:
        raise StorageError("; ".join(refused))


def _refuse_before_erasing(archive: Archive, items: tuple[str, ...], override_retention: bool) -> None:
    """Refuse an erasure that could not withdraw its items: all or nothing, told before anything is erased.

    :raises NotFound: naming an item that does not exist.
    :raises RetentionActive: without the override, naming the first item still retained, and until when.
    """
    now = archive.clock()
    for slug in items:
        retained = [v for v in archive.item_versions(slug) if not v.withdrawn and not v.withdrawable(now)]
        if retained and not override_retention:
            until = max(v.retain_until for v in retained)
            raise RetentionActive(
                slug,
                until,
                message=f"{slug} is retained until {until:%Y-%m-%d}; nothing was erased. "
                "Give --override-retention --reason to withdraw it anyway (audited)",
            )


def _withdraw_items(archive: Archive, items: tuple[str, ...], reason: str | None) -> tuple[list[str], list[str]]:
    """Withdraw each item; return the versions withdrawn, and why the storage refused the others.

    A refusal (S3 in COMPLIANCE mode) does not stop the rest: the erasure is done, and each item counts.
    """
    withdrawn: list[str] = []
    refused: list[str] = []
    for slug in items:
        try:
            done = archive.withdraw(slug, override_reason=reason)
            withdrawn += [f"{v.slug} v{v.number}" for v in done]
        except StorageError as e:
            refused.append(e.message)
    return withdrawn, refused


@gdpr.command("rectify")
@instance_option
@json_option
@click.option("--email", required=True, help="The data subject's email address (as it is now).")
@click.option("--new-email", help="Their correct email address.")
@click.option("--name", help="Their correct name.")
@click.option("--institution", help="Their correct institution.")
def gdpr_rectify(
    instance: Path | None, as_json: bool, email: str, new_email: str | None, name: str | None, institution: str | None
) -> None:
    """Correct a person's name, email or institution in each of their requests (GDPR art. 16).

    Each request is sealed anew under a new key and its old key destroyed, so the
    old values are unreadable in every backup and dump made before, as after an erasure.
    """
    _, archive = open_instance(instance)
    given = {"contact_email": new_email, "contact_name": name, "institution": institution}
    changes = {field: value for field, value in given.items() if value is not None}
    summary = Privacy(archive.catalog, archive.clock).rectify(email, changes)
    archive.changed()
    if as_json:
        print_json(summary)
        return
    done = ", ".join(f"#{i}" for i in summary["requests_rectified"]) or "none"
    click.echo(f"rectified {', '.join(summary['fields'])} in requests {done}; the old values' keys are destroyed")


def _carried_line(carried: dict[str, object]) -> str:
    erased = carried["requests_erased"]
    assert isinstance(erased, list)
    return (
        f"carried over the erasure of {len(erased)} request(s) made after this catalog was copied "
        f"(their keys were destroyed): {', '.join(f'#{i}' for i in erased)}"
    )


@click.command()
@instance_option
@json_option
@click.option(
    "--repair",
    is_flag=True,
    help="Remove what interrupted uploads left: abandoned temporary files, empty folders, incomplete "
    "uploads, and orphaned objects older than --older-than.",
)
@click.option(
    "--older-than",
    "older_than",
    type=click.IntRange(min=0),
    default=int(GRACE_PERIOD.total_seconds()),
    show_default=True,
    metavar="SECONDS",
    help="The grace period: an orphaned object or an S3 upload younger than this may still be a publish "
    "in flight, and is left alone (0: whatever its age).",
)
def fixity(instance: Path | None, as_json: bool, repair: bool, older_than: int) -> None:
    """Re-read every stored version and compare its SHA-256 and size with the catalog.

    Reports missing, corrupt and unexpected objects, orphans (stored by a
    publish that never committed) and debris (temporary files, empty folders,
    incomplete uploads); --repair removes the orphans and debris. Records the
    result in the audit log, and exits non-zero if anything is wrong.
    """
    _, archive = open_instance(instance)
    grace = timedelta(seconds=older_than)
    total = sum(v.size for v in archive.versions())
    with progress_bar(total, "Checking", as_json) as bar:
        report = check_fixity(archive.catalog, archive.storage, bar.update, older_than=grace)
    if repair:
        repair_leftovers(archive.catalog, archive.storage, report)
    try:
        record_fixity(archive.catalog, report, archive.clock())
    except StorageError as e:  # a check that is not on the record did not happen: run it again
        found = f"{report.problems} problem(s)" if report.problems else "no problems"
        raise type(e)(
            f"the check of {report.checked} versions found {found} but could not be recorded, "
            f"so it counts as not done: {e.message}"
        ) from e
    if as_json:
        print_json(report.to_dict())
    else:
        click.echo(f"checked {report.checked} versions, {report.bytes_read:,} bytes")
        if report.sha1_recorded:
            click.echo(f"recorded the SHA-1 of {report.sha1_recorded} versions published before it was kept")
        for kind in ("missing", "corrupt", "unexpected"):
            for label in getattr(report, kind):
                click.echo(f"{kind}: {label}")
        for line in _leftover_lines(report, grace):
            click.echo(line)
    if not report.ok:
        hint = ""
        if not repair and (any(d.abandoned for d in report.debris) or any(o.removable for o in report.orphaned)):
            hint = "; pligt fixity --repair removes the debris and orphans"
        raise IntegrityFailed(f"fixity check failed: {report.problems} problem(s){hint}")


def _leftover_lines(report: FixityReport, grace: timedelta) -> list[str]:
    """What interrupted writes left (and what --repair did about it), a line each."""
    lines = []
    for item in report.debris:
        if item.kind == EMPTY_FOLDER:
            lines.append(f"debris: {item.describe()}")
        elif item.abandoned:
            lines.append(f"debris: {item.describe()}, left by an interrupted upload")
        else:
            lines.append(f"in progress: {item.describe()}, still being written")
    for orphan in report.orphaned:
        if orphan.retained_until is not None:
            lines.append(
                f"orphaned, retained: {orphan.describe()}: never listed, but the storage retains it until "
                f"{orphan.retained_until:%Y-%m-%d}; --repair removes it after then"
            )
        elif orphan.abandoned:
            lines.append(f"orphaned: {orphan.describe()}: stored by a publish that never reached the catalog")
        else:
            lines.append(
                f"orphaned, recent: {orphan.describe()}: younger than {_duration(grace)}, "
                "so a publish may still be listing it; left alone"
            )
    if report.repair is not None:
        lines += [f"removed: {label}" for label in report.repair.removed]
        lines += [f"not removed: {label}" for label in report.repair.failed]
        lines.append(f"repair: removed {len(report.repair.removed)}, {report.repair.bytes_freed:,} bytes freed")
    return lines


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _checkpoint_proofs(archive: Archive) -> list[tuple[str, bytes]]:
    """The audit log's checkpoint as of now (signed, with its time stamp once it has one) and the key to check it.

    ``checkpoint`` is the C2SP signed note; ``checkpoint.tsr`` the RFC 3161 time-stamp token over
    it and ``checkpoint-tsa.pem`` the certificates to check that with (when a TSA stamped it);
    ``checkpoint-key.txt`` the verifier key, as `pligt audit key` prints it.
    """
    checkpoint = archive.checkpoints.write()
    if checkpoint is None or archive.checkpoints.signer is None:
        return []
    archive.checkpoints.stamp_pending()  # a configured TSA that answers now stamps it; one down holds nothing up
    checkpoint = archive.checkpoints.newest() or checkpoint
    files = [
        ("checkpoint", checkpoint.note.encode("utf-8")),
        ("checkpoint-key.txt", (archive.checkpoints.signer.verifier_key + "\n").encode("utf-8")),
    ]
    if checkpoint.stamp is not None:
        files.append(("checkpoint.tsr", checkpoint.stamp))
        if checkpoint.stamp_chain:
            files.append(("checkpoint-tsa.pem", checkpoint.stamp_chain.encode("utf-8")))
    return files


@click.command("export")
@instance_option
@json_option
@click.option("--warc", "warc", type=click.Path(dir_okay=False, path_type=Path), help="Write a WARC: FILE.warc.gz")
@click.option("--wacz", "wacz", type=click.Path(dir_okay=False, path_type=Path), help="Write a WACZ package: FILE.wacz")
@click.option("--base-url", help="The public URL the records are filed under (default: base_url).")
@click.option(
    "--proof",
    "proofs",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    metavar="FILE",
    help="Hand FILE over inside the WACZ, under proof/ (a kept audit head, a signed checkpoint); repeatable.",
)
def export(
    instance: Path | None,
    as_json: bool,
    warc: Path | None,
    wacz: Path | None,
    base_url: str | None,
    proofs: tuple[Path, ...],
) -> None:
    """Write every retained version and the index pages to a WARC 1.1 file or a WACZ package.

    Each version is a response record at its public URL with the headers Pligt
    serves it with; the index pages (public and protected, as the crawler sees
    them with its credentials) and their stylesheet come as the server answers
    them. The WACZ holds that WARC, its CDXJ index, the page list and the
    proof files, each listed with its SHA-256 in datapackage.json.
    """
    target = _export_target(warc, wacz, proofs)
    settings, archive = open_instance(instance)
    if target.exists():
        raise InvalidInput(f"{target} exists; choose a new file name")
    if not target.parent.is_dir():
        raise InvalidInput(f"{target.parent} is not a folder; create it first")
    proof_files = _proof_files(archive, proofs) if wacz is not None else []
    # warcio, Flask and the web app load only for this command.
    from pligt.core.export.wacz import export_wacz
    from pligt.core.export.warc import export_warc
    from pligt.server.snapshot import captured_pages

    base = (base_url or public_base(settings)).rstrip("/")
    secure = base.startswith("https:")
    now = archive.clock()
    software = f"Pligt {package_version('pligt')}"
    pages = captured_pages(dataclasses.replace(settings, base_url=base), base, now)

    def headers_of(version: Version) -> list[tuple[str, str]]:
        return [("Date", http_date(version.published_at)), *version_headers(version, secure)]

    def url_of(version: Version) -> str:
        return base + version_path(version)

    total = sum(v.size for v in archive.versions())
    with progress_bar(total, "Exporting", as_json) as bar:
        if warc is not None:
            exported = export_warc(
                archive.catalog,
                archive.storage,
                warc,
                base_url=base,
                software=software,
                url_of=url_of,
                headers_of=headers_of,
                pages=pages,
                progress=bar.update,
            )
        else:
            assert wacz is not None
            exported = export_wacz(
                archive.catalog,
                archive.storage,
                wacz,
                base_url=base,
                software=software,
                title=f"{settings.site_name}: {base}",
                created=now,
                url_of=url_of,
                headers_of=headers_of,
                pages=pages,
                proofs=proof_files,
                progress=bar.update,
            )
    if not as_json:
        click.echo(f"wrote {exported.versions} versions and {exported.pages} pages to {target}")
        return
    summary: dict[str, object] = {
        "warc" if warc is not None else "wacz": str(target),
        "records": exported.versions + exported.pages,
        "versions": exported.versions,
        "pages": exported.pages,
    }
    if wacz is not None:
        summary["proofs"] = [name for name, _ in proof_files]
    print_json(summary)


def _export_target(warc: Path | None, wacz: Path | None, proofs: tuple[Path, ...]) -> Path:
    """Return the file to write: a WARC or a WACZ, one of them; only a WACZ has room for proof files.

    :raises InvalidInput: naming the options that do not go together.
    """
    if (warc is None) == (wacz is None):
        raise InvalidInput("give --warc FILE or --wacz FILE (one of them)")
    if proofs and wacz is None:
        raise InvalidInput("--proof goes with --wacz (a WARC has no place for it)")
    target = warc if warc is not None else wacz
    assert target is not None
    return target


def _proof_files(archive: Archive, given: tuple[Path, ...]) -> list[tuple[str, bytes]]:
    """Return the proof files a WACZ carries: the audit log's checkpoint proofs, and the files given.

    :raises InvalidInput: naming a given file that cannot be read.
    """
    files = _checkpoint_proofs(archive)
    for proof in given:
        try:
            files.append((proof.name, proof.read_bytes()))
        except OSError as e:
            raise InvalidInput(f"cannot read {proof}: {e.strerror}") from e
    return files


@click.command()
@instance_option
@json_option
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def backup(instance: Path | None, as_json: bool, folder: Path) -> None:
    """Copy the catalog (online, consistent) and every retained version into a new FOLDER."""
    settings, archive = open_instance(instance)
    total = sum(v.size for v in archive.versions())
    keys = {CHECKPOINT_KEY_FILE: settings.checkpoint_key_file, LATEST_CHECKPOINT_FILE: settings.latest_checkpoint_file}
    with progress_bar(total, "Backing up", as_json) as bar:
        summary = make_backup(archive.catalog, archive.storage, folder, bar.update, keys)
    if as_json:
        print_json({"folder": str(folder), **summary.to_dict()})
    else:
        click.echo(f"backed up {summary.versions} versions ({summary.bytes:,} bytes) to {folder}")
        click.echo(f"audit head at backup: {summary.audit_head}")
        click.echo("personal fields are in it only sealed, without keys: back the keys up apart (pligt keys backup)")


@click.command()
@instance_option
@json_option
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "--keys",
    "keys",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A key backup (pligt keys backup) or the old instance's key store: the keys of the personal data.",
)
def restore(instance: Path | None, as_json: bool, folder: Path, keys: Path | None) -> None:
    """Restore a backup FOLDER into a fresh instance, verifying every byte.

    The owner keeps the password they had. The backup holds personal fields only
    sealed: with --keys they are readable again, except those erased since (their
    keys were destroyed): those erasures are carried over and counted. Run
    `pligt purge` afterwards so that data past its schedule goes too.
    """
    settings = load_settings(instance)
    make_folder(settings)
    archive = build_archive(settings)
    with progress_bar(0, "Restoring", as_json) as bar:
        count = restore_backup(folder, archive.catalog, archive.storage, bar.update, settings.instance)
    write_secret(settings)
    if keys is not None:
        restore_keys(keys, archive.catalog)
    archive.catalog.migrate()
    restored = build_archive(settings)  # opened again: with the checkpoint key it brought back
    carried = Privacy(restored.catalog, restored.clock).carry_over(restored.access.revoke)
    restored.changed()
    restored.verify_audit()
    report = restored.catalog.personal_data_report()
    if as_json:
        print_json(
            {
                "instance": str(settings.instance),
                "versions": count,
                "erasures_carried_over": carried["requests_erased"] if carried else [],
                "personal_data": report,
            }
        )
    else:
        click.echo(f"restored {count} versions into {settings.instance}; every byte verified")
        if carried:
            click.echo(_carried_line(carried))
    warn_unreadable(restored.catalog, report["without_key"])


@click.group()
def keys() -> None:
    """The key store of personal data: where it is, its backups (kept briefly), restoring them."""


@keys.command("status")
@instance_option
@json_option
def keys_status(instance: Path | None, as_json: bool) -> None:
    """Say where the key store is and how many requests' personal fields it can open."""
    _, archive = open_instance(instance)
    report = archive.catalog.personal_data_report()
    where = archive.catalog.key_store_label()
    present = archive.catalog.keys is not None and archive.catalog.keys.exists()
    if as_json:
        print_json({"key_store": where, "exists": present, **report})
        return
    click.echo(f"key store: {where}{'' if present else ' (missing)'}")
    click.echo(
        f"{report['requests']} requests: {report['readable']} readable, {report['erased']} erased, "
        f"{report['erased_since']} erased elsewhere since (pligt purge carries it over), "
        f"{report['without_key']} without a key"
    )


@keys.command("backup")
@instance_option
@json_option
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--keep-days",
    type=int,
    default=KEY_BACKUP_DAYS,
    show_default=True,
    help="Delete the key backups in FOLDER older than this: an erased key lives on in them at most so long.",
)
def keys_backup(instance: Path | None, as_json: bool, folder: Path, keep_days: int) -> None:
    """Copy the live keys into a new file in FOLDER (kept apart from the catalog's backups); prune old ones."""
    _, archive = open_instance(instance)
    if archive.catalog.keys is None:
        raise InvalidInput("this instance has no key store")
    done = backup_keys(archive.catalog.keys, folder, archive.clock(), keep_days)
    if as_json:
        print_json(done.to_dict())
        return
    click.echo(f"wrote {done.keys} keys and {done.tombstones} tombstones to {done.path}")
    for name in done.removed:
        click.echo(f"deleted {name} (older than {keep_days} days)")


@keys.command("restore")
@instance_option
@json_option
@click.argument("source", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def keys_restore(instance: Path | None, as_json: bool, source: Path) -> None:
    """Take the keys this instance's requests need from SOURCE (a key backup); carry over erasures it records."""
    _, archive = open_instance(instance)
    taken = restore_keys(source, archive.catalog)
    carried = Privacy(archive.catalog, archive.clock).carry_over(archive.access.revoke)
    archive.changed()
    report = archive.catalog.personal_data_report()
    if as_json:
        print_json({**taken, "erasures_carried_over": carried["requests_erased"] if carried else [], **report})
    else:
        click.echo(f"took {taken['keys']} keys and {taken['tombstones']} tombstones from {source}")
        if carried:
            click.echo(_carried_line(carried))
    warn_unreadable(archive.catalog, report["without_key"])


COMMANDS = (purge, retention, gdpr, fixity, export, backup, restore, keys)
