"""``pligt check`` and ``pligt migrate-storage``: is the storage sound, and moving it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

from pligt.cli.common import instance_option
from pligt.cli.common import json_option
from pligt.cli.common import print_json
from pligt.cli.common import progress_bar
from pligt.core.errors import StorageError
from pligt.core.models import Version
from pligt.core.storage import Storage
from pligt.core.storage import open_backend
from pligt.instance import log_name_problem
from pligt.instance import open_instance
from pligt.instance import switch_setting
from pligt.settings import ENV_PREFIX
from pligt.settings import load_settings
from pligt.settings import storage_options


@click.command()
@instance_option
@json_option
def check(instance: Path | None, as_json: bool) -> None:
    """Check the catalog, the storage and that every retained version's bytes are there.

    Warns (exit 0) of versions too large for the deposit crawler to fetch whole,
    and of a site too large for one harvest job (pligt/core/crawl_budget.py).

    For S3 storage the bucket is checked too: reachable, in an allowed region,
    versioning on, Object Lock on (unless s3_require_object_lock = false).
    Exits non-zero with one line saying what is wrong.
    """
    settings, archive = open_instance(instance)
    archive.catalog.ping()
    facts = archive.storage.check()
    versions = archive.versions()
    missing = []
    for v in versions:
        try:
            size = archive.storage.size(v.storage_key)
        except FileNotFoundError:
            size = None
        if size != v.size:
            missing.append(f"{v.slug} v{v.number}")
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise StorageError(
            f"{len(missing)} of {len(versions)} retained versions have no (or incomplete) bytes in "
            f"{archive.storage.url}: {shown}"
        )
    checkpoints = archive.checkpoints.status()
    problems = checkpoints.problems(archive.clock())
    name_problem = log_name_problem(settings, archive.checkpoints.signer)
    budget = archive.crawl_budget_warnings()
    if as_json:
        print_json(
            {
                "ok": True,
                "catalog": archive.catalog.label,
                "versions": len(versions),
                "storage": facts,
                "checkpoints": {"count": checkpoints.count, "unstamped": checkpoints.unstamped, "problems": problems},
                "log_name": {
                    "name": archive.checkpoints.signer.name if archive.checkpoints.signer else None,
                    "problem": name_problem,
                },
                "crawl_budget": [w.to_dict() for w in budget],
            }
        )
        return
    click.echo(f"catalog: ok ({archive.catalog.label}, {len(versions)} retained versions)")
    click.echo(f"storage: ok ({_describe(facts)})")
    click.echo("bytes:   ok (every retained version is stored with the catalog's size)")
    stamped = "time-stamped" if settings.tsa_url else "not time-stamped: no tsa_url"
    click.echo(f"checkpoints: {checkpoints.count} signed, {stamped}" if not problems else "checkpoints: warning")
    for problem in problems:
        click.echo(f"  warning: {problem}")
    if name_problem:
        click.echo(f"log name: warning: {name_problem}")
    files, site = archive.crawl_budget.file_bytes, archive.crawl_budget.site_bytes
    click.echo(
        f"crawl budget: ok (no file over {files:,} bytes, the site under {site:,})"
        if not budget
        else "crawl budget: warning"
    )
    for warning in budget:
        click.echo(f"  warning: {warning.text()}")


def _describe(facts: dict[str, object]) -> str:
    if "bucket" not in facts:
        return str(facts.get("url"))
    lock = facts.get("object_lock")
    mode = f" ({facts['object_lock_mode']})" if facts.get("object_lock_mode") else ""
    text = (
        f"{facts['url']} at {facts['endpoint']}, region {facts['region']}, versioning {facts['versioning']}, "
        f"Object Lock {lock}{mode}"
    )
    if facts.get("incomplete_uploads"):
        text += f"; {facts['incomplete_uploads']} incomplete multipart uploads (see the README's lifecycle rule)"
    return text


@dataclass
class _Tally:
    copied: int = 0
    already_there: int = 0
    bytes_copied: int = 0


@click.command("migrate-storage")
@instance_option
@json_option
@click.option("--to", "target_url", required=True, help="The new storage URL, e.g. s3://bucket/prefix.")
def migrate_storage(instance: Path | None, as_json: bool, target_url: str) -> None:
    """Copy every retained version to the storage at --to, then switch the instance to it.

    Each object's SHA-256 is checked against the catalog while it is copied,
    and a copy is made visible only if it matches. Objects already at the
    target are read back and verified instead of copied, so an interrupted
    run can simply be started again. On S3, each copy is Object-Locked until
    its version's retention date. Finally pligt.toml's storage setting is
    rewritten; restart pligt serve to serve from the new storage. The old
    storage is left as it was.
    """
    settings, archive = open_instance(instance)
    source = archive.storage
    # The same URL as now is allowed: nothing is copied, everything is verified.
    target = open_backend(target_url, **storage_options(settings, target_url))
    target.check()
    tally = _Tally()
    done: set[str] = set()
    while True:  # versions published while copying are picked up by the next round
        versions = [v for v in archive.versions() if v.storage_key not in done]
        if not versions:
            break
        total = sum(v.size for v in versions)
        label = f"Copying to {target.url}"
        with progress_bar(total, label, hidden=as_json) as bar:
            for version in versions:
                _copy(version, source, target, bar.update, tally)
                done.add(version.storage_key)
    switch_setting(settings, "storage", target.url)
    reloaded = load_settings(settings.instance)
    result = {
        "from": source.url,
        "to": target.url,
        "copied": tally.copied,
        "already_there": tally.already_there,
        "bytes_copied": tally.bytes_copied,
        "config": str(settings.config_file),
        "storage": reloaded.storage,
    }
    if as_json:
        print_json(result)
    else:
        click.echo(
            f"Copied {tally.copied} versions ({tally.bytes_copied:,} bytes) from {source.url} to {target.url}; "
            f"{tally.already_there} were there already and verified."
        )
        click.echo(f'{settings.config_file} now says storage = "{target.url}": restart pligt serve to serve from it.')
        click.echo(f"The copies in {source.url} are untouched; remove them once you are satisfied.")
    if reloaded.storage != target.url:
        click.echo(
            f"pligt: warning: {ENV_PREFIX}STORAGE in the environment still says {reloaded.storage}; change it too",
            err=True,
        )


def _copy(version: Version, source: Storage, target: Storage, progress: Callable[[int], None], tally: _Tally) -> None:
    """Copy one version's object, or verify the copy a previous run made."""
    key = version.storage_key
    if target.exists(key):
        for _ in _verified(target.read_range(key), version, progress, where=target.url):
            pass
        tally.already_there += 1
        return
    try:
        source.size(key)
    except FileNotFoundError:
        raise StorageError(
            f"the bytes of {version.slug} version {version.number} ({key}) are missing from {source.url}"
        ) from None
    chunks = _verified(source.read_range(key), version, progress, where=source.url)
    target.save(key, chunks, retain_until=version.retain_until)
    tally.copied += 1
    tally.bytes_copied += version.size


def _verified(
    chunks: Iterator[bytes], version: Version, progress: Callable[[int], None], where: str
) -> Iterator[bytes]:
    """Pass the bytes on, and fail at the end unless they are the catalog's.

    The failure comes from inside the stream, so a backend that is writing it
    stores nothing (the storage contract).
    """
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        progress(len(chunk))
        yield chunk
    if size != version.size or digest.hexdigest() != version.sha256:
        raise StorageError(
            f"the bytes of {version.slug} version {version.number} in {where} differ from the catalog's "
            f"({size:,} bytes, SHA-256 {digest.hexdigest()}; the catalog has {version.size:,} bytes, "
            f"{version.sha256}); nothing was switched"
        )


COMMANDS = (check, migrate_storage)
