"""A crawler that fetches the way Netarkivet's Heritrix does, for tests against a real server.

Its defaults are what the real Heritrix 3.13 did against Pligt (tests/test_heritrix_real.py runs
it); the other behaviours are explicit :class:`Profile` s, kept for the tests of other clients'
patterns.

What it imitates (Heritrix 3's FetchHTTP, FetchHTTPRequest, ExtractorHTTP, ExtractorHTML and
FetchHistoryProcessor, with NetarchiveSuite's crawl-template settings), and where a behaviour is a
choice, the :class:`Profile` flag that sets it:

- **GET only**, over plain sockets: each request is written byte for byte (no client library that
  adds headers of its own, or sends credentials first). By default ``HTTP/1.0`` and
  ``Connection: close``, one TCP connection per request (Heritrix's ``useHTTP11=false``,
  ``sendConnectionClose=true``; NetarchiveSuite keeps both). ``Accept``, ``User-Agent``, ``From``
  and ``Referer`` (the page a link was found on; none for ``/robots.txt``) as Heritrix sends them.
- **``/robots.txt`` first**, before any other URL of a server, as a prerequisite: fetched, then
  ignored (``robotsPolicyName=ignore``), whatever its status.
- **Links**: ``<a href>`` only, and only from ``text/html`` / xhtml responses (``html.parser``);
  also ``Location``, ``Content-Location`` and ``Refresh`` headers and a guessed ``/favicon.ico``, as
  ExtractorHTTP adds. Only URLs on the seed's scheme, host and port; fragments dropped; at most
  ``max_hops`` from the seed. No forms, no JavaScript, no sitemaps. Nothing is extracted from a
  401 that is about to be retried with credentials (Heritrix does not count it as a success).
- **Credentials after the first challenge, then up front.** A credential is Heritrix's
  ``HttpAuthenticationCredential``: domain (``host:port`` as the crawler sees the server; the bare
  host for port 80), realm, login, password. On a ``401`` the ``WWW-Authenticate`` challenges are
  read; a Basic challenge whose realm equals a credential's realm exactly, on that credential's
  domain, makes the crawler fetch the same URL again with ``Authorization: Basic``. A challenge
  without a realm, a scheme other than Basic, or a second 401 after credentials ends that URL with
  the 401. By default (:data:`HERITRIX`, what the real Heritrix 3.13 did against Pligt in
  tests/test_heritrix_real.py) the credential is promoted to the server after that first success
  and sent with every later request to it, public URLs included, for the rest of the crawl: one
  401 per server per crawl. ``Profile.reuse_credentials=False`` (:data:`ISSUE_12`) never sends
  credentials before a challenge, so every protected URL costs a 401 and then a 200: what
  Heritrix does with Digest, and what other clients (wget, httrack) do.
- **No conditional requests** by default: Netarkivet's jobs keep no fetch history between
  harvests, so every harvest downloads every file whole. ``Profile.conditional_requests=True``
  (:data:`ISSUE_12`, the pattern of other clients that revisit) keeps the fetch history of
  earlier crawls (:attr:`Heritrix.history`: per URL the latest fetch's status, ``ETag``,
  ``Last-Modified`` and payload digest) and sends ``If-None-Match`` / ``If-Modified-Since`` from
  it, verbatim (not for ``/robots.txt``), when that fetch had a status.
  ``Profile.conditionals_survive_401=True``: the retry after a 401 carries them too; ``False``:
  the 401 becomes the latest history entry, so the retry goes without them.
- **Digests**: each response's payload digest is SHA-1, written as Heritrix writes it in WARC and
  CDX: ``sha1:`` + base32 (:func:`sha1_digest`).

Politeness is off (no delay between requests; the test's own server). Everything is in memory;
bodies are kept up to ``keep_bytes`` for the tests to look at.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from email.message import Message
from html.parser import HTMLParser
from http.client import HTTPResponse
from urllib.parse import quote
from urllib.parse import urldefrag
from urllib.parse import urljoin
from urllib.parse import urlsplit

#: Heritrix's default ``Accept`` header (FetchHTTP.acceptHeaders).
ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
#: NetarchiveSuite's user agent template, with its operator contact URL, and its ``From``.
USER_AGENT = "Mozilla/5.0 (compatible; heritrix/3.4.0 +http://netarkivet.dk/webcrawler/)"
FROM = "info@netarkivet.dk"
#: Characters left as they are when a found link is escaped (Heritrix's UURI escapes the rest).
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"
_HTML_TYPES = ("text/html", "application/xhtml")
#: A token, with ``=value`` (quoted or not) when it is a parameter (RFC 9110 §11.6.1).
_TOKEN = re.compile(r'[\s,]*([^\s,=]+)(?:\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*))?')


def sha1_digest(payload: bytes) -> str:
    """The payload digest as Heritrix writes it (``WARC-Payload-Digest``, CDX): ``sha1:`` + base32."""
    return "sha1:" + base64.b32encode(hashlib.sha1(payload).digest()).decode("ascii")  # noqa: S324 - the archive's digest


@dataclass(frozen=True)
class HttpAuthenticationCredential:
    """Heritrix's credential store entry: domain (``host:port``, or ``host`` for port 80), realm, login, password."""

    domain: str
    realm: str
    login: str
    password: str

    def header(self) -> str:
        """The ``Authorization`` value (httpclient's BasicScheme: ASCII ``login:password``, base64)."""
        return "Basic " + base64.b64encode(f"{self.login}:{self.password}".encode("ascii")).decode("ascii")


