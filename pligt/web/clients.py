"""Who a request came from, for the in-memory counters only (never stored or logged)."""

from __future__ import annotations

from flask import request

from pligt.web.services import pligt


def client_address() -> str:
    """Return the client's address, for a counter that keeps only an HMAC of it.

    Behind trusted proxies every request comes from the proxy, so the client is
    the entry the nearest trusted proxy added to the forwarded-for list.
    """
    proxies = pligt().settings.trusted_proxies
    forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
    if proxies and len(forwarded) >= proxies:
        return forwarded[-proxies]
    return request.remote_addr or "unknown"
