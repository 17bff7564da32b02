"""HTTP Basic for the crawler and the owner (flask-httpauth).

The crawler sends credentials only after a 401 challenge with a realm, so
every protected URL answers 401 with ``WWW-Authenticate: Basic realm="…"``,
never a redirect to a login page. A protected file's challenge comes once per
URL and harvest: it has a small fixed body (:data:`FILE_CHALLENGE_BODY`), which
the fast path sends without Flask when a request carries no credentials at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import TypeVar
from typing import cast

from flask import Response
from flask import g
from flask import request
from flask_babel import gettext
from flask_httpauth import HTTPBasicAuth

from pligt.core.credentials.auth import Principal
from pligt.core.deposits import OWNER_USERNAME
from pligt.core.errors import LockedOut
from pligt.web.clients import client_address
from pligt.web.errors import error_response
from pligt.web.refusals import worded
from pligt.web.services import pligt


class _Basic(HTTPBasicAuth):
    """HTTP Basic with the realm taken from the instance's settings."""

    def __init__(self, suffix: str = "") -> None:
        super().__init__()
        self._suffix = suffix

    def authenticate_header(self) -> str:
        return challenge_header(f"{pligt().settings.realm}{self._suffix}")


def challenge_header(realm: str) -> str:
    """Return the ``WWW-Authenticate`` value that challenges for ``realm`` (the fast path sends it too)."""
    return f'Basic realm="{realm}", charset="UTF-8"'


#: The body of a protected file's 401: fixed, so that the fast path answers it without a template.
FILE_CHALLENGE_BODY = (
    b"401 Unauthorized\n"
    b"Denne fil er beskyttet: pligtafleveringsinstitutionen henter den med de adgangsoplysninger,\n"
    b"som ejeren har udleveret til den.\n"
    b"This file is protected: the deposit institution fetches it with the credentials the owner released to it.\n"
)
FILE_CHALLENGE_TYPE = "text/plain; charset=utf-8"


crawler_auth = _Basic()
owner_auth = _Basic(" (owner)")


def _verify_crawler(username: str, password: str) -> Principal | None:
    if not username:
        return None
    authenticator = pligt().authenticator
    try:
        if username == OWNER_USERNAME:
            return authenticator.owner(username, password, client=client_address())
        return authenticator.crawler(username, password, client=client_address())
    except LockedOut as e:
        # This client failed too often. Public material stays reachable; only a challenge becomes a 429.
        g.pligt_locked_out = e
        return None


def _verify_owner(username: str, password: str) -> Principal | None:
    if not username:
        return None
    try:
        return pligt().authenticator.owner(username, password, client=client_address())
    except LockedOut as e:
        g.pligt_locked_out = e
        return None


def _challenge(status: int) -> Response:
    """The crawler's 401 (or 403), in the page's language."""
    locked = _locked_out()
    if locked is not None:
        return locked
    if status == 401:
        return error_response(
            401, "Unauthorized", gettext("This area needs the credentials the owner released to you.")
        )
    return error_response(status, "Forbidden", gettext("These credentials do not give access here."))


def _owner_challenge(status: int) -> Response:
    """The owner API's 401, spoken to the owner (in English, as the API and the CLI are)."""
    locked = _locked_out()
    if locked is not None:
        return locked
    return error_response(
        status,
        "Unauthorized" if status == 401 else "Forbidden",
        "the owner API needs the owner's username and password over HTTP Basic (curl -u owner:PASSWORD); "
        "a crawler credential does not open it, and `pligt owner password` sets a new owner password",
    )


def _locked_out() -> Response | None:
    """The 429 a client gets instead of a challenge once it failed too often; None if it did not."""
    locked: LockedOut | None = g.pop("pligt_locked_out", None)
    if locked is None:
        return None
    description = locked.message if request.path.startswith("/api/") else worded(locked)
    return error_response(429, "Too Many Requests", description, retry_after=locked.retry_after)


crawler_auth.verify_password(_verify_crawler)
owner_auth.verify_password(_verify_owner)
crawler_auth.error_handler(_challenge)
owner_auth.error_handler(_owner_challenge)

F = TypeVar("F", bound=Callable[..., Any])


def crawler_may_authenticate(view: F) -> F:
    """Let a request present the crawler's (or the owner's) credentials; anonymous ones pass too."""
    return cast(F, crawler_auth.login_required(optional=True)(view))


def crawler_required(view: F) -> F:
    """Answer 401 with the challenge unless the request carries valid credentials."""
    return cast(F, crawler_auth.login_required(view))


def owner_required(view: F) -> F:
    """Answer 401 with the owner's challenge unless the owner's password came with the request."""
    return cast(F, owner_auth.login_required(view))


def challenge() -> Response:
    """The 401 a protected URL answers without valid credentials, with the realm's challenge."""
    return cast(Response, crawler_auth.auth_error_callback(401))


def file_challenge() -> Response:
    """The 401 a protected file answers without valid credentials: the realm's challenge, a fixed body.

    A client locked out by its failures gets the 429 every challenge becomes.
    """
    if g.get("pligt_locked_out") is not None:
        return challenge()
    response = Response(FILE_CHALLENGE_BODY, 401, content_type=FILE_CHALLENGE_TYPE)
    response.headers["WWW-Authenticate"] = crawler_auth.authenticate_header()
    return response


def credential_of(principal: Principal | None) -> int | None:
    """The crawler credential a request authenticated with (None: anonymous, or the owner)."""
    return principal.credential_id if principal is not None else None


def current_principal() -> Principal | None:
    """Return who the current request authenticated as, if anyone."""
    user = crawler_auth.current_user()
    return user if isinstance(user, Principal) else None
