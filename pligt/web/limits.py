"""How large a request body may be: small everywhere, large only where the owner uploads.

Anyone on the internet can send a body to the request form, the sign-in page
or the JSON endpoint; only the owner's upload routes need the instance's
``max_upload_bytes``. Werkzeug refuses a larger body with 413 as soon as it
knows (a ``Content-Length`` over the limit, or a chunked body that passes it)
and before it parses or spools anything, so a worker's memory and the
temporary folder stay flat whatever is sent.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Flask
from flask import request
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import RequestEntityTooLarge

from pligt.core.deposits import read_chunks
from pligt.core.errors import InvalidInput
from pligt.web.services import pligt

#: Every route but the owner's uploads: enough for any form or JSON request we take.
SMALL_BODY_BYTES = 64 * 1024

#: The owner's routes that take files (the owner API sets its own, exact limit).
UPLOAD_ENDPOINTS = frozenset({"admin.upload", "admin.upload_raw"})


def _limit_body() -> None:
    """Raise the limit for uploads; read any other body now, so that a large one is a 413 here.

    A small body is read whole and kept for the form or JSON parser. Reading it
    first also tells a chunked body that passes the limit (werkzeug stops at the
    limit without looking further) from one that ends there.
    """
    if request.endpoint == "api.publish":
        return  # the owner API sets its own, exact limit
    if request.endpoint in UPLOAD_ENDPOINTS:
        request.max_content_length = pligt().settings.max_upload_bytes
        return
    if request.content_length or "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        request.max_content_length = SMALL_BODY_BYTES + 1
        if len(request.get_data(cache=True)) > SMALL_BODY_BYTES:
            raise RequestEntityTooLarge(f"a request body here may have at most {SMALL_BODY_BYTES:,} bytes")


def body_chunks() -> Iterator[bytes]:
    """Yield the request body in chunks; a body that breaks off or is badly framed is the client's error.

    Gunicorn reports a bad chunk size, a chunk without its CRLF and a body cut
    short with exceptions of its own; the archive then keeps nothing, and the
    client gets a 400 naming the problem instead of a 500.

    :raises InvalidInput: for a body that cannot be read to its end.
    """
    expected = request.content_length
    received = 0
    try:
        for chunk in read_chunks(request.stream):
            received += len(chunk)
            yield chunk
    except HTTPException:
        raise  # a body too large or too slow already has its answer
    except Exception as e:  # the WSGI server's read errors share no base class (gunicorn: ParseException, OSError)
        raise InvalidInput(f"the request body could not be read to its end ({e or type(e).__name__})") from None
    if expected is not None and received < expected:
        raise InvalidInput(f"the upload ended after {received:,} of {expected:,} bytes: the connection was cut off")


def init_app(app: Flask) -> None:
    """Set the small default limit and raise it for the upload routes, before any body is read."""
    app.config["MAX_CONTENT_LENGTH"] = SMALL_BODY_BYTES + 1
    app.before_request(_limit_body)
