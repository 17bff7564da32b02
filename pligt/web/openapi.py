"""The OpenAPI 3.1 description of the owner API and the JSON access-request endpoint.

Served at ``GET /api/openapi.json`` (pligt/web/views/api.py) and fuzzed by
``tests/test_fuzz_api.py``, which checks every answer against it: a route,
parameter, status or field added to the API belongs here too. The limits and
enumerations come from the modules that enforce them, so the two cannot drift.

The document describes the software, not an instance: no server address, no
slug, no count. It says nothing the README and the source do not.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version
from typing import Any

from pligt.core.credentials.access import DEFAULT_VALID_DAYS
from pligt.core.credentials.access import FIELD_LIMITS
from pligt.core.credentials.access import MAX_PAGE_SIZE
from pligt.core.credentials.access import PAGE_SIZE
from pligt.core.models import BY_CONNECTION
from pligt.core.models import BY_CREDENTIAL
from pligt.core.models import BY_USER_AGENT
from pligt.core.models import FETCHED
from pligt.core.models import NAMED
from pligt.core.models import NOT_FETCHED
from pligt.core.models import PARTIAL
from pligt.core.models import REQUEST_STATUSES
from pligt.core.models import VISIBILITIES
from pligt.core.names import FILENAME_MAX_BYTES
from pligt.core.names import SLUG_MAX
from pligt.core.proof.receipt_check import FORMAT as RECEIPT_FORMAT
from pligt.core.retention import MISTAKE_WINDOW
from pligt.web.limits import SMALL_BODY_BYTES

Schema = dict[str, Any]

#: The credential lifetimes the access desk accepts (pligt/core/credentials/access.py).
VALID_DAYS_RANGE = (1, 3660)
#: The longest reason a denial takes (pligt/core/credentials/access.py).
REASON_MAX = 1000
#: The access request's fields that must not be empty, and the control characters its message may hold.
REQUIRED_FIELDS = ("institution", "contact_name", "contact_email")
MESSAGE_CONTROLS = "\n\t\r"

_SLUG_PATTERN = rf"^[a-z0-9](?:[a-z0-9-]{{0,{SLUG_MAX - 2}}}[a-z0-9])?$"


def _visible_text(*, allowed: str = "", required: bool = False) -> str:
    """A pattern for text without control or invisible characters (pligt/core/text.py), but ``allowed``.

    The characters are spelled out for the Basic Multilingual Plane only, as ``\\uXXXX``
    (what every regex dialect reads alike); the few format characters beyond it are
    refused all the same. ``required``: at least one character that is not white space.
    """
    hidden = "".join(
        _escape(first) if first == last else f"{_escape(first)}-{_escape(last)}"
        for first, last in _ranges(
            c for c in range(0x10000) if unicodedata.category(chr(c)) in ("Cc", "Cf") and chr(c) not in allowed
        )
    )
    if required:
        return f"^[^{hidden}]*[^\\s{hidden}][^{hidden}]*$"
    return f"^[^{hidden}]*$"


def _escape(code_point: int) -> str:
    return f"\\u{code_point:04x}"


def _ranges(code_points: Iterable[int]) -> list[tuple[int, int]]:
    """Runs of consecutive code points, as (first, last)."""
    runs: list[tuple[int, int]] = []
    for c in code_points:
        if runs and runs[-1][1] == c - 1:
            runs[-1] = (runs[-1][0], c)
        else:
            runs.append((c, c))
    return runs


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Schema], *, required: tuple[str, ...] | None = None) -> Schema:
    """An object with ``properties``, all of them required unless ``required`` names fewer."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
    }


def _json(schema: Schema, description: str, headers: dict[str, Any] | None = None) -> Schema:
    response: Schema = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


_TIME = {"type": "string", "format": "date-time", "description": "UTC, to the second: 2026-07-07T12:00:00Z"}
_TIME_OR_NULL = _nullable(_TIME)
_TEXT_OR_NULL = _nullable({"type": "string"})
_ID = {"type": "integer", "minimum": 1}

