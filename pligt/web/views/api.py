"""The owner's JSON API: publish (streamed body), list and withdraw.

Authenticated with the owner's account over HTTP Basic. Publishing takes the
file as the raw request body, so it streams straight into storage::

    curl -u owner:PASSWORD -X POST -T brochure.pdf \\
      'https://deposit.example.dk/api/items?filename=brochure.pdf&visibility=public'
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint
from flask import Response
from flask import jsonify
from flask import request
from flask import url_for
from werkzeug.exceptions import Forbidden

from pligt.core.credentials.access import DEFAULT_VALID_DAYS
from pligt.core.credentials.access import PAGE_SIZE
from pligt.core.errors import InvalidInput
from pligt.core.errors import TooLarge
from pligt.core.models import Version
from pligt.core.proof.receipts import make_receipt
from pligt.links import version_path
from pligt.release import deliver
from pligt.web.auth import owner_required
from pligt.web.limits import body_chunks
from pligt.web.openapi import openapi_document
from pligt.web.services import pligt
from pligt.web.urls import public_base
from pligt.web.urls import version_url

bp = Blueprint("api", __name__, url_prefix="/api")

_HEAD = re.compile(r"[0-9a-f]{64}")


def version_json(version: Version) -> dict[str, object]:
    data = version.to_dict()
    if not version.withdrawn:
        data["url"] = version_url(version)
    return data


def item_json(versions: list[Version]) -> dict[str, object]:
    latest = versions[-1]
    return {
        "slug": latest.slug,
        "title": latest.title,
        "visibility": latest.visibility,
        "versions": [version_json(v) for v in versions],
    }


@bp.get("/items")
@owner_required
def list_items() -> Response:
    """List every item with all its versions (withdrawn ones included)."""
    versions = pligt().archive.versions(include_withdrawn=True)
    items: dict[str, list[Version]] = {}
    for version in versions:
        items.setdefault(version.slug, []).append(version)
    return jsonify(items=[item_json(v) for v in items.values()])


@bp.get("/items/<slug>")
@owner_required
def get_item(slug: str) -> Response:
    return jsonify(item_json(pligt().archive.item_versions(slug)))


@bp.post("/items")
@owner_required
def publish() -> tuple[Response, int]:
    """Publish the request body as a new version (a new item unless ``slug`` exists).

    Bytes identical to the item's newest version publish nothing: 200 with
    ``"unchanged": true`` and that version (201 is for a new one).
    """
    filename = request.args.get("filename", "")
    if not filename:
        raise InvalidInput("the query parameter 'filename' is required")
    limit = pligt().settings.max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(limit, request.content_length)
    # The archive enforces the limit with a message that names it. Werkzeug's own
    # check (MAX_CONTENT_LENGTH) would refuse a chunked body of exactly ``limit``
    # bytes, so it only stops reading one byte beyond.
    request.max_content_length = limit + 1
    publication = pligt().archive.publish(
        body_chunks(),
        filename=filename,
        slug=request.args.get("slug") or None,
        title=request.args.get("title") or None,
        visibility=request.args.get("visibility") or None,
    )
    body = {
        "version": version_json(publication.version),
        "warnings": publication.warnings,
        "unchanged": publication.unchanged,
    }
    response = jsonify(body)
    if publication.unchanged:
        response.headers["Content-Location"] = version_url(publication.version)
        return response, 200
    response.headers["Location"] = version_url(publication.version)
    return response, 201


@bp.delete("/items/<slug>")
@owner_required
def withdraw_item(slug: str) -> Response:
    withdrawn = pligt().archive.withdraw(slug)
    return jsonify(withdrawn=[version_json(v) for v in withdrawn])


@bp.delete("/items/<slug>/versions/<int:number>")
@owner_required
def withdraw_version(slug: str, number: int) -> Response:
    """Withdraw a version whose retention ended; ``?mistake=true`` takes back one published by mistake.

    A mistake is taken back only within minutes of its publication, while the
    deposit institution has not fetched it (:func:`pligt.core.retention.retractable`).
    """
    mistake = request.args.get("mistake", "").lower() in ("1", "true", "yes")
    withdrawn = pligt().archive.withdraw(slug, number, mistake=mistake)
    return jsonify(withdrawn=[version_json(v) for v in withdrawn])


# -- access requests, credentials, proof of deposit, audit ----------------------------------


@bp.before_request
def _refuse_cross_site() -> None:
    """Refuse browser requests from other sites: a browser may hold the owner's Basic credentials."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != request.host_url.rstrip("/"):
        raise Forbidden("cross-site requests to the owner API are refused")


