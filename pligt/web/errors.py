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
from werkzeug.exceptions import HTTPException

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


def error_response(status: int, name: str, description: str, *, retry_after: int | None = None) -> Response:
    """Render an error as JSON or HTML, as the client prefers."""
    if wants_json():
        return json_error(status, name, description, retry_after=retry_after)
    response = current_app.response_class(
        render_template("error.html", code=status, name=name, description=description),
        mimetype="text/html",
    )
    response.status_code = status
    return with_retry_after(response, retry_after)


def with_retry_after(response: Response, seconds: int | None) -> Response:
    """Tell the client when to try again (nothing when waiting will not help)."""
    if seconds is not None:
        response.headers["Retry-After"] = str(seconds)
    return response


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
    """Answer werkzeug's errors (404, 405, 413, …) in the same two shapes."""
    response = e.get_response()
    rendered = error_response(e.code or 500, e.name, e.description or "")
    # Keep headers the exception set (Allow, WWW-Authenticate, Content-Range, Retry-After).
    for key, value in response.headers.items():
        if key.lower() not in ("content-type", "content-length"):
            rendered.headers[key] = value
    return rendered
