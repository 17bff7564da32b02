"""The ``pligt`` command: set up an instance, publish, list, withdraw, serve."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from archive.access import DEFAULT_VALID_DAYS
from archive.access import Approval
from archive.archive import Archive
from archive.archive import read_chunks
from archive.errors import ArchiveError
from archive.errors import InvalidInput
from archive.models import PROTECTED
from archive.models import PUBLIC
from archive.models import REQUEST_STATUSES
from archive.models import Version
from archive.models import to_text

from . import build_archive
from .instance import init_instance
from .instance import is_initialised
from .release import deliver
from .settings import Settings
from .settings import load_settings

#: Show a progress bar for uploads at least this large (or for several files).
PROGRESS_MIN_BYTES = 16 * 1024 * 1024


class _Group(click.Group):
    """Turn every domain error into one line on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ArchiveError as e:
            click.echo(f"pligt: error: {e.message}", err=True)
            sys.exit(e.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pligt")
def main() -> None:
    """Pligt: keep brochures and downloads online for the legal-deposit crawler.

    Every command works on one instance folder (config, catalog, files,
    secrets): --instance PATH, else $PLIGT_INSTANCE, else ./instance.
    """


def instance_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--instance",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="PLIGT_INSTANCE",
        help="The instance folder (default: $PLIGT_INSTANCE, else ./instance).",
    )(f)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(f)


def _archive(instance: Path | None) -> tuple[Settings, Archive]:
    settings = load_settings(instance)
    if not settings.secret_file.is_file():
        raise InvalidInput(f"{settings.instance} is not an initialised instance: run `pligt init` first")
    archive = build_archive(settings)
    archive.catalog.ping()
    return settings, archive


def _print_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@main.command()
@instance_option
@json_option
@click.option("--exist-ok", is_flag=True, help="Do nothing (and succeed) if the instance exists.")
def init(instance: Path | None, as_json: bool, exist_ok: bool) -> None:
    """Create an instance: config file, catalog, storage and the owner account.

    The owner's password is printed once and stored only as a slow hash.
    """
    settings = load_settings(instance)
    if exist_ok and is_initialised(settings):
        if as_json:
            _print_json({"instance": str(settings.instance), "created": False})
        return
    made = init_instance(settings)
    if as_json:
        _print_json({"instance": made.instance, "created": True, "username": made.username, "password": made.password})
        return
    click.echo(f"Initialised {made.instance}")
    click.echo(f"Owner username: {made.username}")
    click.echo(f"Owner password: {made.password}")
    click.echo("Keep the password now: it is shown only this once.")


@main.command()
@instance_option
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8000).")
@click.option("--workers", type=int, help="Worker processes (default 2).")
@click.option("--threads", type=int, help="Threads per worker (default 32).")
def serve(instance: Path | None, host: str | None, port: int | None, workers: int | None, threads: int | None) -> None:
    """Serve the instance with gunicorn until stopped."""
    overrides = {
        k: v for k, v in {"host": host, "port": port, "workers": workers, "threads": threads}.items() if v is not None
    }
    settings = load_settings(instance, overrides=overrides)
    _, archive = _archive(settings.instance)
    archive.catalog.migrate()
    archive.check()
    archive.catalog.close()
    from .server import check_port_free
    from .server import serve as run

    check_port_free(settings.host, settings.port)
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    click.echo(f"Pligt serves {settings.instance} at http://{shown}:{settings.port}/", err=True)
    run(settings)


@main.command()
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
    """Publish FILES, each as a new version of its item.

    New items are protected unless --public is given; a new version keeps its
    item's visibility. A file whose bytes contradict its name is refused.
    """
    if len(files) > 1 and (slug or title):
        raise InvalidInput("--slug and --title apply to one file at a time")
    _, archive = _archive(instance)
    total = sum(f.stat().st_size for f in files)
    show_progress = sys.stderr.isatty() and not as_json and (len(files) > 1 or total >= PROGRESS_MIN_BYTES)
    results = []
    with click.progressbar(length=total, label="Publishing", file=sys.stderr, hidden=not show_progress) as bar:
        for path in files:
            with path.open("rb") as stream:
                publication = archive.publish(
                    _counted(read_chunks(stream), bar.update),
                    filename=path.name,
                    slug=slug,
                    title=title,
                    visibility=visibility,
                )
            results.append(publication)
    if as_json:
        _print_json([{**p.version.to_dict(), "warnings": p.warnings} for p in results])
        return
    for publication in results:
        v = publication.version
        click.echo(
            f"published {v.slug} version {v.number}: {v.filename} ({v.content_type}, {v.size:,} bytes), "
            f"retained until {v.retain_until:%Y-%m-%d}"
        )
        for warning in publication.warnings:
            click.echo(f"pligt: warning: {warning}", err=True)


