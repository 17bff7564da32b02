"""The crawler's common cases, served without Flask: a GET or HEAD of one version.

A harvest is thousands of such requests, and Flask's request machinery costs
more than the rest of the request together (profiled: ~0.6 ms of ~1.2 ms).
This WSGI layer answers, with one in-memory catalog lookup and no template,
the three answers a harvest is made of, and the same headers as the Flask path
(tests/test_fastpath.py compares them):

- the challenge: a protected version asked for without an Authorization header
  (Heritrix asks for every protected URL so first) gets the 401 with the
  realm and a small fixed body;
- the download, whole or a range (200, 206), anonymous or with a crawler
  credential the worker has already verified (cached);
- the revisit: conditional requests, decided by :func:`~.downloads.evaluate`
  as the Flask path decides them (304; a revisit is recorded like a download).

Everything else falls through to Flask unchanged: a credential not verified
yet, a wrong or malformed one (Flask checks it and counts the failure), the
owner's, 404s and 410s, a failed precondition (412) or an unsatisfiable range
(416), storage errors.

The server's main loop asks first (``environ[INLINE]``, pligt/server/worker.py):
then only answers that are ready in memory are given (a challenge, a 304, a
HEAD, a small version whose bytes this process holds), and anything else is
:data:`DEFERRED` to a pool thread, which asks again without the flag.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import unicodedata
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from typing import Any
from typing import cast

from pligt.core.catalog import GenerationQuestion
from pligt.core.credentials.auth import CRAWLER
from pligt.core.deposits import OWNER_USERNAME
from pligt.core.errors import ArchiveError
from pligt.core.models import PROTECTED
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
from pligt.web.downloads import CONNECTIONS
from pligt.web.downloads import ConnectionCredentials
from pligt.web.downloads import CountingFile
from pligt.web.downloads import download_record
from pligt.web.downloads import evaluate

log = logging.getLogger("pligt")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: The environ key with which the server's main loop asks for an answer that needs no waiting.
INLINE = "pligt.inline"
#: The environ key with the catalog's change counter, as the main loop read it after the request came.
GENERATION = "pligt.generation"


class _Deferred(tuple[bytes, ...]):
    """The answer to an INLINE request that needs a thread (the app, storage, or a large file)."""


#: Returned, for an INLINE request, instead of an answer (compared by identity).
DEFERRED: Iterable[bytes] = _Deferred()


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


def generation_question(app: Any) -> GenerationQuestion | None:
    """A new question for the catalog's change counter, for a server loop that cannot read it at hand.

    None where the catalog reads it at hand (SQLite), or ``app`` is not Pligt's.
    """
    fast = getattr(app, "wsgi_app", None)
    if not isinstance(fast, FastDownloads):
        return None
    return cast(GenerationQuestion | None, fast.services.archive.catalog.generation_question())


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
        if served is None:
            return DEFERRED if environ.get(INLINE) else self.app(environ, start_response)
        return served

    def _serve(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes] | None:
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
        authorization = environ.get("HTTP_AUTHORIZATION")
        cached = self._cached_credential(authorization)
        if cached is False:
            return None
        credential_id = cached or None
        slug, number, filename = match.group(1), int(match.group(2)), match.group(3)
        archive = self.services.archive
        inline = bool(environ.get(INLINE))
        try:
            if inline:
                kept = archive.find_kept_download(slug, number, credential_id, environ.get(GENERATION))
                if kept is None:
                    return None  # a pool thread asks the catalog
                found = kept
            else:
                found = archive.find_download(slug, number, credential_id)
        except ArchiveError:
            return None
        version = found.version
        secure = environ.get("wsgi.url_scheme") == "https"
        if credential_id is not None:
            self.connections.carried(environ, credential_id if found.credential_active else None)
        if version.visibility == PROTECTED and not found.credential_active:
            if authorization is not None:
                return None  # a credential that lapsed since it was cached: Flask answers it
            start_response("401 Unauthorized", list(self._challenges[secure]))
            return [] if method == "HEAD" else [FILE_CHALLENGE_BODY]
        if unicodedata.normalize("NFC", filename) != version.filename:
            return None
        outcome = evaluate(environ, version)
        if outcome.status in (412, 416):
            return None  # rare, and an error page: Flask renders it
        record = download_record(archive, environ, credential_id, version) if method == "GET" else None
        if outcome.status == 304:
            start_response("304 Not Modified", list(_not_modified(version, secure)))
            if record is None or not outcome.revisit:
                return []
            revisit = record
            return SmallBody(b"", lambda sent: revisit(304, 0))
        if record is None:  # HEAD
            start_response("200 OK", list(version_headers(version, secure)))
            return []
        try:
            small = archive.small_in_memory(version) if inline else archive.read_small(version)
            if small is None and inline:
                return None  # storage is read, or a large file sent, by a thread
            stream: Any = None if small is not None else archive.open(version)
        except ArchiveError:
            return None
        report = record
        if outcome.span is not None:
            start, stop = outcome.span
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

    def _cached_credential(self, header: str | None) -> int | bool | None:
        """Return the crawler credential behind a cached Authorization, None without one, False otherwise."""
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
        if principal is None or principal.credential_id is None:
            return False  # not verified yet: Flask verifies (and caches) it
        return int(principal.credential_id)


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
