"""Pligt's web app: the factory; views per audience live in ``views/``."""

from __future__ import annotations

from flask import Flask
from flask import request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import generate_csrf
from werkzeug.middleware.proxy_fix import ProxyFix

from pligt.core.catalog import REQUEST_BUSY_TIMEOUT
from pligt.core.credentials.auth import Authenticator
from pligt.core.credentials.client_counts import CatalogCounts
from pligt.core.credentials.client_counts import ClientCounts
from pligt.core.credentials.shared_checks import SharedChecks
from pligt.core.models import Clock
from pligt.core.models import utcnow
from pligt.core.proof.checkpoints import BACKGROUND_DELAY
from pligt.instance import build_archive
from pligt.instance import require_initialised
from pligt.settings import Settings
from pligt.settings import load_settings
from pligt.web.page_cache import PageCache
from pligt.web.services import Pligt
from pligt.web.throttle import RateLimit


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
    require_initialised(settings)
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=settings.secret_file.read_bytes(),
        JSON_SORT_KEYS=False,
        PREFERRED_URL_SCHEME="https" if settings.base_url.startswith("https:") else "http",
        SESSION_COOKIE_NAME="pligt_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https:"),
    )
    # A request waits a few seconds for the catalog's write lock, then answers 503 (see REQUEST_BUSY_TIMEOUT).
    archive = build_archive(settings, clock, busy_timeout=REQUEST_BUSY_TIMEOUT)
    archive.catalog.ping()
    # No request waits for a checkpoint, and a burst of uploads shares one (see Checkpoints.after_change).
    archive.checkpoints.background, archive.checkpoints.delay = True, BACKGROUND_DELAY
    # App servers on several machines share only the catalog: the lock-out and the request-form
    # limit count there, under a key derived from the instance's secret (which they share too).
    counts: ClientCounts | None = shared_checks
    if archive.catalog.shared_between_machines:
        counts = CatalogCounts(archive.catalog, app.config["SECRET_KEY"])
    app.extensions["pligt"] = Pligt(
        settings=settings,
        archive=archive,
        authenticator=Authenticator(
            archive.catalog,
            settings.auth_cache_seconds,
            clock,
            max_failures=settings.auth_max_failures,
            refusal_seconds=settings.auth_lockout_seconds,
            shared=shared_checks,
            counts=counts,
        ),
        request_limit=RateLimit(settings.requests_per_hour_per_client, 3600, shared=counts),
        index_cache=PageCache(),
    )
    app.session_interface = _SessionInterface()
    from pligt.web import sanity
    from pligt.web.fastpath import FastDownloads

    sanity.init_app(app)
    app.wsgi_app = sanity.ValidHost(app.wsgi_app)  # type: ignore[method-assign]
    app.wsgi_app = FastDownloads(app.wsgi_app, app.extensions["pligt"])  # type: ignore[method-assign]
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=0, x_proto=n, x_host=n, x_port=n, x_prefix=n)  # type: ignore[method-assign]

    from pligt.web import errors
    from pligt.web import headers
    from pligt.web import i18n
    from pligt.web import limits
    from pligt.web.views import access
    from pligt.web.views import admin
    from pligt.web.views import api
    from pligt.web.views import protected
    from pligt.web.views import public

    i18n.init_app(app)
    limits.init_app(app)

    app.jinja_env.globals["csrf_token"] = generate_csrf
    for module in (errors, headers, public, protected, access, api, admin):
        app.register_blueprint(module.bp)
    return app
