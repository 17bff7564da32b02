"""Streaming one stored version to a client, as HTTP says and crawlers need.

Range, HEAD, ETag, Last-Modified and the conditional requests are werkzeug's;
the bytes are streamed from storage (``wsgi.file_wrapper``, so a WSGI server
that can will use sendfile) and never held in memory, except small versions'
(archive/small_files.py).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import BinaryIO
from typing import cast

from flask import Response
from flask import request
from flask import send_file
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.http import parse_range_header
from werkzeug.wsgi import FileWrapper

from archive.models import PUBLIC
from archive.models import Version

from .services import pligt

log = logging.getLogger("pligt")

#: Versions are immutable; their URLs change only by answering 410 after retention.
MAX_AGE = 24 * 3600


def send_version(version: Version, on_sent: Callable[[int, int], None] | None = None) -> Response:
    """Stream ``version`` with the headers a crawler and a browser need.

    :param on_sent: called once the response is closed, with its status and
        the number of body bytes handed to the client (proof of deposit).
    """
    archive = pligt().archive
    small = archive.read_small(version)  # small versions come from memory, checked against their digest
    source: BinaryIO = io.BytesIO(small) if small is not None else archive.open(version)
    counting = CountingFile(source) if on_sent is not None else None
    # A counting proxy reads, seeks and hands out its descriptor like the file itself.
    stream = cast(BinaryIO, counting) if counting is not None else source
    environ = _environ_for_ranges()
    try:
        response = send_file(
            stream,
            mimetype=version.content_type.split(";")[0],
            download_name=version.filename,
            conditional=False,
            etag=version.sha256,
            last_modified=version.published_at,
        )
        if "HTTP_RANGE" in environ:
            # werkzeug's wrapper can seek, so a range skips straight to its start;
            # whole files keep the server's own wrapper, which uses sendfile.
            response.response = FileWrapper(stream)
        response.headers["Content-Type"] = version.content_type
        response.content_length = version.size
        response.cache_control.no_cache = None
        response.cache_control.max_age = MAX_AGE
        if version.visibility == PUBLIC:
            response.cache_control.public = True
        else:
            response.cache_control.private = True
        response.make_conditional(environ, accept_ranges=True, complete_length=version.size)
    except RequestedRangeNotSatisfiable:
        stream.close()
        raise
    if counting is not None and on_sent is not None:
        content_range = response.content_range
        start = content_range.start or 0 if content_range and response.status_code == 206 else 0
        length = response.content_length or 0
        report = on_sent
        status = response.status_code
        counting.on_close = lambda position: report(status, max(0, min(position - start, length)))
    return response


class CountingFile:
    """A file proxy that reports, on close, how far the file was read or sent.

    Reading moves the position, and so does the server's sendfile:
    ``socket.sendfile`` seeks the file to just after the last byte sent, even
    when the client went away. Gunicorn then rewinds the descriptor behind our
    back, so the furthest position seen is remembered. ``fileno`` stays, so
    sendfile still works.
    """

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._reached = 0
        self.on_close: Callable[[int], None] | None = None

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._reached = max(self._reached, self._file.tell())
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self._file.seek(offset, whence)
        self._reached = max(self._reached, position)
        return position

    def tell(self) -> int:
        return self._file.tell()

    def seekable(self) -> bool:
        return self._file.seekable()

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            if self.on_close is not None:
                self.on_close(self._reached)
        except Exception:  # the download itself succeeded; a lost record must not break it
            log.exception("could not record a download")
        finally:
            self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed


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
