"""Access requests and crawler credentials: decide, hand over, revoke, and the proof of deposit."""

from __future__ import annotations

from pathlib import Path

import click

from pligt.cli.common import instance_option
from pligt.cli.common import json_option
from pligt.cli.common import print_json
from pligt.cli.common import show_option
from pligt.cli.common import valid_for_option
from pligt.cli.common import warn_unreadable
from pligt.core.credentials.access import MAX_PAGE_SIZE
from pligt.core.credentials.access import PAGE_SIZE
from pligt.core.credentials.access import Approval
from pligt.core.deposits import Archive
from pligt.core.models import BY_CONNECTION
from pligt.core.models import BY_USER_AGENT
from pligt.core.models import FETCHED
from pligt.core.models import REQUEST_STATUSES
from pligt.core.models import Evidence
from pligt.core.models import HarvestRow
from pligt.instance import open_instance
from pligt.links import base_is_known
from pligt.links import version_path
from pligt.release import deliver
from pligt.settings import Settings


@click.command("requests")
@instance_option
@json_option
@click.option("--status", type=click.Choice(REQUEST_STATUSES), help="Only requests with this status.")
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_PAGE_SIZE),
    default=PAGE_SIZE,
    show_default=True,
    help="Show the newest this many requests.",
)
@click.option("--before", type=int, help="Only requests filed before request BEFORE (the next, older page).")
@click.option("--all", "show_all", is_flag=True, help="Every request, however many (each one's sealed fields opened).")
def list_requests(
    instance: Path | None, as_json: bool, status: str | None, limit: int, before: int | None, show_all: bool
) -> None:
    """List the deposit institution's access requests, newest last: the newest page, or --all.

    When older requests remain, stderr says how to list them (``--before ID``).
    """
    _, archive = open_instance(instance)
    if show_all:
        found, older = archive.access.requests(status), None
    else:
        page = archive.access.page(status, before=before, limit=limit)
        found, older = page.requests, page.older
    warn_unreadable(archive.catalog, sum(1 for r in found if r.unreadable))
    if older is not None:
        click.echo(f"Older requests: pligt requests --before {older} (or --all).", err=True)
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    if not found:
        click.echo("No access requests.")
        return
    for r in found:
        personal = r.institution or ("(unreadable: no key)" if r.unreadable else "(purged)")
        click.echo(f"#{r.id}  {r.status:<8}  {r.created_at:%Y-%m-%d}  {personal}")
        if r.contact_email:
            click.echo(f"      {r.contact_name} <{r.contact_email}>")
        if r.decision_reason:
            click.echo(f"      reason: {r.decision_reason}")


@click.command()
@instance_option
@json_option
@click.argument("request_id", type=int)
@valid_for_option
@show_option
def approve(instance: Path | None, as_json: bool, request_id: int, valid_days: int, show: bool) -> None:
    """Approve access request REQUEST_ID: one new crawler credential, released once.

    By default the requester gets a single-use release link by email (or, with
    no SMTP configured, you are shown the link to pass on).
    """
    settings, archive = open_instance(instance)
    approval = archive.access.approve(request_id, valid_days)
    _deliver(settings, archive, approval, show, as_json)


@click.command()
@instance_option
@json_option
@click.argument("credential_id", type=int)
@valid_for_option
@show_option
def rotate(instance: Path | None, as_json: bool, credential_id: int, valid_days: int, show: bool) -> None:
    """Replace credential CREDENTIAL_ID with a new one for the same request (the old is revoked)."""
    settings, archive = open_instance(instance)
    approval = archive.access.rotate(credential_id, valid_days)
    _deliver(settings, archive, approval, show, as_json)


def _deliver(settings: Settings, archive: Archive, approval: Approval, show: bool, as_json: bool) -> None:
    result = deliver(settings, archive, approval, show)
    if not base_is_known(settings):
        click.echo(
            f"pligt: warning: base_url is not set and pligt serve is not running: the addresses below assume "
            f"{result['base_url']}; set base_url in {settings.config_file} (or pligt init --base-url) "
            "to the address the crawler reaches",
            err=True,
        )
    if as_json:
        print_json(result)
        return
    click.echo(f"Approved request #{result['request']}: credential {result['credential']} ({result['username']})")
    if show:
        click.echo("For NetarchiveSuite's password entry (and Heritrix's HttpAuthenticationCredential):")
        click.echo(f"  Domain:          {result['domain']}")
        click.echo(f"  Realm:           {result['realm']}")
        click.echo(f"  Username:        {result['username']}")
        click.echo(f"  Password:        {result['password']}")
        click.echo(f"  Protected index: {result['protected_index']}")
        click.echo(f"  Expires:         {result['expires_at']}")
        click.echo("The same for Heritrix's credential store (crawler-beans.cxml):")
        click.echo(result["heritrix_credential"])
        click.echo("The password is shown only this once. It is for the deposit institution alone.")
    elif result["release_emailed_to"]:
        click.echo(
            f"The single-use release link was emailed to {result['release_emailed_to']}; "
            f"valid until {result['release_expires_at']}."
        )
    else:
        to = approval.request.contact_email
        if to is None:  # erased since, or its key is not in the key store
            warn_unreadable(archive.catalog, 1 if approval.request.unreadable else 0)
        click.echo(
            f"Send this single-use release link to {to or 'the requester (their address is not readable here)'} "
            f"(valid until {result['release_expires_at']}):"
        )
        click.echo(f"  {result['release_link']}")


