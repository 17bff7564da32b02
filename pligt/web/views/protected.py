"""The protected index: every item and every retained version, behind HTTP Basic."""

from __future__ import annotations

from flask import Blueprint
from flask import Response
from flask import request

from pligt.web.auth import challenge
from pligt.web.auth import crawler_required
from pligt.web.auth import current_principal
from pligt.web.decision import may_read_protected
from pligt.web.downloads import remember_connection
from pligt.web.listing import index_page
from pligt.web.services import pligt

bp = Blueprint("protected", __name__, url_prefix="/protected")


@bp.get("/")
@crawler_required
def index() -> Response:
    principal = current_principal()
    active = principal is not None and (
        principal.credential_id is None or pligt().archive.credential_active(principal.credential_id)
    )
    if principal is not None:
        remember_connection(request.environ, principal.credential_id if active else None)
    if not may_read_protected(principal, active):
        return challenge()
    return index_page("protected.html", visibility=None)
