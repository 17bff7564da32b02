"""The protected index: every item and every retained version, behind HTTP Basic."""

from __future__ import annotations

from flask import Blueprint
from flask import render_template

from . import pligt
from .auth import crawler_auth
from .auth import current_principal
from .auth import may_read_protected
from .public import group_by_item

bp = Blueprint("protected", __name__, url_prefix="/protected")


@bp.get("/")
@crawler_auth.login_required
def index() -> str:
    principal = current_principal()
    active = principal is not None and (
        principal.credential_id is None or pligt().authenticator.credential_active(principal)
    )
    if not may_read_protected(principal, active):
        return crawler_auth.auth_error_callback(401)
    versions = pligt().archive.versions()
    return render_template("protected.html", items=group_by_item(versions))