_ERROR_DESCRIPTIONS = {
    400: "The request is malformed or a value is refused; the description says which and why.",
    401: "No owner credentials, or wrong ones: the challenge names the owner's realm.",
    403: "A browser request from another site (an Origin that is not this server).",
    404: "No such item, version, request or credential (or no such path).",
    409: "Refused in the current state: inside retention (naming the date), already decided, revoked, "
    "a visibility that contradicts the item's, or an audit chain that does not verify.",
    410: "The version was already withdrawn.",
    413: "The body is larger than the limit of this route.",
    415: "The body is not what the route takes: content refused by type, or not JSON.",
    429: "Too many attempts from this client; Retry-After says when to try again.",
    503: "The storage or the catalog cannot be used right now, or the clock is behind the catalog.",
    507: "The storage is full.",
}

_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "string"}},
}
_CHALLENGE = {
    "WWW-Authenticate": {
        "description": 'Basic realm="…", charset="UTF-8"',
        "required": True,
        "schema": {"type": "string"},
    },
}


def _errors(*codes: int) -> dict[str, Schema]:
    """The error responses ``codes``, each ``{"code", "name", "description"}``."""
    return {str(code): {"$ref": f"#/components/responses/Error{code}"} for code in codes}


#: What any route of the owner API can answer besides its own: no or wrong credentials, a
#: browser from elsewhere, a locked-out guesser, a body beyond the small limit, the storage down.
_OWNER_ERRORS = (401, 403, 413, 429, 503)


def _owner(
    summary: str,
    responses: dict[str, Schema],
    *,
    errors: tuple[int, ...] = (),
    parameters: list[Schema] | None = None,
    body: Schema | None = None,
    description: str | None = None,
) -> Schema:
    operation: Schema = {
        "summary": summary,
        "tags": ["owner"],
        "security": [{"owner": []}],
        "responses": {**responses, **_errors(*sorted({*errors, *_OWNER_ERRORS}))},
    }
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    return operation


def _path_id(name: str, what: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "description": what, "schema": _ID}


