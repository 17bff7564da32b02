"""Handing an approved credential over: once, by emailed link or to the owner's eyes."""

from __future__ import annotations

from typing import Any

from archive import Archive
from archive.access import Approval
from archive.models import to_text

from .links import public_base
from .links import release_link
from .mail import send_release_link
from .settings import Settings


def deliver(settings: Settings, archive: Archive, approval: Approval, show: bool) -> dict[str, Any]:
    """Release the new credential: to the owner now (``show``), else by single-use link.

    The link is emailed to the requester when SMTP is configured; otherwise it
    is returned for the owner to pass on. The password is in the result only
    with ``show``, and then the link is spent.
    """
    credential = approval.credential
    facts: dict[str, Any] = {
        "request": approval.request.id,
        "credential": credential.id,
        "username": credential.username,
        "realm": settings.realm,
        "protected_index": f"{public_base(settings)}/protected/",
        "expires_at": to_text(credential.expires_at),
    }
    if show:
        archive.access.release_to_owner(approval)
        return {**facts, "password": approval.password}
    link = release_link(settings, approval.release_token)
    emailed = send_release_link(settings, approval.request, link, f"{approval.release_expires_at:%Y-%m-%d %H:%M} UTC")
    return {
        **facts,
        "release_emailed_to": approval.request.contact_email if emailed else None,
        "release_link": None if emailed else link,
        "release_expires_at": to_text(approval.release_expires_at),
    }
