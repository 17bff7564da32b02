"""Handing an approved credential over: once, by emailed link or to the owner's eyes.

What is handed over is what the institution types into its tools: a
NetarchiveSuite ``Password`` entry (domain, realm, username, password) and the
Heritrix ``HttpAuthenticationCredential`` it becomes, ready to paste.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import quoteattr

from pligt.core import Archive
from pligt.core.credentials.access import Approval
from pligt.core.models import to_text
from pligt.links import crawler_domain
from pligt.links import public_base
from pligt.links import release_link
from pligt.mail import send_release_link
from pligt.settings import Settings

HERITRIX_CREDENTIAL = "org.archive.modules.credential.HttpAuthenticationCredential"


def heritrix_credential(domain: str, realm: str, username: str, password: str) -> str:
    """Return the Spring bean for Heritrix's credential store (``crawler-beans.cxml``), values XML-escaped."""
    properties = {"domain": domain, "realm": realm, "login": username, "password": password}
    lines = [f'<bean class="{HERITRIX_CREDENTIAL}">']
    lines += [f'  <property name="{name}" value={quoteattr(value)}/>' for name, value in properties.items()]
    lines.append("</bean>")
    return "\n".join(lines)


def credential_facts(base: str, realm: str, username: str, password: str | None) -> dict[str, Any]:
    """Return what the crawler's configuration needs, for a server at ``base``; the bean only with the password."""
    domain = crawler_domain(base)
    facts: dict[str, Any] = {
        "domain": domain,
        "realm": realm,
        "username": username,
        "base_url": base.rstrip("/"),
        "protected_index": f"{base.rstrip('/')}/protected/",
    }
    if password is not None:
        facts["password"] = password
        facts["heritrix_credential"] = heritrix_credential(domain, realm, username, password)
    return facts


def deliver(
    settings: Settings, archive: Archive, approval: Approval, show: bool, base: str | None = None
) -> dict[str, Any]:
    """Release the new credential: to the owner now (``show``), else by single-use link.

    The link is emailed to the requester when SMTP is configured; otherwise it
    is returned for the owner to pass on. The password (and the Heritrix bean
    that holds it) is in the result only with ``show``, and then the link is spent.

    :param base: the server's public address (inside a request, the one it came to);
        default :func:`~pligt.links.public_base`.
    """
    base = (base or public_base(settings)).rstrip("/")
    credential = approval.credential
    facts: dict[str, Any] = {
        "request": approval.request.id,
        "credential": credential.id,
        **credential_facts(base, settings.realm, credential.username, approval.password if show else None),
        "expires_at": to_text(credential.expires_at),
    }
    if show:
        archive.access.release_to_owner(approval)
        return facts
    link = release_link(base, approval.release_token)
    emailed = send_release_link(settings, approval.request, link, f"{approval.release_expires_at:%Y-%m-%d %H:%M} UTC")
    return {
        **facts,
        "release_emailed_to": approval.request.contact_email if emailed else None,
        "release_link": None if emailed else link,
        "release_expires_at": to_text(approval.release_expires_at),
    }
