"""HTTP Basic for the crawler and the owner (flask-httpauth).

The crawler sends credentials only after a 401 challenge with a realm, so
every protected URL answers 401 with ``WWW-Authenticate: Basic realm="…"``,
never a redirect to a login page.
"""

from __future__ import annotations

from flask import g
from flask_httpauth import HTTPBasicAuth

from archive.archive import OWNER_USERNAME
from archive.auth import OWNER
from archive.auth import Principal
from archive.errors import LockedOut

from .errors import error_response
from .services import pligt


class _Basic(HTTPBasicAuth):
    """HTTP Basic with the realm taken from the instance's settings."""

    def __init__(self, suffix: str = "") -> None:
        super().__init__()
        self._suffix = suffix

    def authenticate_header(self) -> str:
        return f'Basic realm="{pligt().settings.realm}{self._suffix}", charset="UTF-8"'


crawler_auth = _Basic()
owner_auth = _Basic(" (owner)")


@crawler_auth.verify_password
def _verify_crawler(username: str, password: str) -> Principal | None:
    if not username:
        return None
    authenticator = pligt().authenticator
    try:
        if username == OWNER_USERNAME:
            return authenticator.owner(username, password)
        return authenticator.crawler(username, password)
    except LockedOut as e:
        # Public material stays reachable; only a challenge becomes a 429.
        g.pligt_locked_out = e
        return None


@owner_auth.verify_password
def _verify_owner(username: str, password: str) -> Principal | None:
    if not username:
        return None
    try:
        return pligt().authenticator.owner(username, password)
    except LockedOut as e:
        g.pligt_locked_out = e
        return None


def _challenge(status: int):  # noqa: ANN202 - flask-httpauth's callback
    locked: LockedOut | None = g.pop("pligt_locked_out", None)
    if locked is not None:
        return error_response(429, "Too Many Requests", locked.message, retry_after=locked.retry_after)
    if status == 401:
        return error_response(401, "Unauthorized", "This area needs the credentials the owner released to you.")
    return error_response(status, "Forbidden", "These credentials do not give access here.")


crawler_auth.error_handler(_challenge)
owner_auth.error_handler(_challenge)


def may_read_protected(principal: Principal | None, credential_active: bool | None) -> bool:
    """Tell whether ``principal`` may read protected material right now."""
    if principal is None:
        return False
    if principal.kind == OWNER:
        return True
    return bool(credential_active)


def current_principal() -> Principal | None:
    """Return who the current request authenticated as, if anyone."""
    user = crawler_auth.current_user()
    return user if isinstance(user, Principal) else None
