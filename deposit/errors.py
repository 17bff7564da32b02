"""The one place where errors become HTTP responses: JSON for APIs, HTML for people."""

from __future__ import annotations

import logging

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import jsonify
from flask import render_template
from flask import request
from werkzeug.exceptions import HTTPException

from archive.errors import ArchiveError
from archive.errors import StorageError

bp = Blueprint("errors", __name__)
log = logging.getLogger("pligt")

#: How long a client should wait before retrying after a storage failure.
RETRY_AFTER_SECONDS = 30


def wants_json() -> bool:
    """Tell whether the client asked for JSON (the owner API always does)."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def error_response(status: int, name: str, description: str) -> Response:
    """Render an error as JSON or HTML, as the client prefers."""
    if wants_json():
        response = jsonify(code=status, name=name, description=description)
    else:
        response = current_app.response_class(
            render_template("error.html", code=status, name=name, description=description),
            mimetype="text/html",
        )
    response.status_code = status
    return response


@bp.app_errorhandler(ArchiveError)
def handle_archive_error(e: ArchiveError) -> Response:
    response = error_response(e.status_code, type(e).__name__, e.message)
    retry_after = getattr(e, "retry_after", None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    if isinstance(e, StorageError):
        log.error("storage failure on %s %s: %s", request.method, request.path, e.message)
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


@bp.app_errorhandler(HTTPException)
def handle_http_error(e: HTTPException) -> Response:
    response = e.get_response()
    rendered = error_response(e.code or 500, e.name, e.description or "")
    # Keep headers the exception set (Allow, WWW-Authenticate, Content-Range, Retry-After).
    for key, value in response.headers.items():
        if key.lower() not in ("content-type", "content-length"):
            rendered.headers[key] = value
    return rendered
