"""What a GET or HEAD of one version's URL answers, decided once, without I/O.

Every path that answers a version — the Flask view (pligt/web/views/public.py)
and the download layer in front of Flask (pligt/web/fastpath.py) — looks the
URL up with :func:`look_up` and then asks :func:`decide`; each only renders
what was decided. So a withdrawal, a lapsed credential, a precondition or a
range is judged the same whichever path a request took.

The decision, in order:

1. No such version, or one withdrawn after its retention ended: 404 or 410 —
   but 401 for a request without credentials, unless the item is public, so
   that nobody learns which protected items exist from 404s and 401s.
2. A protected version, and no owner or active crawler credential: 401.
3. The file name in the URL is not the version's: 404.
4. The preconditions in RFC 9110's order (§13.2.2), then the range
   (:func:`evaluate`): 412, 304, 416, 206 or 200.

A download is recorded (proof of deposit) for a GET by a crawler credential or
an anonymous client, never the owner's, when it answers 200, 206 or a 304
that names this very version.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from werkzeug.http import parse_date
from werkzeug.http import parse_etags
from werkzeug.http import parse_range_header
from werkzeug.http import unquote_etag

from pligt.core import Archive
from pligt.core.credentials.auth import OWNER
from pligt.core.credentials.auth import Principal
from pligt.core.errors import Gone
from pligt.core.errors import InvalidInput
from pligt.core.errors import NotFound
from pligt.core.models import PROTECTED
from pligt.core.models import PUBLIC
from pligt.core.models import Version


@dataclass(frozen=True, slots=True)
class Seen:
    """What the catalog says of a version's URL, for one requester."""

    #: The version, or None: no such item or version (``missing`` says why), or withdrawn (``gone``).
    version: Version | None
    #: None when no credential was presented; else whether it is still valid.
    credential_active: bool | None = None
    #: Why there is no version to serve: the core's NotFound or Gone (its message is the answer's).
    missing: NotFound | Gone | None = None
    #: Whether the item is public (asked only when there is no version and nobody authenticated).
    item_public: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """What a GET or HEAD of one version's URL answers."""

    #: 200, 206, 304, 401, 404, 410, 412 (a precondition failed) or 416 (the range lies beyond the end).
    status: int
    #: For a 206: the bytes sent, ``start`` up to (not including) ``stop``.
    span: tuple[int, int] | None = None
    #: Whether the download is recorded (see the module's docstring).
    record: bool = False


#: The request headers :func:`evaluate` reads.
CONDITIONS = frozenset(
    {
        "HTTP_IF_MATCH",
        "HTTP_IF_UNMODIFIED_SINCE",
        "HTTP_IF_NONE_MATCH",
        "HTTP_IF_MODIFIED_SINCE",
        "HTTP_RANGE",
        "HTTP_IF_RANGE",
    }
)


def look_up(archive: Archive, slug: str, number: int | None, principal: Principal | None) -> Seen:
    """Ask the catalog (through the archive's lookups) what :func:`decide` needs about one URL.

    ``number=None``: the item's newest retained version (its "latest" URL).
    """
    credential_id = principal.credential_id if principal is not None else None
    try:
        found = archive.find_download(slug, number, credential_id)
    except (NotFound, Gone) as e:
        return Seen(None, None, e, principal is None and _public_item(archive, slug))
    return Seen(found.version, found.credential_active)


def _public_item(archive: Archive, slug: str) -> bool:
    try:
        return archive.item_versions(slug)[0].visibility == PUBLIC
    except (NotFound, InvalidInput):
        return False


def refusal(principal: Principal | None, seen: Seen) -> int | None:
    """Return 401, 404 or 410 if ``principal`` may not read what ``seen`` found, else None (steps 1–2 above).

    The "latest" URL of an item asks this too, before it redirects.
    """
    version = seen.version
    if version is None:
        if principal is None and not seen.item_public:
            return 401  # an unknown, a protected and a withdrawn protected URL look alike
        return 410 if isinstance(seen.missing, Gone) else 404
    if version.visibility == PROTECTED and not may_read_protected(principal, seen.credential_active):
        return 401
    return None


