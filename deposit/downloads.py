"""Streaming one stored version to a client, as HTTP says and crawlers need.

Range, HEAD, ETag, Last-Modified and the conditional requests are werkzeug's;
the bytes are streamed from storage (``wsgi.file_wrapper``, so a WSGI server
that can will use sendfile) and never held in memory.
"""

from __future__ import annotations

from flask import Response
from flask import request
from flask import send_file
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.http import parse_range_header

from archive.models import PUBLIC
from archive.models import Version

from . import pligt

#: Versions are immutable; their URLs change only by answering 410 after retention.
_MAX_AGE = 24 * 3600


def send_version(version: Version) -> Response:
    """Stream ``version`` with the headers a crawler and a browser need."""
    stream = pligt().archive.open(version)
    try:
        response = send_file(
            stream,
            mimetype=version.content_type.split(";")[0],
            download_name=version.filename,
            conditional=False,
            etag=version.sha256,
            last_modified=version.published_at,
        )
        response.headers["Content-Type"] = version.content_type
        response.content_length = version.size
        response.cache_control.no_cache = None
        response.cache_control.max_age = _MAX_AGE
        if version.visibility == PUBLIC:
            response.cache_control.public = True
        else:
            response.cache_control.private = True
        return response.make_conditional(_environ_for_ranges(), accept_ranges=True, complete_length=version.size)
    except RequestedRangeNotSatisfiable:
        stream.close()
        raise


def _environ_for_ranges() -> dict[str, object]:
    """Return the request's environ, without a Range header we do not serve.

    HTTP (RFC 9110, 14.2) says to ignore a Range with a unit other than bytes,
    and allows ignoring a malformed one or several ranges: the client then gets
    the whole file (200), which is better than werkzeug's 416 for them. A
    single byte range that lies beyond the end still answers 416.
    """
    environ = request.environ
    header = environ.get("HTTP_RANGE")
    if header is None:
        return environ
    parsed = parse_range_header(header)
    if parsed is not None and parsed.units == "bytes" and len(parsed.ranges) == 1:
        return environ
    return {key: value for key, value in environ.items() if key != "HTTP_RANGE"}