@dataclass(frozen=True)
class Profile:
    """How the crawler behaves where clients differ; the defaults are what the real Heritrix does."""

    name: str
    #: After the first success on a server, send its credential with every later request to it.
    reuse_credentials: bool = True
    #: Revisit with ``If-None-Match`` / ``If-Modified-Since`` from the earlier crawls' history.
    conditional_requests: bool = False
    #: The retry after a 401 still carries the conditional headers of the earlier crawl's fetch.
    conditionals_survive_401: bool = False
    #: ``HTTP/1.1`` instead of Heritrix's default ``HTTP/1.0``.
    http11: bool = False
    #: ``Connection: close`` on every request (Heritrix's default), else keep-alive.
    connection_close: bool = True


#: The real Heritrix under NetarchiveSuite (tests/test_heritrix_real.py): one 401 per server, then
#: the credential up front; HTTP/1.0, a connection per request; no conditional requests.
HERITRIX = Profile("heritrix")
#: Issue 12's model, now the pattern of other clients: every protected URL is challenged, and
#: revisits are conditional, their headers kept on the retry after the 401.
ISSUE_12 = Profile("issue-12", reuse_credentials=False, conditional_requests=True, conditionals_survive_401=True)


@dataclass(frozen=True)
class Exchange:
    """One request and its response."""

    url: str
    request_line: str
    request_headers: dict[str, str]
    status: int
    headers: Message
    payload: bytes
    length: int
    digest: str

    @property
    def authorized(self) -> bool:
        return "Authorization" in self.request_headers

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