def _counted(chunks: Iterator[bytes], update: Callable[[int], None]) -> Iterator[bytes]:
    for chunk in chunks:
        update(len(chunk))
        yield chunk


@main.command()
@instance_option
@json_option
@click.option("--all", "include_withdrawn", is_flag=True, help="Include withdrawn versions.")
def items(instance: Path | None, as_json: bool, include_withdrawn: bool) -> None:
    """List every item's versions with their retention dates."""
    _, archive = _archive(instance)
    versions = archive.versions(include_withdrawn=include_withdrawn)
    if as_json:
        _print_json([v.to_dict() for v in versions])
        return
    if not versions:
        click.echo("Nothing is published yet.")
        return
    rows = [("SLUG", "V", "ACCESS", "SIZE", "PUBLISHED", "RETAINED UNTIL", "FILE")]
    rows += [_row(v) for v in versions]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])


def _row(v: Version) -> tuple[str, ...]:
    until = "withdrawn " + f"{v.withdrawn_at:%Y-%m-%d}" if v.withdrawn_at else f"{v.retain_until:%Y-%m-%d}"
    return (v.slug, str(v.number), v.visibility, f"{v.size:,}", f"{v.published_at:%Y-%m-%d}", until, v.filename)


@main.command()
@instance_option
@json_option
@click.argument("slug")
@click.option("--version", "number", type=int, help="Withdraw only this version (default: every version).")
def withdraw(instance: Path | None, as_json: bool, slug: str, number: int | None) -> None:
    """Withdraw an item (or one version) whose minimum retention has ended.

    Its URL then answers 410 Gone. Before the retention date this is refused.
    """
    _, archive = _archive(instance)
    withdrawn = archive.withdraw(slug, number)
    if as_json:
        _print_json([{**v.to_dict(), "withdrawn_at": to_text(v.withdrawn_at)} for v in withdrawn])
        return
    for v in withdrawn:
        click.echo(f"withdrew {v.slug} version {v.number} ({v.filename})")


# -- access requests and credentials ---------------------------------------------------


@main.command("requests")
@instance_option
@json_option
@click.option("--status", type=click.Choice(REQUEST_STATUSES), help="Only requests with this status.")
def list_requests(instance: Path | None, as_json: bool, status: str | None) -> None:
    """List the deposit institution's access requests, newest last."""
    _, archive = _archive(instance)
    found = archive.access.requests(status)
    if as_json:
        _print_json([r.to_dict() for r in found])
        return
    if not found:
        click.echo("No access requests.")
        return
    for r in found:
        click.echo(f"#{r.id}  {r.status:<8}  {r.created_at:%Y-%m-%d}  {r.institution or '(purged)'}")
        if r.contact_email:
            click.echo(f"      {r.contact_name} <{r.contact_email}>")
        if r.decision_reason:
            click.echo(f"      reason: {r.decision_reason}")


def _valid_for_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--valid-for",
        "valid_days",
        type=int,
        default=DEFAULT_VALID_DAYS,
        show_default=True,
        help="Days until the credential expires.",
    )(f)


def _show_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--show",
        is_flag=True,
        help="Print the password here, once, instead of sending the single-use release link.",
    )(f)


@main.command()
@instance_option
@json_option
@click.argument("request_id", type=int)
@_valid_for_option
@_show_option
def approve(instance: Path | None, as_json: bool, request_id: int, valid_days: int, show: bool) -> None:
    """Approve access request REQUEST_ID: one new crawler credential, released once.

    By default the requester gets a single-use release link by email (or, with
    no SMTP configured, you are shown the link to pass on).
    """
    settings, archive = _archive(instance)
    approval = archive.access.approve(request_id, valid_days)
    _deliver(settings, archive, approval, show, as_json)


@main.command()
@instance_option
@json_option
@click.argument("credential_id", type=int)
@_valid_for_option
@_show_option
def rotate(instance: Path | None, as_json: bool, credential_id: int, valid_days: int, show: bool) -> None:
    """Replace credential CREDENTIAL_ID with a new one for the same request (the old is revoked)."""
    settings, archive = _archive(instance)
    approval = archive.access.rotate(credential_id, valid_days)
    _deliver(settings, archive, approval, show, as_json)


def _deliver(settings: Settings, archive: Archive, approval: Approval, show: bool, as_json: bool) -> None:
    result = deliver(settings, archive, approval, show)
    if as_json:
        _print_json(result)
        return
    click.echo(f"Approved request #{result['request']}: credential {result['credential']} ({result['username']})")
    if show:
        click.echo(f"  Protected index: {result['protected_index']}")
        click.echo(f"  Realm:           {result['realm']}")
        click.echo(f"  Username:        {result['username']}")
        click.echo(f"  Password:        {result['password']}")
        click.echo(f"  Expires:         {result['expires_at']}")
        click.echo("The password is shown only this once. It is for the deposit institution alone.")
    elif result["release_emailed_to"]:
        click.echo(
            f"The single-use release link was emailed to {result['release_emailed_to']}; "
            f"valid until {result['release_expires_at']}."
        )
    else:
        click.echo(
            f"Send this single-use release link to {approval.request.contact_email} "
            f"(valid until {result['release_expires_at']}):"
        )
        click.echo(f"  {result['release_link']}")