def decide(environ: Mapping[str, Any], principal: Principal | None, seen: Seen, filename: str) -> Answer:
    """Decide a GET or HEAD of a version's URL (see the module's docstring for the order)."""
    refused = refusal(principal, seen)
    if refused is not None:
        return Answer(refused)
    version = seen.version
    assert version is not None
    if unicodedata.normalize("NFC", filename) != version.filename:
        return Answer(404)
    answer = evaluate(environ, version)
    # Proof of deposit: what crawler credentials (and anonymous clients, for public
    # material) fetched. The owner's own downloads prove nothing and are not kept.
    recorded = environ.get("REQUEST_METHOD") == "GET" and (principal is None or principal.kind != OWNER)
    if not recorded or answer.status in (412, 416) or (answer.status == 304 and not answer.record):
        return Answer(answer.status, answer.span)
    return Answer(answer.status, answer.span, record=True)


def may_read_protected(principal: Principal | None, credential_active: bool | None) -> bool:
    """Tell whether ``principal`` may read protected material right now (the owner, or an active credential)."""
    if principal is None:
        return False
    return principal.kind == OWNER or bool(credential_active)


WHOLE = Answer(200)


def evaluate(environ: Mapping[str, Any], version: Version) -> Answer:
    """Decide the preconditions (RFC 9110 §13.2.2's order), then the range, of a readable version.

    1. ``If-Match`` (strong comparison; ``*`` matches): 412 unless it matches.
    2. Without ``If-Match``, ``If-Unmodified-Since``: 412 if modified since.
    3. ``If-None-Match`` (weak comparison): 304 if it matches.
    4. Without ``If-None-Match``, ``If-Modified-Since``: 304 unless modified since.
    5. ``Range`` (GET only), if ``If-Range`` (if any) matches strongly: 206 or 416.
    6. Otherwise the whole file (200).

    The ETag is the SHA-256 (strong: versions never change); Last-Modified is
    the publication time, to the second as HTTP dates are. A header that does
    not parse is ignored, and so is a Range HTTP lets a server ignore (RFC 9110,
    §14.2: another unit, several ranges, a malformed one): the client then gets
    the whole file, which serves it better than a 416. A 304's ``record`` says
    whether the request named this very version (its own ETag, or a date at or
    after its Last-Modified): ``*`` names none.
    """
    if not environ.keys() & CONDITIONS:
        return WHOLE  # the plain download: nothing to decide
    etag = version.sha256
    modified = version.published_at.replace(microsecond=0)
    failed = _precondition_failed(environ, etag, modified)
    if failed is not None:
        return failed
    not_modified = _not_modified(environ, etag, modified)
    if not_modified is not None:
        return not_modified
    return _range(environ, version, etag, modified)


def _precondition_failed(environ: Mapping[str, Any], etag: str, modified: datetime) -> Answer | None:
    if_match = parse_etags(environ.get("HTTP_IF_MATCH"))
    if if_match:
        return None if if_match.contains(etag) else Answer(412)
    unmodified_since = parse_date(environ.get("HTTP_IF_UNMODIFIED_SINCE"))
    if unmodified_since is not None and modified > unmodified_since:
        return Answer(412)
    return None


def _not_modified(environ: Mapping[str, Any], etag: str, modified: datetime) -> Answer | None:
    if_none_match = parse_etags(environ.get("HTTP_IF_NONE_MATCH"))
    if if_none_match:
        if if_none_match.contains_weak(etag):
            return Answer(304, record=if_none_match.is_strong(etag) or if_none_match.is_weak(etag))
        return None
    modified_since = parse_date(environ.get("HTTP_IF_MODIFIED_SINCE"))
    if modified_since is not None and modified <= modified_since:
        return Answer(304, record=True)
    return None


def _range(environ: Mapping[str, Any], version: Version, etag: str, modified: datetime) -> Answer:
    header = environ.get("HTTP_RANGE")
    if header is None or environ.get("REQUEST_METHOD") != "GET" or version.size == 0:
        return WHOLE
    ranges = parse_range_header(header)
    if ranges is None or ranges.units != "bytes" or len(ranges.ranges) != 1:
        return WHOLE
    if_range = environ.get("HTTP_IF_RANGE")
    if if_range is not None and not _if_range_holds(if_range, etag, modified):
        return WHOLE
    span = ranges.range_for_length(version.size)
    return Answer(416) if span is None else Answer(206, span)


def _if_range_holds(value: str, etag: str, modified: datetime) -> bool:
    """Tell whether ``If-Range`` names this very version: its strong ETag, or exactly its Last-Modified."""
    date = parse_date(value)
    if date is not None:
        return date == modified
    tag, weak = unquote_etag(value)
    return not weak and value.strip().startswith('"') and tag == etag
