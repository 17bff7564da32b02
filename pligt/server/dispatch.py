"""One WSGI app in front of a deployment's publishers: each request goes to the publisher its Host names.

Each publisher's app is :func:`pligt.web.create_app` with that publisher's
settings, so all it keeps (catalog, keys, caches, counters, lock-outs, session
and CSRF secret) is its own. The apps are built on a publisher's first request
in this worker and the least recently used beyond ``apps_in_memory`` are let
go: a server of a thousand publishers starts at once and holds only the ones in
use. Routing is :meth:`~pligt.hosting.Deployment.route`, on the ``Host`` header
alone; ``X-Forwarded-Host`` is removed before a publisher's app sees the
request, so that no proxy setting can make an app believe it is another's host.

A request for no publisher's name gets a 404 that names none; from the machine
itself (a proxy's question, no forwarded client) two paths answer too:
``/healthz`` and Caddy's ``/_pligt/ask?domain=NAME`` (200 for a publisher, else
404), which lets Caddy fetch certificates on demand for publishers' names only.

A suspended publisher's files and pages stay served (the crawler must never be
turned away from what is retained), but its console, API and forms answer 403.
"""

from __future__ import annotations

import ipaddress
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

from flask import Flask
from jinja2 import BytecodeCache
from jinja2.bccache import Bucket

from pligt.core.credentials.shared_checks import SharedChecks
from pligt.core.errors import ArchiveError
from pligt.core.errors import InvalidInput
from pligt.core.models import Clock
from pligt.core.models import utcnow
from pligt.hosting import Deployment
from pligt.hosting import publisher_name
from pligt.web import create_app
from pligt.web.sanity import StartResponse

ASK_PATH = "/_pligt/ask"
HEALTH_PATH = "/healthz"
#: What a suspended publisher still answers: reading, except its owner's console and API.
_READ_METHODS = frozenset({"GET", "HEAD"})
_OWNER_PREFIXES = ("/admin", "/api")


class _SharedTemplates(BytecodeCache):
    """Compiled templates kept once for every publisher's app (the templates are the same files)."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


class Dispatcher:
    """The deployment's WSGI app: route by Host, build publishers' apps lazily, keep the recent ones."""

    def __init__(
        self, deployment: Deployment, *, shared_checks: SharedChecks | None = None, clock: Clock = utcnow
    ) -> None:
        self.deployment = deployment
        self.shared_checks = shared_checks
        self.clock = clock
        self._apps: OrderedDict[str, Flask] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[str, threading.Lock] = {}
        self._templates = _SharedTemplates()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        name = self.deployment.route(environ.get("HTTP_HOST"))
        if name is None:
            return self._unrouted(environ, start_response)
        environ.pop("HTTP_X_FORWARDED_HOST", None)
        if self.deployment.is_suspended(name) and not _allowed_while_suspended(environ):
            return _plain(
                start_response,
                "403 Forbidden",
                "This publisher is suspended by its host: files stay online, changes wait.",
            )
        try:
            app = self.app(name)
        except ArchiveError:  # its catalog or storage is out of reach: this one publisher, for now
            return _plain(start_response, "503 Service Unavailable", "This publisher cannot be served right now.")
        return app(environ, start_response)

    # -- the publishers' apps -------------------------------------------------------------------

    def app(self, name: str) -> Flask:
        """Return the publisher's app, built now if this worker has none (one build at a time per publisher)."""
        with self._lock:
            app = self._apps.get(name)
            if app is not None:
                self._apps.move_to_end(name)
                return app
            building = self._building.setdefault(name, threading.Lock())
        with building:
            with self._lock:
                app = self._apps.get(name)
            if app is None:
                app = self._build(name)
            with self._lock:
                self._apps[name] = app
                self._apps.move_to_end(name)
                self._building.pop(name, None)
                while len(self._apps) > self.deployment.apps_in_memory:
                    # Requests under way keep their app until they end; the garbage collector closes the rest.
                    _, evicted = self._apps.popitem(last=False)
                    _close_later(evicted)
        return app

    def _build(self, name: str) -> Flask:
        settings = self.deployment.publisher_settings(name)
        shared = self.shared_checks.scoped(name) if self.shared_checks is not None else None
        app = create_app(settings, clock=self.clock, shared_checks=shared)
        app.jinja_env.bytecode_cache = self._templates
        return app

    @property
    def built(self) -> list[str]:
        """The publishers whose apps this worker holds, least recently used first."""
        with self._lock:
            return list(self._apps)

    # -- requests for no publisher ----------------------------------------------------------------

    def _unrouted(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if _from_this_machine(environ):
            if path == HEALTH_PATH:
                return _plain(start_response, "200 OK", "ok")
            if path == ASK_PATH:
                return self._ask(environ, start_response)
        return _plain(start_response, "404 Not Found", "No publisher is served at this address.")

    def _ask(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Caddy's on-demand TLS question: may a certificate be had for ``domain``? 200 only for a publisher."""
        asked = parse_qs(environ.get("QUERY_STRING", "")).get("domain", [""])
        try:
            name = publisher_name(asked[0]) if len(asked) == 1 and asked[0] == asked[0].strip() else ""
        except InvalidInput:
            name = ""
        if name and name == asked[0].lower() and self.deployment.is_publisher(name):
            return _plain(start_response, "200 OK", "yes")
        return _plain(start_response, "404 Not Found", "no")


#: Seconds an evicted publisher's PostgreSQL pool stays open for the requests still under way.
EVICTED_GRACE = 60.0


def _close_later(app: Flask) -> None:
    """Close an evicted app's PostgreSQL pool after a while (its threads would keep it alive forever).

    A SQLite catalog's connections go with the app when the garbage collector frees it.
    """
    catalog = app.extensions["pligt"].archive.catalog
    if catalog.shared_between_machines:
        timer = threading.Timer(EVICTED_GRACE, catalog.close)
        timer.daemon = True
        timer.start()


def _allowed_while_suspended(environ: dict[str, Any]) -> bool:
    path = environ.get("PATH_INFO", "")
    owners = any(path == p or path.startswith(p + "/") for p in _OWNER_PREFIXES)
    return environ.get("REQUEST_METHOD") in _READ_METHODS and not owners


def _from_this_machine(environ: dict[str, Any]) -> bool:
    """Tell whether the request comes from a loopback address and not through a proxy that forwards a client."""
    if any(key in environ for key in ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")):
        return False
    try:
        return ipaddress.ip_address(environ.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def _plain(start_response: StartResponse, status: str, text: str) -> list[bytes]:
    body = (text + "\n").encode("utf-8")
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("X-Content-Type-Options", "nosniff"),
            ("Cache-Control", "no-store"),
        ],
    )
    return [body]
