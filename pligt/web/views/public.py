"""What anyone, and the deposit crawler first of all, can reach without credentials."""

from __future__ import annotations

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import jsonify
from flask import redirect
from flask import render_template
from flask import request
from flask import send_from_directory
from flask.typing import ResponseReturnValue

from pligt.core.errors import NotFound
from pligt.core.errors import StorageError
from pligt.core.errors import keyed
from pligt.core.models import PUBLIC
from pligt.links import CHECKPOINT_KEY_PATH
from pligt.links import CHECKPOINT_PATH
from pligt.links import LATEST_ROUTE
from pligt.links import VERSION_ROUTE
from pligt.web.auth import challenge
from pligt.web.auth import crawler_may_authenticate
from pligt.web.auth import credential_of
from pligt.web.auth import current_principal
from pligt.web.auth import file_challenge
from pligt.web.decision import decide
from pligt.web.decision import look_up
from pligt.web.decision import refusal
from pligt.web.downloads import download_record
from pligt.web.downloads import remember_connection
from pligt.web.downloads import send_version
from pligt.web.listing import index_page
from pligt.web.services import pligt
from pligt.web.urls import external_url
from pligt.web.urls import version_path
from pligt.web.urls import version_url

bp = Blueprint("public", __name__)


@bp.app_context_processor
def page_context() -> dict[str, object]:
    settings = pligt().settings
    return {"site_name": settings.site_name, "realm": settings.realm, "version_path": version_path}


@bp.get("/")
def index() -> Response:
    """The front page: every retained public version, as plain links (paged)."""
    return index_page("index.html", visibility=PUBLIC)


@bp.get("/robots.txt")
def robots() -> Response:
    text = "\n".join(
        [
            "# Everything here may be harvested, by the legal-deposit crawler first of all.",
            "User-agent: *",
            "Allow: /",
            "Disallow: /api/",
            f"Sitemap: {external_url('public.sitemap')}",
            "",
        ]
    )
    return Response(text, mimetype="text/plain")


@bp.get(CHECKPOINT_KEY_PATH)
def checkpoint_key() -> Response:
    """The public key that verifies the audit log's checkpoints (C2SP signed-note verifier key)."""
    signer = pligt().archive.checkpoints.signer
    if signer is None:
        raise NotFound("this instance signs no checkpoints")
    return Response(signer.verifier_key + "\n", mimetype="text/plain")


@bp.get(CHECKPOINT_PATH)
def checkpoint() -> Response:
    """The newest signed checkpoint of the audit log (keep a copy: it shows the log was not cut later)."""
    newest = pligt().archive.checkpoints.newest()
    if newest is None:
        raise NotFound("no checkpoint yet")
    response = Response(newest.note, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-cache"
    return response


#: How long a browser or a crawler may keep the icon without asking again.
FAVICON_MAX_AGE = 7 * 24 * 3600


@bp.get("/favicon.ico")
def favicon() -> Response:
    """Serve the site's icon: every browser asks for it, and crawlers guess it (a static file, cached a week)."""
    return send_from_directory(
        current_app.static_folder or "static", "favicon.ico", mimetype="image/x-icon", max_age=FAVICON_MAX_AGE
    )


@bp.get("/sitemap.xml")
def sitemap() -> Response:
    """List the pages and every public retained version.

    Protected versions are not listed: their names are for the credential
    holder's eyes; the sitemap names the protected index instead, which lists
    them once the crawler has authenticated.
    """
    versions = pligt().archive.versions(visibility=PUBLIC)
    body = render_template(
        "sitemap.xml",
        pages=[external_url("public.index"), external_url("protected.index"), external_url("access.index")],
        files=[(version_url(v), v.published_at) for v in versions],
    )
    return Response(body, mimetype="application/xml")


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    try:
        pligt().archive.check()
    except StorageError as e:
        return jsonify(status="unavailable", reason=e.message), 503
    return jsonify(status="ok"), 200


@bp.get(VERSION_ROUTE)
@crawler_may_authenticate
def version_file(slug: str, number: int, filename: str) -> Response:
    """Serve one version at its stable URL (public, or protected behind HTTP Basic), as :func:`decide` says."""
    principal = current_principal()
    archive = pligt().archive
    seen = look_up(archive, slug, number, principal)
    if principal is not None and seen.version is not None:
        remember_connection(request.environ, principal.credential_id if seen.credential_active else None)
    answer = decide(request.environ, principal, seen, filename)
    if answer.status == 401:
        return file_challenge()
    if seen.missing is not None:
        raise seen.missing
    version = seen.version
    assert version is not None
    if answer.status == 404:
        message = f"version {number} of {slug!r} is called {version.filename!r}"
        raise keyed(NotFound, "version.named", message, slug=slug, number=number, name=version.filename)
    on_sent = download_record(archive, request.environ, credential_of(principal), version) if answer.record else None
    return send_version(version, answer, on_sent)


@bp.get(LATEST_ROUTE)
@crawler_may_authenticate
def latest(slug: str) -> ResponseReturnValue:
    """Redirect (one hop, absolute) to the item's newest retained version, if :func:`refusal` allows."""
    principal = current_principal()
    seen = look_up(pligt().archive, slug, None, principal)
    if principal is not None and seen.version is not None:
        remember_connection(request.environ, principal.credential_id if seen.credential_active else None)
    refused = refusal(principal, seen)
    if refused == 401:
        return challenge()
    if seen.missing is not None:
        raise seen.missing
    assert seen.version is not None
    response = redirect(version_url(seen.version), code=302)
    response.cache_control.no_cache = True
    return response
