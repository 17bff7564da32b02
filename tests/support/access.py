"""The access-request workflow, as a test shortcut: a request's fields, a released credential."""

from __future__ import annotations

import base64

from pligt.core import Archive
from pligt.core.models import Credential

REQUEST_FIELDS = {
    "institution": "Det Kgl. Bibliotek",
    "contact_name": "Netarkivet Høstning",
    "contact_email": "netarkivet@example.dk",
    "legal_basis": "",
    "message": "Vi anmoder om adgang til beskyttet materiale.",
}


def issue_credential(archive: Archive, valid_days: int = 365) -> tuple[Credential, str]:
    """File, approve and release a request; return (credential, password) as the crawler gets them."""
    request = archive.access.file(dict(REQUEST_FIELDS))
    approval = archive.access.approve(request.id, valid_days=valid_days)
    archive.access.release(approval.release_token)
    return approval.credential, approval.password


def basic_header(credential: Credential, password: str) -> str:
    """The Authorization header value a crawler sends with these credentials."""
    return "Basic " + base64.b64encode(f"{credential.username}:{password}".encode()).decode()
