"""Danish and English pages (Flask-Babel), Danish first for a Danish publisher.

The language comes from ``?lang=`` (the switch on every page, remembered in a
cookie), else the cookie, else the browser's Accept-Language, else Danish.
Crawlers send no Accept-Language and get the Danish pages.
"""

from __future__ import annotations

from flask import Flask
from flask import Response
from flask import g
from flask import request
from flask_babel import Babel
from flask_babel import format_decimal
from flask_babel import get_locale
from flask_babel import ngettext

LANGUAGES = ("da", "en")
DEFAULT = "da"
COOKIE = "pligt_lang"


def select_locale() -> str:
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        g.pligt_set_lang = asked
        return asked
    remembered = request.cookies.get(COOKIE)
    if remembered in LANGUAGES:
        return remembered
    return request.accept_languages.best_match(LANGUAGES, default=DEFAULT) or DEFAULT


def _remember_language(response: Response) -> Response:
    chosen = g.pop("pligt_set_lang", None)
    if chosen:
        response.set_cookie(
            COOKIE, chosen, max_age=365 * 24 * 3600, samesite="Lax", httponly=True, secure=request.is_secure
        )
    if response.mimetype == "text/html":
        response.vary.add("Accept-Language")
        response.vary.add("Cookie")
    return response


def size_text(size: int) -> str:
    """Write a size as Jinja's ``filesizeformat`` does (powers of 1000), in the page's language (``1,2 kB``)."""
    if size < 1000:
        return str(ngettext("%(count)s Byte", "%(count)s Bytes", size, count=format_decimal(size)))
    units = ("kB", "MB", "GB", "TB", "PB")
    value, unit = size / 1000, 0
    while value >= 1000 and unit < len(units) - 1:
        value, unit = value / 1000, unit + 1
    return f"{format_decimal(value, format='#,##0.0')} {units[unit]}"


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", "translations")
    Babel(app, locale_selector=select_locale)
    app.after_request(_remember_language)
    app.jinja_env.globals["get_locale"] = get_locale
    app.jinja_env.filters["size"] = size_text
