"""Security headers on every response.

The fast path (``fastpath.py``) answers without Flask; it sends the same
headers, built by :func:`security_headers`, so that the two cannot drift apart.
"""

from __future__ import annotations

from flask import Blueprint
from flask import Response
from flask import request

bp = Blueprint("headers", __name__)

PAGES_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# Deposited files are shown as they are; sandboxing keeps an HTML file from
# running script in the server's origin.
FILES_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; sandbox"


def security_headers(*, secure: bool, csp: str) -> list[tuple[str, str]]:
    """Return the security headers of a response (``secure``: it goes out over TLS)."""
    headers = [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY")]
    if secure:
        headers.append(("Strict-Transport-Security", "max-age=31536000"))
    headers.append(("Content-Security-Policy", csp))
    return headers


@bp.after_app_request
def add_security_headers(response: Response) -> Response:
    is_page = response.mimetype == "text/html" and "Content-Disposition" not in response.headers
    for name, value in security_headers(secure=request.is_secure, csp=PAGES_CSP if is_page else FILES_CSP):
        response.headers.setdefault(name, value)
    return response
