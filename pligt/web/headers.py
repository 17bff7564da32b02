"""Security headers on every response.

The fast path (``fastpath.py``) answers without Flask; it sends the same
headers, built by :func:`~pligt.served.security_headers`, so that the two
cannot drift apart (and the WARC export writes them too).
"""

from __future__ import annotations

import secrets

from flask import Blueprint
from flask import Response
from flask import g
from flask import request

from pligt.served import FILES_CSP
from pligt.served import PAGES_CSP
from pligt.served import security_headers

bp = Blueprint("headers", __name__)


def script_nonce() -> str:
    """Return this response's script nonce, made on first use: the page's own ``<script nonce>`` runs.

    A nonce rather than ``script-src 'self'``: 'self' would also run a deposited
    file (``/files/…/x.js`` served as JavaScript) that an injected tag named.
    The console's upload page is the only page that asks; a page that does not
    ask runs no script at all.
    """
    nonce: str | None = g.get("pligt_script_nonce")
    if nonce is None:
        nonce = g.pligt_script_nonce = secrets.token_urlsafe(18)
    return nonce


def pages_csp() -> str:
    """Return the pages' policy; with a nonce, the page's script may run and talk to this server only."""
    nonce = g.get("pligt_script_nonce")
    if nonce is None:
        return PAGES_CSP
    return f"{PAGES_CSP}; script-src 'nonce-{nonce}'; connect-src 'self'"


@bp.app_context_processor
def _nonce_for_templates() -> dict[str, object]:
    return {"script_nonce": script_nonce}


@bp.after_app_request
def add_security_headers(response: Response) -> Response:
    is_page = response.mimetype == "text/html" and "Content-Disposition" not in response.headers
    for name, value in security_headers(secure=request.is_secure, csp=pages_csp() if is_page else FILES_CSP):
        response.headers.setdefault(name, value)
    return response
