"""Streaming one stored version to a client, as :func:`~pligt.web.decision.decide` decided.

The headers are :mod:`pligt.served`'s, the same the export writes. The bytes
go out from storage and are never held whole in memory, except small
versions' (pligt/core/downloads/small_files.py): a local file, whole or a
range, is handed to the WSGI server's ``wsgi.file_wrapper`` standing at its
first byte, so that gunicorn sends it with sendfile up to Content-Length (from
the worker's main loop, pligt/server/bodies.py: a slow reader holds no
thread); an object in S3 is read in pieces.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any
from typing import BinaryIO
from typing import cast

from flask import Response
from flask import request
from werkzeug.datastructures import Headers
from werkzeug.exceptions import PreconditionFailed
from werkzeug.exceptions import RequestedRangeNotSatisfiable

from pligt.core import Archive
from pligt.core.models import BY_CONNECTION
from pligt.core.models import Version
from pligt.core.storage.base import CHUNK_SIZE
from pligt.served import not_modified_headers
from pligt.served import partial_headers
from pligt.served import version_headers
from pligt.web.decision import Answer
from pligt.web.services import pligt

log = logging.getLogger("pligt")

#: Called once a response is closed, with its status and the body bytes handed to the client.
OnSent = Callable[[int, int], None]


class _NotModified(Response):
    """A 304 that keeps its Last-Modified (werkzeug drops it, after RFC 2616's list of entity headers)."""

    def get_wsgi_headers(self, environ: Any) -> Headers:
        headers = super().get_wsgi_headers(environ)
        headers["Last-Modified"] = self.headers["Last-Modified"]
        return headers


def send_version(version: Version, answer: Answer, on_sent: OnSent | None = None) -> Response:
    """Answer a GET or HEAD of ``version`` as ``answer`` says, with the headers a crawler needs.

    :param on_sent: called once the response is closed, with its status and
        the number of body bytes handed to the client (proof of deposit).
    :raise 412: a precondition failed.
    :raise 416: the range starts beyond the end of the file.
    """
    if answer.status == 412:
        raise PreconditionFailed()
    if answer.status == 416:
        raise RequestedRangeNotSatisfiable(length=version.size)
    secure = request.is_secure
    if answer.status == 304:
        return _not_modified(version, secure, on_sent)
    if request.method == "HEAD":
        return Response(status=200, headers=version_headers(version, secure))
    start, stop = answer.span or (0, version.size)
    headers = version_headers(version, secure) if answer.span is None else partial_headers(version, secure, start, stop)
    report = _reporter(answer.status, on_sent)
    body = _body(pligt().archive, version, start, stop, report)
    return Response(body, status=answer.status, headers=headers, direct_passthrough=True)


def _not_modified(version: Version, secure: bool, on_sent: OnSent | None) -> Response:
    response = _NotModified(status=304)
    del response.headers["Content-Type"]
    response.headers.extend(not_modified_headers(version, secure))
    if on_sent is not None:
        report = on_sent
        response.call_on_close(lambda: report(304, 0))
    return response


def _reporter(status: int, on_sent: OnSent | None) -> Callable[[int], None]:
    """Return what reports the bytes sent of a ``status`` answer (nothing without ``on_sent``)."""
    if on_sent is None:
        return lambda sent: None
    report = on_sent
    return lambda sent: report(status, sent)


def _body(archive: Archive, version: Version, start: int, stop: int, report: Callable[[int], None]) -> Iterable[bytes]:
    """The bytes ``start`` up to ``stop`` of ``version``, as the server sends them best; ``report`` on close.

    The body is passed through to the server as it is (the response is not
    closed by werkzeug), so each kind closes itself and reports what was sent.
    """
    small = archive.read_small(version)  # small versions come from memory, checked against their digest
    if small is not None:
        return SmallBody(small[start:stop], report)
    counting = CountingFile(archive.open(version))
    if start:
        counting.seek(start)
    counting.on_close = lambda position: report(max(0, min(position, stop) - start))
    wrapper = request.environ.get("wsgi.file_wrapper")
    if wrapper is not None and (stop == version.size or _has_descriptor(counting)):
        # gunicorn's sendfile starts where the file stands and stops at Content-Length; without a
        # descriptor (S3) its wrapper reads on to the end, so it is given only a file's whole tail.
        return cast(Iterable[bytes], wrapper(counting, CHUNK_SIZE))
    return Pieces(counting, stop - start)


class SmallBody:
    """A small version's bytes as one piece; on close, reports how many of them the server sent.

    The WSGI server asks for the next piece only after writing this one to the
    socket, so reaching the end of the iteration means every byte was handed over.
    """

    def __init__(self, data: bytes, on_close: Callable[[int], None]) -> None:
        self.data = data
        self.on_close = on_close
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        yield self.data
        self.sent = len(self.data)

    def close(self) -> None:
        try:
            self.on_close(self.sent)
        except Exception:  # the download itself succeeded; a lost record must not break it
            log.exception("could not record a download")


def _has_descriptor(stream: Any) -> bool:
    """Whether ``stream`` is a file the kernel can send from (a local file; not an S3 object)."""
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return False
    return True


class Pieces:
    """``length`` bytes read in pieces from where ``stream`` stands; closing it closes the stream.

    A class, not a generator: a generator the server never started would not
    run its ``finally`` on close, and the download would go unrecorded.
    """

    def __init__(self, stream: CountingFile, length: int) -> None:
        self.stream = stream
        self.length = length

    def __iter__(self) -> Iterator[bytes]:
        while self.length > 0 and (chunk := self.stream.read(min(CHUNK_SIZE, self.length))):
            self.length -= len(chunk)
            yield chunk

    def close(self) -> None:
        self.stream.close()


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


def remember_connection(environ: Mapping[str, Any], credential_id: int | None) -> None:
    """Note the active crawler credential this request proved on its connection (None: forget it)."""
    pligt().connections.carried(environ, credential_id)


def download_record(
    archive: Archive, environ: Mapping[str, Any], credential_id: int | None, version: Version
) -> Callable[[int, int], None]:
    """Return what records this request's download of ``version``: ``(status, bytes sent)``.

    By the crawler credential the request proved; else, for a request without
    an Authorization header, by the credential its connection carried (see
    :class:`~pligt.web.connections.ConnectionCredentials`); else anonymously, with the User-Agent, of
    which the archive keeps only the listed crawler pattern it matches, if any.
    """
    if credential_id is not None:
        return lambda status, sent: archive.record_download(credential_id, version, status, sent)
    carried = None
    if "HTTP_AUTHORIZATION" not in environ:
        carried = pligt().connections.credential(environ)
    if carried is not None:
        via_connection = carried
        return lambda status, sent: archive.record_download(via_connection, version, status, sent, via=BY_CONNECTION)
    user_agent = environ.get("HTTP_USER_AGENT")
    return lambda status, sent: archive.record_download(None, version, status, sent, user_agent=user_agent)