@main.command()
@instance_option
@json_option
@click.argument("request_id", type=int)
@click.option("--reason", required=True, help="Why the request is denied (kept in the audit log).")
def deny(instance: Path | None, as_json: bool, request_id: int, reason: str) -> None:
    """Deny access request REQUEST_ID, with a reason."""
    _, archive = _archive(instance)
    request = archive.access.deny(request_id, reason)
    if as_json:
        _print_json(request.to_dict())
        return
    click.echo(f"Denied request #{request.id}.")


@main.command()
@instance_option
@json_option
def credentials(instance: Path | None, as_json: bool) -> None:
    """List crawler credentials (never their passwords) with expiry and revocation."""
    _, archive = _archive(instance)
    found = archive.access.credentials()
    if as_json:
        _print_json([c.to_dict() for c in found])
        return
    if not found:
        click.echo("No crawler credentials.")
        return
    for c in found:
        state = f"revoked {c.revoked_at:%Y-%m-%d}" if c.revoked_at else f"expires {c.expires_at:%Y-%m-%d}"
        click.echo(f"{c.id}  {c.username}  request #{c.request_id}  {state}")


@main.command()
@instance_option
@json_option
@click.argument("credential_id", type=int)
def revoke(instance: Path | None, as_json: bool, credential_id: int) -> None:
    """Revoke crawler credential CREDENTIAL_ID: refused from the very next request on."""
    _, archive = _archive(instance)
    credential = archive.access.revoke(credential_id)
    if as_json:
        _print_json(credential.to_dict())
        return
    click.echo(f"Revoked credential {credential.id} ({credential.username}).")


@main.command()
@instance_option
@json_option
def harvest(instance: Path | None, as_json: bool) -> None:
    """Show, per credential and retained version, whether the institution fetched it completely."""
    _, archive = _archive(instance)
    rows = archive.harvest()
    if as_json:
        _print_json([r.to_dict() for r in rows])
        return
    if not rows:
        click.echo("Nothing to show: no crawler credentials or no retained versions yet.")
        return
    for credential_id in dict.fromkeys(r.credential_id for r in rows):
        mine = [r for r in rows if r.credential_id == credential_id]
        done = [r for r in mine if r.complete_at]
        click.echo(f"Credential {credential_id} ({mine[0].username}): {len(done)} of {len(mine)} versions fetched")
        for r in mine:
            if r.complete_at:
                when = f"fetched {r.complete_at:%Y-%m-%d %H:%M}"
            elif r.anonymous_complete_at:
                when = f"public, fetched without credentials {r.anonymous_complete_at:%Y-%m-%d %H:%M}"
            else:
                when = "NOT FETCHED"
            click.echo(f"  {r.version.slug} v{r.version.number}  {when}")


@main.group()
def audit() -> None:
    """Check and show the tamper-evident audit log."""


@audit.command("verify")
@instance_option
@json_option
@click.option("--head", "head", help="A head hash kept earlier: the log must still contain it.")
def audit_verify(instance: Path | None, as_json: bool, head: str | None) -> None:
    """Verify every link of the audit chain; exit non-zero naming the first bad entry."""
    _, archive = _archive(instance)
    seq, digest = archive.verify_audit(head)
    if as_json:
        _print_json({"ok": True, "entries": seq, "head": digest})
        return
    click.echo(f"audit log intact: {seq} entries, head {digest}")


@audit.command("head")
@instance_option
@json_option
def audit_head(instance: Path | None, as_json: bool) -> None:
    """Print the current head hash; keep it elsewhere to detect a rewrite of the whole log."""
    _, archive = _archive(instance)
    seq, digest = archive.audit_head()
    if as_json:
        _print_json({"entries": seq, "head": digest})
        return
    click.echo(digest)


@audit.command("log")
@instance_option
@json_option
@click.option("--limit", type=int, default=20, show_default=True, help="How many of the newest entries.")
def audit_log(instance: Path | None, as_json: bool, limit: int) -> None:
    """Show the newest audit entries."""
    _, archive = _archive(instance)
    entries = list(archive.catalog.audit_entries(newest_first=True, limit=limit))
    if as_json:
        _print_json([e.to_dict() for e in entries])
        return
    for e in reversed(entries):
        click.echo(f"{e.seq:>6}  {e.at}  {e.action:<20}  {json.dumps(e.data, ensure_ascii=False)}")


from . import cli_keeping  # noqa: E402,F401 - registers its commands on `main`
from . import cli_storage  # noqa: E402,F401 - registers commands
