"""Publishing, listing and withdrawing items: ``pligt add``, ``items``, ``withdraw``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from pligt.cli.common import counted
from pligt.cli.common import instance_option
from pligt.cli.common import json_option
from pligt.cli.common import print_json
from pligt.cli.common import progress_bar
from pligt.core.deposits import Archive
from pligt.core.deposits import Publication
from pligt.core.deposits import read_chunks
from pligt.core.errors import ArchiveError
from pligt.core.errors import InvalidInput
from pligt.core.models import PROTECTED
from pligt.core.models import PUBLIC
from pligt.core.models import Version
from pligt.core.models import to_text
from pligt.core.retention import MISTAKE_WINDOW
from pligt.instance import open_instance

#: Show a progress bar for uploads at least this large (or for several files).
PROGRESS_MIN_BYTES = 16 * 1024 * 1024


@click.command()
@instance_option
@json_option
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--public", "visibility", flag_value=PUBLIC, help="Anyone may fetch it.")
@click.option(
    "--protected",
    "visibility",
    flag_value=PROTECTED,
    help="Only behind the crawler's credentials (the default for new items).",
)
@click.option("--title", help="The title shown in the indexes (default: the file name).")
@click.option("--slug", help="The item's slug in its URL; an existing slug gets a new version.")
def add(
    instance: Path | None,
    as_json: bool,
    files: tuple[Path, ...],
    visibility: str | None,
    title: str | None,
    slug: str | None,
) -> None:
    """Publish FILES, each as a new version of its item, each on its own.

    New items are protected unless --public is given; a new version keeps its
    item's visibility. A file with the very bytes of its item's newest version
    publishes nothing, and says so. A file whose bytes contradict its name is refused; the
    others are published all the same, and the exit code says that one failed
    (the failures' own code when they agree, else 1).
    """
    if len(files) > 1 and (slug or title):
        raise InvalidInput("--slug and --title apply to one file at a time")
    _, archive = open_instance(instance)
    total = sum(f.stat().st_size for f in files)
    show_progress = not as_json and (len(files) > 1 or total >= PROGRESS_MIN_BYTES)
    results: list[tuple[Path, Publication | ArchiveError]] = []
    with progress_bar(total, "Publishing", hidden=not show_progress) as bar:
        for path in files:
            results.append((path, _publish_one(archive, path, bar.update, slug, title, visibility)))
    if as_json:
        print_json([_as_json(path, outcome) for path, outcome in results])
    for path, outcome in results:
        _tell(path, outcome, as_json)
    _exit_if_any_failed([outcome for _, outcome in results if isinstance(outcome, ArchiveError)], len(files))


def _publish_one(
    archive: Archive,
    path: Path,
    update: Callable[[int], None],
    slug: str | None,
    title: str | None,
    visibility: str | None,
) -> Publication | ArchiveError:
    """Publish one file of a batch: its publication, or the error that refused it (the batch goes on)."""
    try:
        with path.open("rb") as stream:
            return archive.publish(
                counted(read_chunks(stream), update), filename=path.name, slug=slug, title=title, visibility=visibility
            )
    except ArchiveError as e:
        return e
    except OSError as e:
        return ArchiveError(f"cannot read it: {e.strerror or e}")


def _tell(path: Path, outcome: Publication | ArchiveError, as_json: bool) -> None:
    """Say what became of one file: errors and warnings on stderr always, the rest unless JSON says it."""
    if isinstance(outcome, ArchiveError):
        click.echo(f"pligt: error: {path}: {outcome.message}", err=True)
        return
    v = outcome.version
    if not as_json and outcome.unchanged:
        click.echo(
            f"unchanged: {path.name} has the very bytes of {v.slug} version {v.number} ({v.filename}); "
            "nothing was published"
        )
    elif not as_json:
        click.echo(
            f"published {v.slug} version {v.number}: {v.filename} ({v.content_type}, {v.size:,} bytes), "
            f"retained until {v.retain_until:%Y-%m-%d}"
        )
    for warning in outcome.warnings:
        click.echo(f"pligt: warning: {warning}", err=True)


def _exit_if_any_failed(failed: list[ArchiveError], files: int) -> None:
    """Exit with the failures' own code when they agree (a script can tell why), else 1; return if none failed."""
    if not failed:
        return
    if files > 1:
        click.echo(f"pligt: {len(failed)} of {files} files were not published", err=True)
    codes = {e.exit_code for e in failed}
    sys.exit(codes.pop() if len(codes) == 1 else 1)


def _as_json(path: Path, outcome: Publication | ArchiveError) -> dict[str, Any]:
    if isinstance(outcome, ArchiveError):
        return {"file": str(path), "error": outcome.message, "exit_code": outcome.exit_code}
    return {
        "file": str(path),
        **outcome.version.to_dict(),
        "warnings": outcome.warnings,
        "unchanged": outcome.unchanged,
    }


@click.command()
@instance_option
@json_option
@click.option("--all", "include_withdrawn", is_flag=True, help="Include withdrawn versions.")
def items(instance: Path | None, as_json: bool, include_withdrawn: bool) -> None:
    """List every item's versions with their retention dates."""
    _, archive = open_instance(instance)
    versions = archive.versions(include_withdrawn=include_withdrawn)
    if as_json:
        print_json([v.to_dict() for v in versions])
        return
    if not versions:
        click.echo("Nothing is published yet.")
        return
    rows: list[tuple[str, ...]] = [("SLUG", "V", "ACCESS", "SIZE", "PUBLISHED", "RETAINED UNTIL", "FILE")]
    rows += [_row(v) for v in versions]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])


def _row(v: Version) -> tuple[str, ...]:
    until = "withdrawn " + f"{v.withdrawn_at:%Y-%m-%d}" if v.withdrawn_at else f"{v.retain_until:%Y-%m-%d}"
    return (v.slug, str(v.number), v.visibility, f"{v.size:,}", f"{v.published_at:%Y-%m-%d}", until, v.filename)


@click.command()
@instance_option
@json_option
@click.argument("slug")
@click.option("--version", "number", type=int, help="Withdraw only this version (default: every version).")
@click.option(
    "--mistake",
    is_flag=True,
    help=f"Take back one version (--version) published by mistake: within {MISTAKE_WINDOW.seconds // 60} minutes "
    "of its publication, while the deposit institution has not fetched it.",
)
def withdraw(instance: Path | None, as_json: bool, slug: str, number: int | None, mistake: bool) -> None:
    """Withdraw an item (or one version) whose minimum retention has ended.

    Its URL then answers 410 Gone. Before the retention date this is refused,
    except for a version published by mistake, taken back with --mistake
    within minutes while the deposit institution has not fetched it (audited).
    """
    if mistake and number is None:
        raise InvalidInput("--mistake takes back one version: give --version N")
    _, archive = open_instance(instance)
    withdrawn = archive.withdraw(slug, number, mistake=mistake)
    if as_json:
        print_json([{**v.to_dict(), "withdrawn_at": to_text(v.withdrawn_at)} for v in withdrawn])
        return
    for v in withdrawn:
        took_back = ", published by mistake: it never was the deposit institution's" if mistake else ""
        click.echo(f"withdrew {v.slug} version {v.number} ({v.filename}){took_back}")


COMMANDS = (add, items, withdraw)
