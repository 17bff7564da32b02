"""Streaming one stored version to a client, as HTTP says and crawlers need.

What a GET or HEAD of a version answers (200, 206, 304, 412 or 416) is decided
once, by :func:`evaluate`, for the Flask path and the fast path alike: the
preconditions in RFC 9110's order (§13.2.2), then the range. The bytes are
streamed from storage (``wsgi.file_wrapper``, so a WSGI server that can will use
sendfile) and never held in memory, except small versions'
(pligt/core/downloads/small_files.py).
"""

from __future__ import annotations

import io
import logging
import threading
import weakref
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from typing import BinaryIO
from typing import cast

from flask import Response
from flask import request
from flask import send_file
from werkzeug.datastructures import Headers
from werkzeug.exceptions import PreconditionFailed
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.http import parse_date
from werkzeug.http import parse_etags
from werkzeug.http import parse_range_header
from werkzeug.http import unquote_etag
from werkzeug.wsgi import FileWrapper

from pligt.core import Archive
from pligt.core.models import BY_CONNECTION
from pligt.core.models import PUBLIC
from pligt.core.models import Version
from pligt.disposition import content_disposition
from pligt.served import MAX_AGE
from pligt.served import not_modified_headers
from pligt.web.services import pligt

log = logging.getLogger("pligt")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a GET or HEAD of one version answers."""

    #: 200, 206, 304, 412 (a precondition failed) or 416 (the range lies beyond the end).
    status: int
    #: For a 206: the bytes sent, ``start`` up to (not including) ``stop``.
    span: tuple[int, int] | None = None
    #: For a 304: the request presented this version's own ETag, or a date at or after its
    #: Last-Modified, so the client holds these bytes (proof of deposit; ``*`` proves nothing).
    revisit: bool = False


WHOLE = Outcome(200)

#: The request headers :func:`evaluate` reads.
_CONDITIONS = frozenset(
    {
        "HTTP_IF_MATCH",
        "HTTP_IF_UNMODIFIED_SINCE",
        "HTTP_IF_NONE_MATCH",
        "HTTP_IF_MODIFIED_SINCE",
        "HTTP_RANGE",
        "HTTP_IF_RANGE",
    }
)


def evaluate(environ: Mapping[str, Any], version: Version) -> Outcome:
    """Decide a GET or HEAD of ``version``: the preconditions in RFC 9110's order (§13.2.2), then Range.

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
    the whole file, which serves it better than a 416.
    """
    if not environ.keys() & _CONDITIONS:
        return WHOLE  # the plain download: nothing to decide
    etag = version.sha256
    modified = version.published_at.replace(microsecond=0)
    if_match = parse_etags(environ.get("HTTP_IF_MATCH"))
    if if_match:
        if not if_match.contains(etag):
            return Outcome(412)
    else:
        unmodified_since = parse_date(environ.get("HTTP_IF_UNMODIFIED_SINCE"))
        if unmodified_since is not None and modified > unmodified_since:
            return Outcome(412)
    if_none_match = parse_etags(environ.get("HTTP_IF_NONE_MATCH"))
    if if_none_match:
        if if_none_match.contains_weak(etag):
            return Outcome(304, revisit=if_none_match.is_strong(etag) or if_none_match.is_weak(etag))
    else:
        modified_since = parse_date(environ.get("HTTP_IF_MODIFIED_SINCE"))
        if modified_since is not None and modified <= modified_since:
            return Outcome(304, revisit=True)
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
    return Outcome(416) if span is None else Outcome(206, span)


def _if_range_holds(value: str, etag: str, modified: object) -> bool:
    """Tell whether ``If-Range`` names this very version: its strong ETag, or exactly its Last-Modified."""
    date = parse_date(value)
    if date is not None:
        return date == modified
    tag, weak = unquote_etag(value)
    return not weak and value.strip().startswith('"') and tag == etag


class _NotModified(Response):
    """A 304 that keeps its Last-Modified (werkzeug drops it, after RFC 2616's list of entity headers)."""

    def get_wsgi_headers(self, environ: Any) -> Headers:
        headers = super().get_wsgi_headers(environ)
        headers["Last-Modified"] = self.headers["Last-Modified"]
        return headers


def send_version(version: Version, on_sent: Callable[[int, int], None] | None = None) -> Response:
    """Answer a GET or HEAD of ``version`` as :func:`evaluate` decides, with the headers a crawler needs.

    :param on_sent: called once the response is closed, with its status and
        the number of body bytes handed to the client (proof of deposit); for
        a 304, only if it is a revisit (see :attr:`Outcome.revisit`).
    :raise 412: a precondition failed.
    :raise 416: the range starts beyond the end of the file.
    """
    environ = request.environ
    outcome = evaluate(environ, version)
    if outcome.status == 412:
        raise PreconditionFailed()
    if outcome.status == 416:
        raise RequestedRangeNotSatisfiable(length=version.size)
    if outcome.status == 304:
        response: Response = _NotModified(status=304)
        del response.headers["Content-Type"]
        response.headers.extend(not_modified_headers(version, request.is_secure))
        if on_sent is not None and outcome.revisit:
            report = on_sent
            response.call_on_close(lambda: report(304, 0))
        return response
    archive = pligt().archive
    small = archive.read_small(version)  # small versions come from memory, checked against their digest
    source: BinaryIO = io.BytesIO(small) if small is not None else archive.open(version)
    counting = CountingFile(source) if on_sent is not None else None
    # A counting proxy reads, seeks and hands out its descriptor like the file itself.
    stream = cast(BinaryIO, counting) if counting is not None else source
    response = send_file(
        stream,
        mimetype=version.content_type.split(";")[0],
        download_name=version.filename,
        conditional=False,
        etag=version.sha256,
        last_modified=version.published_at,
    )
    response.headers["Content-Disposition"] = content_disposition(version.filename)
    response.headers["Content-Type"] = version.content_type
    response.content_length = version.size
    response.cache_control.no_cache = None
    response.cache_control.max_age = MAX_AGE
    if version.visibility == PUBLIC:
        response.cache_control.public = True
    else:
        response.cache_control.private = True
    # The decision is taken; werkzeug only cuts the range out (and sets Date and Accept-Ranges).
    decided = {key: value for key, value in environ.items() if key not in _CONDITIONS}
    if outcome.status == 206:
        # werkzeug's wrapper can seek, so a range skips straight to its start;
        # whole files keep the server's own wrapper, which uses sendfile.
        response.response = FileWrapper(stream)
        decided["HTTP_RANGE"] = environ["HTTP_RANGE"]
    response.make_conditional(decided, accept_ranges=True, complete_length=version.size)
    if counting is not None and on_sent is not None:
        start, stop = outcome.span or (0, version.size)
        report_sent = on_sent
        status = response.status_code
        counting.on_close = lambda position: report_sent(status, max(0, min(position, stop) - start))
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


#: Where the fast path puts this app's :class:`ConnectionCredentials` in each request's environ.
CONNECTIONS = "pligt.connections"


class ConnectionCredentials:
    """The crawler credential each open connection of this worker was last verified with.

    Heritrix fetches every URL without credentials first, so the public files
    it harvests arrive anonymously. When such a request comes on a kept-alive
    connection on which an earlier request had proved a crawler credential, it
    is attributed to that credential (recorded ``via="connection"``).

    How strong that is: a TCP connection joins one client to this server, so the
    anonymous request came from the program that had proved the credential on
    the same connection a moment before, the deposit institution's crawler. It
    is weaker than a credential on the request itself (that program could
    fetch for someone else too), and it undercounts: a file fetched on a fresh
    connection, or before any protected URL, stays anonymous. Behind a reverse
    proxy one upstream connection carries many clients' requests, so with
    ``trusted_proxies`` set nothing is attributed this way (``enabled`` false).

    No address is kept: the key is the connection's socket object itself
    (gunicorn's ``environ["gunicorn.socket"]``), held weakly, so an entry lives
    no longer than the connection; the value is the credential's id. In memory
    only, per worker (a connection belongs to one worker).
    """

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._by_connection: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def carried(self, environ: Mapping[str, Any], credential_id: int | None) -> None:
        """Note the credential a request on this connection proved; None (the owner, a lapsed one): forget it."""
        connection = environ.get("gunicorn.socket") if self.enabled else None
        if connection is None:
            return
        with self._lock:
            if credential_id is None:
                self._by_connection.pop(connection, None)
            elif self._by_connection.get(connection) != credential_id:
                self._by_connection[connection] = credential_id

    def credential(self, environ: Mapping[str, Any]) -> int | None:
        """Return the credential this request's connection carried earlier, if any."""
        connection = environ.get("gunicorn.socket") if self.enabled else None
        if connection is None:
            return None
        with self._lock:
            return self._by_connection.get(connection)


def connections_of(environ: Mapping[str, Any]) -> ConnectionCredentials | None:
    """Return the connections' credentials the fast path handed on in ``environ`` (None without it)."""
    return cast(ConnectionCredentials | None, environ.get(CONNECTIONS))


def remember_connection(environ: Mapping[str, Any], credential_id: int | None) -> None:
    """Note the active crawler credential this request proved on its connection (None: forget it)."""
    connections = connections_of(environ)
    if connections is not None:
        connections.carried(environ, credential_id)


def download_record(
    archive: Archive, environ: Mapping[str, Any], credential_id: int | None, version: Version
) -> Callable[[int, int], None]:
    """Return what records this request's download of ``version``: ``(status, bytes sent)``.

    By the crawler credential the request proved; else, for a request without
    an Authorization header, by the credential its connection carried (see
    :class:`ConnectionCredentials`); else anonymously, with the User-Agent, of
    which the archive keeps only the listed crawler pattern it matches, if any.
    """
    if credential_id is not None:
        return lambda status, sent: archive.record_download(credential_id, version, status, sent)
    connections = connections_of(environ)
    carried = None
    if connections is not None and "HTTP_AUTHORIZATION" not in environ:
        carried = connections.credential(environ)
    if carried is not None:
        via_connection = carried
        return lambda status, sent: archive.record_download(via_connection, version, status, sent, via=BY_CONNECTION)
    user_agent = environ.get("HTTP_USER_AGENT")
    return lambda status, sent: archive.record_download(None, version, status, sent, user_agent=user_agent)