@click.command()
@instance_option
@json_option
@click.argument("request_id", type=int)
@click.option("--reason", required=True, help="Why the request is denied (kept in the audit log).")
def deny(instance: Path | None, as_json: bool, request_id: int, reason: str) -> None:
    """Deny access request REQUEST_ID, with a reason."""
    _, archive = open_instance(instance)
    request = archive.access.deny(request_id, reason)
    if as_json:
        print_json(request.to_dict())
        return
    click.echo(f"Denied request #{request.id}.")


@click.command()
@instance_option
@json_option
def credentials(instance: Path | None, as_json: bool) -> None:
    """List crawler credentials (never their passwords) with expiry and revocation."""
    _, archive = open_instance(instance)
    found = archive.access.credentials()
    if as_json:
        print_json([c.to_dict() for c in found])
        return
    if not found:
        click.echo("No crawler credentials.")
        return
    for c in found:
        state = f"revoked {c.revoked_at:%Y-%m-%d}" if c.revoked_at else f"expires {c.expires_at:%Y-%m-%d}"
        click.echo(f"{c.id}  {c.username}  request #{c.request_id}  {state}")


@click.command()
@instance_option
@json_option
@click.argument("credential_id", type=int)
def revoke(instance: Path | None, as_json: bool, credential_id: int) -> None:
    """Revoke crawler credential CREDENTIAL_ID: refused from the very next request on."""
    _, archive = open_instance(instance)
    credential = archive.access.revoke(credential_id)
    if as_json:
        print_json(credential.to_dict())
        return
    click.echo(f"Revoked credential {credential.id} ({credential.username}).")


@click.command()
@instance_option
@json_option
def harvest(instance: Path | None, as_json: bool) -> None:
    """Show, per access request and retained version, whether the institution downloaded it whole.

    Across all of a request's credentials (a rotation adds one): held (fetched
    whole: every byte sent, and revisited if a 304 came after), fetched in part,
    named only (conditional requests answered 304, never a whole download: not
    proof that it holds the bytes), or not fetched; each with the credential and
    how the download is tied to the crawler.
    """
    _, archive = open_instance(instance)
    rows = archive.harvest()
    if any(r.institution is None for r in rows):
        warn_unreadable(archive.catalog)
    if as_json:
        print_json([{**r.to_dict(), "url_path": version_path(r.version)} for r in rows])
        return
    if not rows:
        click.echo("Nothing to show: no crawler credentials or no retained versions yet.")
        return
    for request_id in dict.fromkeys(r.request_id for r in rows):
        mine = [r for r in rows if r.request_id == request_id]
        held = [r for r in mine if r.state == FETCHED]
        credentials = ", ".join(str(credential_id) for credential_id, _ in mine[0].credentials)
        click.echo(
            f"Request #{request_id} ({mine[0].institution or 'personal data purged'}), credentials {credentials}: "
            f"{len(held)} of {len(mine)} versions held (downloaded whole)"
        )
        for r in mine:
            click.echo(f"  {r.version.slug} v{r.version.number}  {_proof(r)}  {r.version.sha1 or 'sha1 unknown'}")


def _proof(row: HarvestRow) -> str:
    """Say what a harvest row proves, in words, with how each record is attributed."""
    parts = []
    if row.complete:
        parts.append(f"held: fetched whole {_evidence(row.complete)}")
        if row.revisit:
            parts.append(f"revisited (304) {_evidence(row.revisit)}")
    elif row.fetched:
        parts.append(f"fetched PARTIALLY {_evidence(row.fetched)}")
    if row.not_modified and not row.complete:
        parts.append(
            f"NOT TAKEN: answered 304 {_evidence(row.not_modified)} "
            "(the client named this version; no whole download is recorded)"
        )
    if not parts:
        parts.append("NOT FETCHED")
    if not row.complete and row.anonymous_complete_at:
        parts.append(f"(fetched whole without credentials {row.anonymous_complete_at:%Y-%m-%d %H:%M}, by someone)")
    return "; ".join(parts)


def _evidence(evidence: Evidence) -> str:
    when = f"{evidence.at:%Y-%m-%d %H:%M}"
    if evidence.via == BY_USER_AGENT:
        return f"{when} by a client naming itself {evidence.crawler!r} (User-Agent only)"
    if evidence.via == BY_CONNECTION:
        return f"{when} on a connection that carried credential {evidence.credential_id}"
    return f"{when} with credential {evidence.credential_id}"


COMMANDS = (list_requests, approve, rotate, deny, credentials, revoke, harvest)
