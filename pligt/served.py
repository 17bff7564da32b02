"""The headers Pligt answers a version with, built once: for both download paths and the export.

The fast path (pligt/web/fastpath.py) sends :func:`version_headers` as they
are, the Flask path (pligt/web/downloads.py) builds the same set
(tests/test_fastpath.py compares them), and ``pligt export`` writes them into
each version's WARC record, so that the archive holds the answer a crawler got.
Nothing here needs Flask.
"""

from __future__ import annotations

import functools
from datetime import UTC
from datetime import datetime
from email.utils import format_datetime

from pligt.core.models import PUBLIC
from pligt.core.models import Version
from pligt.disposition import content_disposition

#: Versions are immutable; their URLs change only by answering 410 after retention.
MAX_AGE = 24 * 3600

#: A page runs no script, unless it asked for a nonce (pligt/web/headers.py).
PAGES_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# Deposited files are shown as they are; sandboxing keeps an HTML file from
# running script in the server's origin.
FILES_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; sandbox"


def http_date(moment: datetime) -> str:
    """Return ``moment`` as an HTTP date (RFC 9110, §5.6.7), to the second; a naive moment is UTC."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return format_datetime(aware, usegmt=True)


def security_headers(*, secure: bool, csp: str) -> list[tuple[str, str]]:
    """Return the security headers of a response (``secure``: it goes out over TLS)."""
    headers = [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY")]
    if secure:
        headers.append(("Strict-Transport-Security", "max-age=31536000"))
    headers.append(("Content-Security-Policy", csp))
    return headers


def cache_control(version: Version) -> str:
    """Return the ``Cache-Control`` of a version's answers (protected ones stay out of shared caches)."""
    return f"max-age={MAX_AGE}, {'public' if version.visibility == PUBLIC else 'private'}"


@functools.lru_cache(maxsize=4096)
def version_headers(version: Version, secure: bool) -> list[tuple[str, str]]:
    """Return the headers of a whole-file 200 for ``version`` (versions are immutable: cached).

    Callers copy the list before changing it.
    """
    return [
        ("Content-Disposition", content_disposition(version.filename)),
        ("Content-Type", version.content_type),
        ("Last-Modified", http_date(version.published_at)),
        ("ETag", f'"{version.sha256}"'),
        ("Content-Length", str(version.size)),
        ("Cache-Control", cache_control(version)),
        ("Accept-Ranges", "bytes"),
        *security_headers(secure=secure, csp=FILES_CSP),
    ]


def not_modified_headers(version: Version, secure: bool) -> list[tuple[str, str]]:
    """Return the headers of a version's 304 (``secure``: it goes out over TLS).

    The validators and Cache-Control, as RFC 9110 (§15.4.5) asks; Last-Modified
    too, which the crawler's deduplication keeps. A cache merges these into the
    response it stored, so the 304 also carries the files' security headers:
    the pages' CSP would replace the stored sandbox.
    """
    return [
        ("Last-Modified", http_date(version.published_at)),
        ("ETag", f'"{version.sha256}"'),
        ("Cache-Control", cache_control(version)),
        *security_headers(secure=secure, csp=FILES_CSP),
    ]
