"""The crawler's common requests, answered without Flask: a GET or HEAD of one version.

A harvest is thousands of such requests, and Flask's request machinery costs
more than the rest of the request together (profiled: ~0.6 ms of ~1.2 ms).
This WSGI layer asks :func:`~.decision.decide` exactly as the Flask view does,
and renders, with no template, the answers a harvest is made of, with the same
headers as the Flask path (tests/test_fastpath.py compares them):

- the download, whole or a range (200, 206), anonymous or with a crawler
  credential the worker has already verified (cached) — the deposit crawler
  sends its credential with every request once one challenge succeeded;
- the challenge (401) of a request without credentials;
- the revisit of other clients (304).

Everything else falls through to Flask, which decides again and renders it: a
credential not verified yet, a wrong or lapsed one (Flask checks it and counts
the failure), the owner's, 404s and 410s, a failed precondition (412) or an
unsatisfiable range (416), storage errors. The layer is kept because the
deposit crawler's pattern needs it (docs/performance.md, "Sized to the work").
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from typing import Any
from typing import Literal
from typing import cast

from pligt.core.credentials.auth import CRAWLER
from pligt.core.credentials.auth import Principal
from pligt.core.deposits import OWNER_USERNAME
from pligt.core.errors import ArchiveError
from pligt.core.models import Version
from pligt.core.storage.base import CHUNK_SIZE
from pligt.links import VERSION_PATTERN
from pligt.served import FILES_CSP
from pligt.served import not_modified_headers
from pligt.served import security_headers
from pligt.served import version_headers
from pligt.web.auth import FILE_CHALLENGE_BODY
from pligt.web.auth import FILE_CHALLENGE_TYPE
from pligt.web.auth import challenge_header
from pligt.web.decision import Answer
from pligt.web.decision import decide
from pligt.web.decision import look_up
from pligt.web.downloads import CONNECTIONS
from pligt.web.downloads import ConnectionCredentials
from pligt.web.downloads import CountingFile
from pligt.web.downloads import download_record

log = logging.getLogger("pligt")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def partial_headers(version: Version, secure: bool, start: int, stop: int) -> list[tuple[str, str]]:
    """The headers of a 206 response with the bytes ``start`` up to (not including) ``stop``."""
    headers = [(k, v) for k, v in version_headers(version, secure) if k != "Content-Length"]
    headers.append(("Content-Length", str(stop - start)))
    headers.append(("Content-Range", f"bytes {start}-{stop - 1}/{version.size}"))
    return headers


_not_modified = functools.lru_cache(maxsize=4096)(not_modified_headers)


def challenge_headers(realm: str, secure: bool) -> list[tuple[str, str]]:
    """The headers of a protected file's 401 (the Flask path's :func:`~.auth.file_challenge`)."""
    return [
        ("Content-Type", FILE_CHALLENGE_TYPE),
        ("Content-Length", str(len(FILE_CHALLENGE_BODY))),
        ("WWW-Authenticate", challenge_header(realm)),
        *security_headers(secure=secure, csp=FILES_CSP),
    ]


class FastDownloads:
    """WSGI middleware: serve challenges, downloads and revisits of versions directly, pass the rest to ``app``.

    It also holds the worker's :class:`~.downloads.ConnectionCredentials` and
    hands them to the Flask path in each request's environ.
    """

    def __init__(self, app: WSGIApp, services: Any) -> None:
        self.app = app
        self.services = services
        settings = services.settings
        self.connections = ConnectionCredentials(enabled=not settings.trusted_proxies)
        self._challenges = {secure: challenge_headers(settings.realm, secure) for secure in (False, True)}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        environ[CONNECTIONS] = self.connections
        served = self._serve(environ, start_response)
        return self.app(environ, start_response) if served is None else served

    def _serve(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes] | None:
        """Answer a version's URL as :func:`~.decision.decide` says, or None to leave it to Flask."""
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "HEAD"):
            return None
        try:
            path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
        except UnicodeError:
            return None
        match = VERSION_PATTERN.fullmatch(path)
        if match is None:
            return None
        principal = self._cached_principal(environ.get("HTTP_AUTHORIZATION"))
        if principal is False:
            return None
        slug, number, filename = match.group(1), int(match.group(2)), match.group(3)
        archive = self.services.archive
        try:
            seen = look_up(archive, slug, number, principal)
        except ArchiveError:
            return None
        if principal is not None and seen.version is not None:
            self.connections.carried(environ, principal.credential_id if seen.credential_active else None)
        answer = decide(environ, principal, seen, filename)
        if answer.status == 401 and "HTTP_AUTHORIZATION" not in environ:
            start_response("401 Unauthorized", list(self._challenges[environ.get("wsgi.url_scheme") == "https"]))
            return [] if method == "HEAD" else [FILE_CHALLENGE_BODY]
        if answer.status not in (200, 206, 304) or seen.version is None:
            return None  # a lapsed credential, a 404, 410, 412 or 416: Flask renders it
        try:
            return self._send(environ, start_response, seen.version, answer, principal)
        except ArchiveError:
            return None

    def _send(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        version: Version,
        answer: Answer,
        principal: Principal | None,
    ) -> Iterable[bytes]:
        """Render a 200, 206 or 304 of ``version`` (the bytes from memory or storage, never whole in Python)."""
        secure = environ.get("wsgi.url_scheme") == "https"
        archive = self.services.archive
        credential_id = principal.credential_id if principal is not None else None
        record = download_record(archive, environ, credential_id, version) if answer.record else None
        if answer.status == 304:
            start_response("304 Not Modified", list(_not_modified(version, secure)))
            if record is None:
                return []
            revisit = record
            return SmallBody(b"", lambda sent: revisit(304, 0))
        if environ.get("REQUEST_METHOD") == "HEAD":
            start_response("200 OK", list(version_headers(version, secure)))
            return []
        small = archive.read_small(version)
        stream: Any = None if small is not None else archive.open(version)

        def report(status: int, sent: int) -> None:
            if record is not None:
                record(status, sent)

        if answer.span is not None:
            start, stop = answer.span
            start_response("206 Partial Content", partial_headers(version, secure, start, stop))
            if small is not None:
                return SmallBody(small[start:stop], lambda sent: report(206, sent))
            counting = CountingFile(stream)
            counting.seek(start)
            counting.on_close = lambda position: report(206, max(0, min(position, stop) - start))
            wrapper = environ.get("wsgi.file_wrapper")
            if wrapper is not None and _has_descriptor(stream):
                # The server's sendfile starts where the file stands and stops at Content-Length.
                return cast(Iterable[bytes], wrapper(counting, CHUNK_SIZE))
            return _chunks(counting, stop - start)
        start_response("200 OK", list(version_headers(version, secure)))
        if small is not None:
            return SmallBody(small, lambda sent: report(200, sent))
        counting = CountingFile(stream)
        counting.on_close = lambda position: report(200, min(position, version.size))
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None:
            return cast(Iterable[bytes], wrapper(counting, CHUNK_SIZE))
        return _chunks(counting, version.size)

    def _cached_principal(self, header: str | None) -> Principal | Literal[False] | None:
        """Return the crawler behind a cached Authorization, None without one, False otherwise."""
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            username, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep or username == OWNER_USERNAME:
            return False
        principal = self.services.authenticator.cache.get(CRAWLER, username, password)
        if not isinstance(principal, Principal) or principal.credential_id is None:
            return False  # not verified yet: Flask verifies (and caches) it
        return principal


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


def _chunks(stream: CountingFile, length: int) -> Iterable[bytes]:
    """Read ``length`` bytes from where ``stream`` stands, in pieces; close it at the end."""
    try:
        while length > 0 and (chunk := stream.read(min(CHUNK_SIZE, length))):
            length -= len(chunk)
            yield chunk
    finally:
        stream.close()