@dataclass
class Fetch:
    """One URL in one crawl: every attempt (the 401, then the retry), the last one decides."""

    url: str
    via: str | None
    hops: int
    exchanges: list[Exchange] = field(default_factory=list)

    @property
    def statuses(self) -> list[int]:
        return [e.status for e in self.exchanges]

    @property
    def final(self) -> Exchange:
        return self.exchanges[-1]

    @property
    def status(self) -> int:
        return self.final.status

    @property
    def digest(self) -> str:
        return self.final.digest

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def target(self) -> str:
        """The path, and the query if there is one, as in the request line."""
        parts = urlsplit(self.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")


@dataclass
class History:
    """Heritrix's fetch history entry [0] for a URL: what the latest attempt answered."""

    status: int
    etag: str | None
    last_modified: str | None
    digest: str


@dataclass
class Crawl:
    """What one crawl fetched, in order: per URL its :class:`Fetch`, and every exchange."""

    fetches: dict[str, Fetch] = field(default_factory=dict)

    @property
    def exchanges(self) -> list[Exchange]:
        return [e for f in self.fetches.values() for e in f.exchanges]

    def by_path(self, path: str) -> Fetch:
        """The fetch of the URL with this path (percent-encoded as the server linked it)."""
        found = [f for f in self.fetches.values() if f.path == path]
        if len(found) != 1:
            raise KeyError(f"{len(found)} fetches of {path}; fetched: {sorted(self.fetches)}")
        return found[0]

    def statuses(self) -> dict[str, list[int]]:
        """Per URL path, the status sequence (``[401, 200]``, ``[200]``, ``[401, 304]``…)."""
        return {f.target: f.statuses for f in self.fetches.values()}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(value for name, value in attrs if name == "href" and value)


def html_links(html: str) -> list[str]:
    """The ``href`` of every ``<a>`` of a page, as written."""
    parser = _Links()
    parser.feed(html)
    parser.close()
    return parser.hrefs


def challenges(headers: Message) -> dict[str, dict[str, str]]:
    """The ``WWW-Authenticate`` challenges, by lower-case scheme, each with its parameters (names lower-cased)."""
    found: dict[str, dict[str, str]] = {}
    for value in headers.get_all("WWW-Authenticate") or []:
        scheme: str | None = None
        for name, raw in _TOKEN.findall(value):
            if not raw:  # a token on its own starts a challenge
                scheme = name.lower()
                found.setdefault(scheme, {})
            elif scheme is not None:
                text = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw
                found[scheme].setdefault(name.lower(), text)
    return found


def server_key(url: str) -> str:
    """Heritrix's CrawlServer key of a URL: ``host:port``, the bare host for the scheme's default port."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    default = 443 if parts.scheme == "https" else 80
    port = parts.port or default
    return host if port == default else f"{host}:{port}"


class Heritrix:
    """A crawl job: seeds, a credential store, a profile; :meth:`crawl` runs one harvest.

    The same object keeps the fetch history between crawls (a revisit harvest), and
    :meth:`set_credentials` replaces the credential store between them (after ``pligt rotate``).
    """

    def __init__(
        self,
        seeds: Iterable[str],
        credentials: Iterable[HttpAuthenticationCredential] = (),
        *,
        profile: Profile = HERITRIX,
        user_agent: str = USER_AGENT,
        sender: str = FROM,
        max_hops: int = 25,
        max_urls: int = 10_000,
        timeout: float = 20,
        keep_bytes: int = 1 << 20,
    ) -> None:
        self.seeds = [canonical(s) for s in seeds]
        self.credentials = list(credentials)
        self.profile = profile
        self.user_agent = user_agent
        self.sender = sender
        self.max_hops = max_hops
        self.max_urls = max_urls
        self.timeout = timeout
        self.keep_bytes = keep_bytes
        #: Per URL, the latest fetch of every crawl so far (Heritrix's fetch history, entry 0).
        self.history: dict[str, History] = {}
        self.scope = {(urlsplit(s).scheme, server_key(s)) for s in self.seeds}

    def set_credentials(self, credentials: Iterable[HttpAuthenticationCredential]) -> None:
        """Replace the credential store (the institution typed in a rotated password)."""
        self.credentials = list(credentials)

    def crawl(self) -> Crawl:
        """One harvest from the seeds: breadth first, every URL once, ``/robots.txt`` first per server.

        Credentials promoted to a server (``Profile.reuse_credentials``) last for this crawl only,
        as a CrawlServer lasts for one crawl job.
        """
        crawl = Crawl()
        promoted: dict[str, HttpAuthenticationCredential] = {}
        robots_done: set[str] = set()
        frontier: deque[tuple[str, str | None, int]] = deque((s, None, 0) for s in self.seeds)
        queued = set(self.seeds)
        connection = _Connection(self)
        try:
            while frontier and len(crawl.fetches) < self.max_urls:
                url, via, hops = frontier.popleft()
                key = server_key(url)
                if key not in robots_done:  # the prerequisite first, then this URL
                    robots_done.add(key)
                    robots = urljoin(url, "/robots.txt")
                    if robots not in queued:
                        queued.add(robots)
                        frontier.appendleft((url, via, hops))
                        url, via = robots, None
                fetch = self._fetch(connection, url, via, hops, promoted)
                crawl.fetches[url] = fetch
                for link in self._outlinks(fetch):
                    if link not in queued and self._in_scope(link) and hops + 1 <= self.max_hops:
                        queued.add(link)
                        frontier.append((link, url, hops + 1))
        finally:
            connection.close()
        return crawl

    def _fetch(
        self,
        connection: _Connection,
        url: str,
        via: str | None,
        hops: int,
        promoted: dict[str, HttpAuthenticationCredential],
    ) -> Fetch:
        """Fetch ``url``; after a 401 with a matching realm, once more with the credential."""
        fetch = Fetch(url, via, hops)
        prerequisite = urlsplit(url).path == "/robots.txt"
        key = server_key(url)
        earlier = self.history.get(url)
        basis = earlier  # the history entry the conditional headers come from
        credential = promoted.get(key) if self.profile.reuse_credentials else None
        tried = credential
        while True:
            revisit = self.profile.conditional_requests and not prerequisite
            conditional = conditional_headers(basis) if revisit else {}
            exchange = connection.get(url, None if prerequisite else via, credential, conditional)
            fetch.exchanges.append(exchange)
            if exchange.status != 401:
                break
            found = self._credential_for(key, challenges(exchange.headers))
            if found is None or found == tried:  # no credential for this realm, or it failed
                break
            credential = tried = found
            if not self.profile.conditionals_survive_401:
                basis = _entry(exchange, None)  # the 401 is now the latest fetch
        final = fetch.final
        if credential is not None and final.status != 401:
            promoted[key] = credential
        self.history[url] = _entry(final, earlier)
        return fetch

    def _credential_for(self, key: str, offered: dict[str, dict[str, str]]) -> HttpAuthenticationCredential | None:
        """Heritrix's choice: Digest before Basic (Digest is not done here), a realm required, matched exactly."""
        basic = offered.get("basic")
        if basic is None or not basic.get("realm"):
            return None
        for credential in self.credentials:
            if credential.domain.lower() == key and credential.realm == basic["realm"]:
                return credential
        return None

    def _outlinks(self, fetch: Fetch) -> list[str]:
        """ExtractorHTTP's links (any status) and ExtractorHTML's ``<a href>`` from a text/html payload."""
        final = fetch.final
        found: list[str] = []
        for name in ("Location", "Content-Location"):
            value = final.headers.get(name)
            if value:
                found.append(value)
        refresh = final.headers.get("Refresh", "")
        if "url=" in refresh.lower():
            found.append(refresh[refresh.lower().index("url=") + 4 :].strip().strip("'\""))
        found.append("/favicon.ico")
        if final.payload and final.content_type.split(";")[0].strip().lower().startswith(_HTML_TYPES):
            charset = final.headers.get_content_charset() or "iso-8859-1"  # FetchHTTP.defaultEncoding
            try:
                text = final.payload.decode(charset, errors="replace")
            except LookupError:
                text = final.payload.decode("iso-8859-1")
            found.extend(html_links(text))
        links = []
        for link in found:
            absolute = canonical(urljoin(fetch.url, link))
            if urlsplit(absolute).scheme in ("http", "https"):
                links.append(absolute)
        return links

    def _in_scope(self, url: str) -> bool:
        return (urlsplit(url).scheme, server_key(url)) in self.scope


def canonical(url: str) -> str:
    """A found URL as the frontier keeps it: no fragment, scheme and host in lower case, unsafe bytes escaped."""
    url, _ = urldefrag(url.strip())
    parts = urlsplit(url)
    path = quote(parts.path or "/", safe=_URL_SAFE)
    query = quote(parts.query, safe=_URL_SAFE)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}" + (f"?{query}" if query else "")