def _query(name: str, schema: Schema, description: str, *, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


_SLUG_PARAMETER = {
    "name": "slug",
    "in": "path",
    "required": True,
    "description": "The item's stable name in its URLs.",
    "schema": {"type": "string", "pattern": _SLUG_PATTERN, "maxLength": SLUG_MAX},
}


def _decision_body(what: str) -> Schema:
    return {
        "required": False,
        "description": f"Optional; without a body {what} uses the defaults.",
        "content": {"application/json": {"schema": _ref("Decision")}},
    }


def _schemas() -> dict[str, Schema]:
    version_properties: dict[str, Schema] = {
        "slug": {"type": "string"},
        "title": {"type": "string"},
        "visibility": {"enum": list(VISIBILITIES)},
        "version": {"type": "integer", "minimum": 1},
        "filename": {"type": "string"},
        "size": {"type": "integer", "minimum": 0},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "sha1": _nullable({"type": "string", "pattern": "^sha1:[A-Z2-7]{32}$"}),
        "content_type": {"type": "string"},
        "published_at": _TIME,
        "retain_until": _TIME,
        "withdrawn_at": _TIME_OR_NULL,
        "url": {"type": "string", "format": "uri", "description": "Absent once withdrawn."},
    }
    request_fields = {
        name: {
            "type": "string",
            "maxLength": limit,
            "pattern": _visible_text(
                allowed=MESSAGE_CONTROLS if name == "message" else "", required=name in REQUIRED_FIELDS
            ),
            **({"format": "email"} if name == "contact_email" else {}),
        }
        for name, limit in FIELD_LIMITS.items()
    }
    delivery = _object(
        {
            "request": _ID,
            "credential": _ID,
            "domain": {"type": "string", "description": "host:port as Heritrix files this server"},
            "realm": {"type": "string"},
            "username": {"type": "string"},
            "base_url": {"type": "string"},
            "protected_index": {"type": "string"},
            "expires_at": _TIME,
            "password": {"type": "string", "description": "Only with show."},
            "heritrix_credential": {"type": "string", "description": "Only with show: the Spring bean."},
            "release_emailed_to": _nullable({"type": "string", "description": "Without show."}),
            "release_link": _nullable({"type": "string", "description": "Without show, when not emailed."}),
            "release_expires_at": {**_TIME, "description": "Without show."},
        },
        required=("request", "credential", "domain", "realm", "username", "base_url", "protected_index", "expires_at"),
    )
    return {
        "Error": _object(
            {
                "code": {"type": "integer", "minimum": 400, "maximum": 599},
                "name": {"type": "string"},
                "description": {"type": "string"},
            }
        ),
        "InvalidRequestError": {
            "allOf": [
                _ref("Error"),
                _object({"errors": {"type": "object", "additionalProperties": {"type": "string"}}}, required=()),
            ],
        },
        "Version": _object(version_properties, required=tuple(k for k in version_properties if k != "url")),
        "Item": _object(
            {
                "slug": {"type": "string"},
                "title": {"type": "string"},
                "visibility": {"enum": list(VISIBILITIES)},
                "versions": {"type": "array", "items": _ref("Version"), "minItems": 1},
            }
        ),
        "Publication": _object(
            {
                "version": _ref("Version"),
                "warnings": {"type": "array", "items": {"type": "string"}},
                "unchanged": {
                    "type": "boolean",
                    "description": "true: the bytes were those of the item's newest version, which is the version "
                    "named; nothing was published.",
                },
            }
        ),
        "Withdrawn": _object({"withdrawn": {"type": "array", "items": _ref("Version")}}),
        "AccessRequest": _object(
            {
                "id": _ID,
                "status": {"enum": list(REQUEST_STATUSES)},
                "personal_data": {
                    "enum": ["readable", "erased", "unreadable"],
                    "description": "unreadable: sealed, and its key is not in the key store (erased since, or lost)",
                },
                **{name: _TEXT_OR_NULL for name in FIELD_LIMITS},
                "created_at": _TIME,
                "decided_at": _TIME_OR_NULL,
                "decision_reason": _TEXT_OR_NULL,
                "closed_at": _TIME_OR_NULL,
            }
        ),
        "NewAccessRequest": {
            **_object(request_fields, required=REQUIRED_FIELDS),
            "description": "Values are trimmed; legal_basis defaults to the Legal Deposit Act. Control and "
            "invisible characters are refused (message may hold line breaks and tabs).",
        },
        "Filed": _object({"id": _ID, "status": {"const": "pending"}}),
        "Decision": _object(
            {
                "valid_days": {
                    "type": "integer",
                    "minimum": VALID_DAYS_RANGE[0],
                    "maximum": VALID_DAYS_RANGE[1],
                    "default": DEFAULT_VALID_DAYS,
                },
                "show": {
                    "type": "boolean",
                    "default": False,
                    "description": "Hand the password to the owner now (and spend the release link).",
                },
            },
            required=(),
        ),
        "Denial": _object({"reason": {"type": "string", "minLength": 1, "maxLength": REASON_MAX}}),
        "Credential": _object(
            {
                "id": _ID,
                "request_id": _ID,
                "username": {"type": "string"},
                "created_at": _TIME,
                "expires_at": _TIME,
                "revoked_at": _TIME_OR_NULL,
            }
        ),
        "Delivery": delivery,
        "HarvestRow": _object(
            {
                "request": _ID,
                "institution": _TEXT_OR_NULL,
                "credentials": {"type": "array", "items": _ID},
                "credential": _nullable(_ID),
                "username": _TEXT_OR_NULL,
                "slug": {"type": "string"},
                "version": {"type": "integer", "minimum": 1},
                "filename": {"type": "string"},
                "visibility": {"enum": list(VISIBILITIES)},
                "size": {"type": "integer", "minimum": 0},
                "sha256": {"type": "string"},
                "sha1": _TEXT_OR_NULL,
                "state": {"enum": [FETCHED, PARTIAL, NAMED, NOT_FETCHED]},
                "attributed_by": _nullable({"enum": [BY_CREDENTIAL, BY_CONNECTION, BY_USER_AGENT]}),
                "crawler": _TEXT_OR_NULL,
                "fetched_at": _TIME_OR_NULL,
                "complete_at": _TIME_OR_NULL,
                "revisit_confirmed_at": _TIME_OR_NULL,
                "revisit_credential": _nullable(_ID),
                "not_modified_at": _TIME_OR_NULL,
                "not_modified_credential": _nullable(_ID),
                "anonymous_complete_at": _TIME_OR_NULL,
                "url_path": {"type": "string"},
                "url": {"type": "string", "format": "uri"},
            }
        ),
        "AuditEntry": _object(
            {
                "seq": _ID,
                "at": {"type": "string"},
                "action": {"type": "string"},
                "data": {"type": "object"},
                "personal": _nullable({"type": "object"}),
                "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            }
        ),
        "AuditVerified": _object(
            {
                "ok": {"const": True},
                "entries": {"type": "integer", "minimum": 0},
                "head": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            }
        ),
        "Receipt": {
            "type": "object",
            "description": "A version's receipt (pligt proof): check it offline with pligt verify-proof or "
            "pligt/core/proof/receipt_check.py.",
            "properties": {
                "format": {"const": RECEIPT_FORMAT},
                "made_at": _TIME,
                "version": {"type": "object"},
                "entries": {"type": "array", "items": {"type": "object"}},
                "proofs": {"type": "array", "items": {"type": "object"}},
                "checkpoint": {"type": "object"},
                "public_key": {"type": "string"},
                "does_not_prove": {"type": "string"},
            },
            "required": ["format", "made_at", "version", "entries", "proofs", "checkpoint", "public_key"],
        },
    }


def _error_responses() -> dict[str, Schema]:
    responses = {}
    for code, description in _ERROR_DESCRIPTIONS.items():
        headers = _CHALLENGE if code == 401 else _RETRY_AFTER if code in (429, 503) else None
        responses[f"Error{code}"] = _json(_ref("Error"), description, headers)
    responses["InvalidAccessRequest"] = _json(
        _ref("InvalidRequestError"), "A field is missing or refused; errors names each such field."
    )
    return responses


def _requests_page() -> Schema:
    page = _object(
        {
            "requests": {"type": "array", "items": _ref("AccessRequest")},
            "next": {"type": "string", "description": "The older page's path and query; absent on the last page."},
        },
        required=("requests",),
    )
    return _json(page, "The newest requests filed before before, oldest first on the page; next: the older page.")


def _paths() -> dict[str, Schema]:
    list_of = {
        name: _json(_object({key: {"type": "array", "items": _ref(schema)}}), description)
        for name, key, schema, description in (
            ("items", "items", "Item", "Every item with all its versions, withdrawn ones included."),
            ("credentials", "credentials", "Credential", "Every crawler credential; never a password."),
            ("harvest", "harvest", "HarvestRow", "Per access request and retained version, what its crawler did."),
            ("audit", "entries", "AuditEntry", "The newest entries of the audit log, newest first."),
        )
    }
    withdrawn = _json(_ref("Withdrawn"), "The versions withdrawn now.")
    delivery = _json(
        _ref("Delivery"),
        "The new credential: with show, its password and Heritrix bean; else the single-use release link "
        "(or the address it was emailed to).",
    )
    return {
        "/api/openapi.json": {
            "get": {
                "summary": "This description",
                "description": "Public: it describes the software, not an instance, and says nothing the "
                "README and the source do not. A deposit institution's client may read how to file a request.",
                "tags": ["meta"],
                "security": [],
                "responses": {
                    "200": _json({"type": "object"}, "An OpenAPI 3.1 document."),
                    **_errors(403, 413),
                },
            }
        },
        "/api/items": {
            "get": _owner("List every item and its versions", {"200": list_of["items"]}),
            "post": _owner(
                "Publish the body as a new version",
                {
                    "201": _json(
                        _ref("Publication"),
                        "Published; warnings say, e.g., that it is larger than the crawler's per-fetch budget.",
                        {"Location": {"description": "The version's URL.", "schema": {"type": "string"}}},
                    ),
                    "200": _json(
                        _ref("Publication"),
                        "Unchanged: the body is byte for byte the item's newest version, so nothing was published "
                        "(no new version, nothing stored, nothing audited); the answer names that version, with "
                        '"unchanged": true.',
                        {"Content-Location": {"description": "That version's URL.", "schema": {"type": "string"}}},
                    ),
                },
                errors=(400, 409, 415, 507),
                description="The body is the file's bytes as they are (any Content-Type), streamed into storage "
                "up to max_upload_bytes. Its type is decided from the bytes and must match the name's extension; "
                "empty files and programs are refused. A new item unless slug names one. Bytes identical to the "
                "item's newest version publish nothing (200, unchanged). Send it with POST: a PUT here (curl -T "
                "without -X POST) is answered 405, with Allow and a description saying to use POST.",
                parameters=[
                    _query(
                        "filename",
                        {"type": "string", "minLength": 1, "maxLength": FILENAME_MAX_BYTES},
                        "The name it is published under: no / or \\, no leading dot, no control characters, "
                        f"at most {FILENAME_MAX_BYTES} bytes of UTF-8.",
                        required=True,
                    ),
                    _query(
                        "slug",
                        {"type": "string", "pattern": _SLUG_PATTERN, "maxLength": SLUG_MAX},
                        "An existing item to add a version to, or a new item's slug (default: from the title or "
                        "the file name).",
                    ),
                    _query("title", {"type": "string", "maxLength": 200}, "Default: the item's, or the file name."),
                    _query(
                        "visibility",
                        {"enum": list(VISIBILITIES)},
                        "A new item's (default protected); an existing item's may not change.",
                    ),
                ],
                body={
                    "required": True,
                    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                },
            ),
        },
        "/api/items/{slug}": {
            "parameters": [_SLUG_PARAMETER],
            "get": _owner(
                "One item and all its versions",
                {"200": _json(_ref("Item"), "The item.")},
                errors=(400, 404),
            ),
            "delete": _owner(
                "Withdraw every version of the item",
                {"200": withdrawn},
                errors=(400, 404, 409, 410),
                description="Refused (409, naming the date) while any version is inside its retention.",
            ),
        },
        "/api/items/{slug}/versions/{number}": {
            "parameters": [_SLUG_PARAMETER, _path_id("number", "The version's number.")],
            "delete": _owner(
                "Withdraw one version",
                {"200": withdrawn},
                errors=(400, 404, 409, 410),
                description="Refused (409, naming the date) while the version is inside its retention; with "
                f"mistake=true, a version published by mistake is taken back within "
                f"{MISTAKE_WINDOW.seconds // 60} minutes of its publication while the deposit institution has "
                "not fetched it (by a credential, or under its crawler's User-Agent), audited as version.retracted.",
                parameters=[
                    _query(
                        "mistake",
                        {"enum": ["true", "false"]},
                        "Take back a version published by mistake (see the description).",
                    )
                ],
            ),
        },
        "/api/requests": {
            "get": _owner(
                "List access requests, a page at a time",
                {"200": _requests_page()},
                parameters=[
                    _query("status", {"enum": list(REQUEST_STATUSES)}, "Only requests with this status."),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": PAGE_SIZE},
                        "How many requests on the page: the newest ones (filed before before).",
                    ),
                    _query("before", _ID, "Only requests filed before this one: the next page's link says it."),
                ],
                errors=(400,),
            ),
        },
        "/api/requests/{request_id}/approve": {
            "parameters": [_path_id("request_id", "The access request.")],
            "post": _owner(
                "Approve a pending request: one new credential",
                {"200": delivery},
                errors=(400, 404, 409),
                body=_decision_body("the approval"),
            ),
        },
        "/api/requests/{request_id}/deny": {
            "parameters": [_path_id("request_id", "The access request.")],
            "post": _owner(
                "Deny a pending request",
                {"200": _json(_ref("AccessRequest"), "The request, denied.")},
                errors=(400, 404, 409),
                body={"required": True, "content": {"application/json": {"schema": _ref("Denial")}}},
            ),
        },
        "/api/credentials": {
            "get": _owner("List crawler credentials", {"200": list_of["credentials"]}),
        },
        "/api/credentials/{credential_id}/revoke": {
            "parameters": [_path_id("credential_id", "The credential.")],
            "post": _owner(
                "Revoke a credential: refused from the very next request on",
                {"200": _json(_ref("Credential"), "The credential, revoked.")},
                errors=(404, 409),
            ),
        },
        "/api/credentials/{credential_id}/rotate": {
            "parameters": [_path_id("credential_id", "The credential.")],
            "post": _owner(
                "Replace a credential with a new one for the same request",
                {"200": delivery},
                errors=(400, 404, 409),
                body=_decision_body("the rotation"),
            ),
        },
        "/api/harvest": {
            "get": _owner("Proof of deposit", {"200": list_of["harvest"]}),
        },
        "/api/items/{slug}/versions/{number}/receipt": {
            "parameters": [_SLUG_PARAMETER, _path_id("number", "The version's number.")],
            "get": _owner(
                "The version's receipt: publication, retention, digests and the crawler's fetches, proven",
                {"200": _json(_ref("Receipt"), "The receipt (as pligt proof writes it).")},
                errors=(400, 404),
                description="Records the crawler's fetches into the audit log, signs a checkpoint and asks the "
                "TSA for its time stamp first (a TSA that does not answer leaves the receipt unstamped).",
            ),
        },
        "/api/audit": {
            "get": _owner(
                "The newest audit entries",
                {"200": list_of["audit"]},
                parameters=[
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                        "How many (at most 1000; anything else that is not a whole number: 50).",
                    )
                ],
            ),
        },
        "/api/audit/verify": {
            "get": _owner(
                "Verify the whole audit chain",
                {"200": _json(_ref("AuditVerified"), "The chain verifies (and holds head); its last entry.")},
                errors=(400, 409),
                parameters=[
                    _query(
                        "head",
                        {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                        "A head kept earlier (pligt audit head): the log must still contain it.",
                    )
                ],
            ),
        },
        "/access/requests": {
            "post": {
                "summary": "File an access request (the deposit institution)",
                "description": "Anonymous. Throttled per client and paused while too many requests wait. Errors "
                "are JSON whatever the Accept header says.",
                "tags": ["access"],
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("NewAccessRequest")}},
                },
                "responses": {
                    "201": _json(
                        _ref("Filed"),
                        "Filed; the owner decides.",
                        {"Location": {"description": "The access page.", "schema": {"type": "string"}}},
                    ),
                    "400": {"$ref": "#/components/responses/InvalidAccessRequest"},
                    **_errors(413, 415, 429, 503),
                },
            }
        },
    }


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of the owner API and ``POST /access/requests``."""
    try:
        release = version("pligt")
    except PackageNotFoundError:  # running from a checkout that was never installed
        release = "0+unknown"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Pligt owner API",
            "version": release,
            "description": "The owner's API (HTTP Basic as owner) and the deposit institution's JSON access "
            "request. Every error is JSON: {code, name, description}. Request bodies other than uploads may "
            f"have at most {SMALL_BODY_BYTES:,} bytes.",
        },
        "tags": [
            {"name": "owner", "description": "HTTP Basic with the owner's account."},
            {"name": "access", "description": "Anonymous: the deposit institution."},
            {"name": "meta"},
        ],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "owner": {"type": "http", "scheme": "basic", "description": "username owner, and its password"}
            },
            "schemas": _schemas(),
            "responses": _error_responses(),
        },
    }
