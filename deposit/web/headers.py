"""Security headers on every response."""

from __future__ import annotations

from flask import Blueprint
from flask import Response
from flask import request

bp = Blueprint("headers", __name__)

_PAGES_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# Deposited files are shown as they are; sandboxing keeps an HTML file from
# running script in the server's origin.
FILES_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; sandbox"


@bp.after_app_request
def add_security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    headers.setdefault(
        "Content-Security-Policy",
        _PAGES_CSP if response.mimetype == "text/html" and "Content-Disposition" not in headers else FILES_CSP,
    )
    return response
