"""Pligt's web service: an app factory and one blueprint per audience."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask
from flask import current_app
from flask import request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import generate_csrf
from werkzeug.middleware.proxy_fix import ProxyFix

from archive import Archive
from archive import Catalog
from archive import open_backend
from archive.archive import Clock
from archive.auth import Authenticator
from archive.auth import Lockout
from archive.errors import ConfigurationError
from archive.models import utcnow
from archive.shared_checks import SharedChecks

from .settings import Settings
from .settings import load_settings
from .settings import storage_options
from .throttle import RateLimit

if TYPE_CHECKING:
    from .listing import PageCache


@dataclass
class Pligt:
    """The shared objects of one app, kept in ``app.extensions["pligt"]``."""

    settings: Settings
    archive: Archive
    authenticator: Authenticator
    #: Access requests per client (in memory only).
    request_limit: RateLimit
    #: Rendered index pages, per catalog generation.
    index_cache: PageCache


def pligt() -> Pligt:
    """Return the current app's :class:`Pligt` objects."""
    return current_app.extensions["pligt"]


def build_archive(settings: Settings, clock: Clock = utcnow) -> Archive:
    """Open the catalog and storage an instance is configured with."""
    archive = Archive(
        Catalog(settings.catalog),
        open_backend(settings.storage, **storage_options(settings)),
        retention_days=settings.retention_days,
        max_upload_bytes=settings.max_upload_bytes,
        fetch_budget_bytes=settings.fetch_budget_bytes,
        clock=clock,
    )
    archive.access.max_pending = settings.max_pending_requests
    return archive


class _SessionInterface(SecureCookieSessionInterface):
    """Session cookies marked Secure whenever the request came over TLS (after ProxyFix)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or super().get_cookie_secure(app)


def create_app(
    settings: Settings | None = None, *, clock: Clock = utcnow, shared_checks: SharedChecks | None = None
) -> Flask:
    """Build the WSGI app for an initialised instance (``pligt init`` makes one).

    :param settings: defaults to :func:`load_settings` from the environment.
    :param clock: the current time; tests pass their own to move through retention.
    :param shared_checks: password checks shared with the server's other workers
        (``pligt serve`` makes them before it starts the workers).
    """
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=_read_secret(settings),
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        JSON_SORT_KEYS=False,
        PREFERRED_URL_SCHEME="https" if settings.base_url.startswith("https:") else "http",
        SESSION_COOKIE_NAME="pligt_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https:"),
    )
    from .listing import PageCache

    archive = build_archive(settings, clock)
    archive.catalog.ping()
    app.extensions["pligt"] = Pligt(
        settings=settings,
        archive=archive,
        authenticator=Authenticator(
            archive.catalog,
            settings.auth_cache_seconds,
            clock,
            Lockout(settings.auth_max_failures, settings.auth_lockout_seconds),
            shared=shared_checks,
        ),
        request_limit=RateLimit(settings.requests_per_hour_per_client, 3600),
        index_cache=PageCache(),
    )
    app.session_interface = _SessionInterface()
    from .fastpath import FastDownloads

    app.wsgi_app = FastDownloads(app.wsgi_app, app.extensions["pligt"])  # type: ignore[method-assign]
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=0, x_proto=n, x_host=n, x_port=n, x_prefix=n)  # type: ignore[method-assign]

    from . import access
    from . import admin
    from . import api
    from . import errors
    from . import headers
    from . import i18n
    from . import protected
    from . import public

    i18n.init_app(app)

    app.jinja_env.globals["csrf_token"] = generate_csrf
    for module in (errors, headers, public, protected, access, api, admin):
        app.register_blueprint(module.bp)
    return app


def _read_secret(settings: Settings) -> bytes:
    try:
        return settings.secret_file.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(
            f"{settings.instance} is not an initialised instance (no {settings.secret_file.name}): run `pligt init`"
        ) from None