def conditional_headers(entry: History | None) -> dict[str, str]:
    """``If-Modified-Since`` / ``If-None-Match`` from a history entry, when that fetch had a status."""
    if entry is None or entry.status <= 0:
        return {}
    headers = {}
    if entry.last_modified:
        headers["If-Modified-Since"] = entry.last_modified
    if entry.etag:
        headers["If-None-Match"] = entry.etag
    return headers


def _entry(exchange: Exchange, earlier: History | None) -> History:
    """The history entry of an exchange; a 304 keeps the earlier payload digest (FetchHistoryProcessor)."""
    digest = exchange.digest
    if exchange.status == 304 and earlier is not None:
        digest = earlier.digest
    return History(exchange.status, exchange.headers.get("ETag"), exchange.headers.get("Last-Modified"), digest)


class _Connection:
    """Writes each request itself and reads the response with http.client's parser.

    One TCP connection per request with ``Connection: close`` (Heritrix's default), or one
    kept alive per server for a profile without it.
    """

    def __init__(self, crawler: Heritrix) -> None:
        self.crawler = crawler
        self.sock: socket.socket | None = None
        self.address: tuple[str, int] | None = None

    def get(
        self,
        url: str,
        referer: str | None,
        credential: HttpAuthenticationCredential | None,
        conditional: dict[str, str],
    ) -> Exchange:
        crawler, profile = self.crawler, self.crawler.profile
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise ValueError(f"only http:// on loopback: {url}")
        address = (parts.hostname or "127.0.0.1", parts.port or 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        version = "HTTP/1.1" if profile.http11 else "HTTP/1.0"
        request_line = f"GET {target} {version}"
        headers: dict[str, str] = {}
        if profile.connection_close:
            headers["Connection"] = "close"
        if referer:
            headers["Referer"] = referer
        headers.update(conditional)
        headers["Accept"] = ACCEPT
        headers["Host"] = parts.netloc
        headers["User-Agent"] = crawler.user_agent
        headers["From"] = crawler.sender
        if credential is not None:
            headers["Authorization"] = credential.header()
        raw = (request_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode("latin-1")
        sock = self._socket(address)
        try:
            sock.sendall(raw)
            response = HTTPResponse(sock, method="GET")
            response.begin()
            payload = b""
            length = 0
            digest = hashlib.sha1()  # noqa: S324 - the archive's digest
            while chunk := response.read(64 * 1024):
                digest.update(chunk)
                length += len(chunk)
                if len(payload) < crawler.keep_bytes:
                    payload += chunk[: crawler.keep_bytes - len(payload)]
            will_close = response.will_close
            response.close()
        except BaseException:
            self.close()
            raise
        if will_close or profile.connection_close:
            self.close()
        sha1 = "sha1:" + base64.b32encode(digest.digest()).decode("ascii")
        return Exchange(url, request_line, headers, response.status, response.msg, payload, length, sha1)

    def _socket(self, address: tuple[str, int]) -> socket.socket:
        if self.sock is not None and self.address == address:
            return self.sock
        self.close()
        self.sock = socket.create_connection(address, timeout=self.crawler.timeout)
        self.address = address
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