def _json_body() -> dict[str, Any]:
    if not request.content_length and not request.is_json:
        return {}
    data = request.get_json(silent=True) if request.is_json else None
    if not isinstance(data, dict):
        raise InvalidInput("send a JSON object with Content-Type: application/json")
    return data


def _int(data: dict[str, Any], key: str, default: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{key} must be a whole number")
    return value


def _query_int(name: str) -> int | None:
    """A whole number from the query string, None when absent. :raises InvalidInput: when it is not one."""
    value = request.args.get(name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 18):  # a catalog's integer holds it
        raise InvalidInput(f"{name} must be a whole number")
    return int(value)


@bp.get("/requests")
@owner_required
def list_requests() -> Response:
    """One page of requests (the newest ``limit``, filed before ``before``), oldest first.

    ``next``, only when older requests remain, is the path of the older page.
    """
    status = request.args.get("status")
    asked = _query_int("limit")
    limit = PAGE_SIZE if asked is None else asked
    page = pligt().archive.access.page(status, before=_query_int("before"), limit=limit)
    body: dict[str, Any] = {"requests": [r.to_dict() for r in page.requests]}
    if page.older is not None:
        query: dict[str, Any] = {"before": page.older, "limit": limit}
        if status:
            query["status"] = status
        body["next"] = url_for("api.list_requests", **query)
    return jsonify(body)


@bp.post("/requests/<int:request_id>/approve")
@owner_required
def approve(request_id: int) -> Response:
    """Approve: ``{"valid_days": 365, "show": false}``; the password only with ``show``."""
    data = _json_body()
    approval = pligt().archive.access.approve(request_id, _int(data, "valid_days", DEFAULT_VALID_DAYS))
    return jsonify(deliver(pligt().settings, pligt().archive, approval, bool(data.get("show")), public_base()))


@bp.post("/requests/<int:request_id>/deny")
@owner_required
def deny(request_id: int) -> Response:
    reason = _json_body().get("reason")
    return jsonify(pligt().archive.access.deny(request_id, reason if isinstance(reason, str) else "").to_dict())


@bp.get("/credentials")
@owner_required
def list_credentials() -> Response:
    return jsonify(credentials=[c.to_dict() for c in pligt().archive.access.credentials()])


@bp.post("/credentials/<int:credential_id>/revoke")
@owner_required
def revoke(credential_id: int) -> Response:
    return jsonify(pligt().archive.access.revoke(credential_id).to_dict())


@bp.post("/credentials/<int:credential_id>/rotate")
@owner_required
def rotate(credential_id: int) -> Response:
    data = _json_body()
    approval = pligt().archive.access.rotate(credential_id, _int(data, "valid_days", DEFAULT_VALID_DAYS))
    return jsonify(deliver(pligt().settings, pligt().archive, approval, bool(data.get("show")), public_base()))


@bp.get("/harvest")
@owner_required
def harvest() -> Response:
    rows = pligt().archive.harvest()
    return jsonify(
        harvest=[{**r.to_dict(), "url_path": version_path(r.version), "url": version_url(r.version)} for r in rows]
    )


@bp.get("/items/<slug>/versions/<int:number>/receipt")
@owner_required
def receipt(slug: str, number: int) -> Response:
    """The version's receipt, as ``pligt proof`` writes it (a file to keep, checked offline)."""
    response = jsonify(make_receipt(pligt().archive, slug, number))
    response.headers["Content-Disposition"] = f'attachment; filename="{slug}-v{number}.receipt.json"'
    return response


@bp.get("/audit")
@owner_required
def audit_log() -> Response:
    limit = request.args.get("limit", default=50, type=int) or 50
    entries = pligt().archive.catalog.audit_entries(newest_first=True, limit=min(limit, 1000))
    return jsonify(entries=[e.to_dict() for e in entries])


@bp.get("/audit/verify")
@owner_required
def audit_verify() -> Response:
    kept = request.args.get("head") or None
    # A head is what `pligt audit head` printed; anything else is a malformed request, not a
    # head missing from the log (and the chain's constant-time comparison takes ASCII only).
    if kept is not None and not _HEAD.fullmatch(kept):
        raise InvalidInput("head must be the 64 hexadecimal digits that `pligt audit head` printed")
    seq, head = pligt().archive.verify_audit(kept)
    return jsonify(ok=True, entries=seq, head=head)


@bp.get("/openapi.json")
def openapi() -> Response:
    """Describe this API and ``POST /access/requests`` (OpenAPI 3.1), without credentials.

    Public on purpose: the document describes the software, not this instance (no
    server address, slug or count), and says nothing the README and the source do
    not; the deposit institution's client may read from it how to file a request.
    """
    return jsonify(openapi_document())
