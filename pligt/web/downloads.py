"""Streaming one stored version to a client, as :func:`~pligt.web.decision.decide` decided.

The bytes are streamed from storage (``wsgi.file_wrapper``, so a WSGI server
that can will use sendfile) and never held in memory, except small versions'
(pligt/core/downloads/small_files.py).
"""

from __future__ import annotations

import io
import logging
import threading
import weakref
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import BinaryIO
from typing import cast

from flask import Response
from flask import request
from flask import send_file
from werkzeug.datastructures import Headers
from werkzeug.exceptions import PreconditionFailed
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.wsgi import FileWrapper

from pligt.core import Archive
from pligt.core.models import BY_CONNECTION
from pligt.core.models import PUBLIC
from pligt.core.models import Version
from pligt.disposition import content_disposition
from pligt.served import MAX_AGE
from pligt.served import not_modified_headers
from pligt.web.decision import CONDITIONS
from pligt.web.decision import Answer
from pligt.web.services import pligt

log = logging.getLogger("pligt")


class _NotModified(Response):
    """A 304 that keeps its Last-Modified (werkzeug drops it, after RFC 2616's list of entity headers)."""

    def get_wsgi_headers(self, environ: Any) -> Headers:
        headers = super().get_wsgi_headers(environ)
        headers["Last-Modified"] = self.headers["Last-Modified"]
        return headers


def send_version(version: Version, answer: Answer, on_sent: Callable[[int, int], None] | None = None) -> Response:
    """Answer a GET or HEAD of ``version`` as ``answer`` says, with the headers a crawler needs.

    :param on_sent: called once the response is closed, with its status and
        the number of body bytes handed to the client (proof of deposit).
    :raise 412: a precondition failed.
    :raise 416: the range starts beyond the end of the file.
    """
    environ = request.environ
    if answer.status == 412:
        raise PreconditionFailed()
    if answer.status == 416:
        raise RequestedRangeNotSatisfiable(length=version.size)
    if answer.status == 304:
        response: Response = _NotModified(status=304)
        del response.headers["Content-Type"]
        response.headers.extend(not_modified_headers(version, request.is_secure))
        if on_sent is not None:
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
    decided = {key: value for key, value in environ.items() if key not in CONDITIONS}
    if answer.status == 206:
        # werkzeug's wrapper can seek, so a range skips straight to its start;
        # whole files keep the server's own wrapper, which uses sendfile.
        response.response = FileWrapper(stream)
        decided["HTTP_RANGE"] = environ["HTTP_RANGE"]
    response.make_conditional(decided, accept_ranges=True, complete_length=version.size)
    if counting is not None and on_sent is not None:
        start, stop = answer.span or (0, version.size)
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
