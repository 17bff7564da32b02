"""The one place where errors become HTTP responses: JSON for APIs, HTML for people.

Only here is a JSON error body built or a ``Retry-After`` header written; views
that show an error on their own page (a form) hand the response here for it.
"""

from __future__ import annotations

import logging

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import jsonify
from flask import render_template
from flask import request
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed

from pligt.core.errors import ArchiveError
from pligt.core.errors import StorageError
from pligt.web.refusals import worded

bp = Blueprint("errors", __name__)
log = logging.getLogger("pligt")


def wants_json() -> bool:
    """Tell whether the client asked for JSON (the owner API always does)."""
    if request.path.startswith("/api/") or request.is_json:  # the API, or a client that sent JSON
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def json_error(
    status: int, name: str, description: str, *, retry_after: int | None = None, **extra: object
) -> Response:
    """Return the JSON error body every API answers with: ``{"code", "name", "description", …}``."""
    response = jsonify(code=status, name=name, description=description, **extra)
    response.status_code = status
    return with_retry_after(response, retry_after)


#: The heading of an error page, in the reader's language (JSON keeps the English ``name``).
_TITLES = {
    400: _l("Bad request"),
    401: _l("Credentials needed"),
    403: _l("Not allowed"),
    404: _l("Not found"),
    405: _l("Method not allowed"),
    409: _l("Refused"),
    410: _l("Gone"),
    413: _l("Too large"),
    415: _l("Content refused"),
    422: _l("Not valid"),
    429: _l("Too many requests"),
    500: _l("Server error"),
    503: _l("Unavailable right now"),
    507: _l("Storage full"),
}

#: What a page says instead of Werkzeug's English description of its own errors.
_DESCRIPTIONS = {
    400: _l("The request could not be understood."),
    404: _l("There is nothing at this address."),
    405: _l("This address does not take that kind of request."),
    413: _l("The request is larger than this address takes."),
    500: _l("Something went wrong on the server; please try again later."),
}


def error_response(status: int, name: str, description: str, *, retry_after: int | None = None) -> Response:
    """Render an error as JSON or HTML, as the client prefers."""
    if wants_json():
        return json_error(status, name, description, retry_after=retry_after)
    title = _TITLES.get(status, name)
    response = current_app.response_class(
        render_template("error.html", code=status, name=title, description=description),
        mimetype="text/html",
    )
    response.status_code = status
    return with_retry_after(response, retry_after)


def with_retry_after(response: Response, seconds: int | None) -> Response:
    """Tell the client when to try again (nothing when waiting will not help)."""
    if seconds is not None:
        response.headers["Retry-After"] = str(seconds)
    return response


def _described(e: HTTPException) -> str:
    """Say what went wrong: the API in English, with what to do instead; a page in its reader's language."""
    if isinstance(e, MethodNotAllowed) and e.valid_methods:
        allowed = sorted(set(e.valid_methods) - {"HEAD", "OPTIONS"})
        if request.path.startswith("/api/"):
            if request.method == "PUT" and "POST" in allowed:
                return (
                    "send the file with POST, not PUT: curl -u owner:PASSWORD -X POST -T FILE "
                    f"'{request.base_url}?filename=NAME' (curl -T alone sends PUT)"
                )
            return f"{request.method} is not allowed here; allowed: {', '.join(allowed)}"
    if request.path.startswith("/api/") or e.description != type(e).description:
        return e.description or ""  # the API's English, or a description a view gave
    return str(_DESCRIPTIONS.get(e.code or 500, e.description or ""))


@bp.app_errorhandler(ArchiveError)
def handle_archive_error(e: ArchiveError) -> Response:
    """Answer a domain error with its status, its message and, where it helps, when to retry.

    Pages (and the console's own JSON) word it in the reader's language; the
    owner API, like the CLI, answers in English.
    """
    if isinstance(e, StorageError):
        log.error("storage failure on %s %s: %s", request.method, request.path, e.message)
    description = e.message if request.path.startswith("/api/") else worded(e)
    return error_response(e.status_code, type(e).__name__, description, retry_after=e.retry_after)


@bp.app_errorhandler(HTTPException)
def handle_http_error(e: HTTPException) -> Response:
    """Answer werkzeug's errors (404, 405, 413, …) in the same two shapes; a page in its reader's language."""
    response = e.get_response()
    rendered = error_response(e.code or 500, e.name, _described(e))
    # Keep headers the exception set (Allow, WWW-Authenticate, Content-Range, Retry-After).
    for key, value in response.headers.items():
        if key.lower() not in ("content-type", "content-length"):
            rendered.headers[key] = value
    return rendered
