"""The index pages a crawler walks: paged, rendered once per change, served from memory.

A crawler fetches the indexes again and again; the catalog changes rarely.
Each page is rendered once per catalog generation (a counter the catalog's
triggers raise on every change to items, versions and credentials) and
language, and kept in memory; pages hold at most :data:`PAGE_SIZE` versions,
so no page is ever giant. The pages are kept in the app's
:class:`~pligt.web.page_cache.PageCache`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flask import Response
from flask import render_template
from flask import request
from flask_babel import get_locale
from flask_babel import gettext as _

from pligt.core.errors import NotFound
from pligt.core.errors import keyed
from pligt.core.models import PUBLIC
from pligt.core.models import Version
from pligt.links import version_path
from pligt.web.i18n import size_text
from pligt.web.services import pligt

PAGE_SIZE = 1000


@dataclass(frozen=True)
class Row:
    """One version as the index shows it, with everything formatted up front."""

    first: bool
    title: str
    path: str
    filename: str
    number: int
    access: str
    size: str
    type: str
    date: str
    iso: str


def rows(versions: list[Version], root: str = "") -> list[Row]:
    """Format versions (ordered by slug, number) newest first within each item.

    The ``latest`` redirects are not linked: a crawler would fetch every item twice.
    """
    labels = {"public": _("public"), "protected": _("protected")}
    out: list[Row] = []
    index = 0
    while index < len(versions):
        end = index
        while end < len(versions) and versions[end].slug == versions[index].slug:
            end += 1
        for position, v in enumerate(reversed(versions[index:end])):
            out.append(
                Row(
                    first=position == 0,
                    title=v.title,
                    path=root + version_path(v),
                    filename=v.filename,
                    number=v.number,
                    access=labels[v.visibility],
                    size=size_text(v.size),
                    type=v.content_type.split(";")[0],
                    date=v.published_at.strftime("%Y-%m-%d"),
                    iso=v.published_at.isoformat(),
                )
            )
        index = end
    return out


def index_page(template: str, *, visibility: str | None) -> Response:
    """Render (or serve from memory) one page of an index.

    :raises NotFound: for a page number beyond the last.
    """
    page = request.args.get("page", 1, type=int) or 1
    archive = pligt().archive
    generation = archive.catalog.lookups_generation()
    # Only the canonical query is cached: the page echoes its query back (the language
    # switch keeps it), and ``?page=1&page=TEXT`` must not reach the next visitor.
    cacheable = (
        set(request.args) <= {"page", "lang"}
        and all(len(request.args.getlist(name)) == 1 for name in request.args)
        and request.args.get("page", str(page)) == str(page)
    )
    key = (template, visibility, page, str(get_locale()), request.script_root)
    html = pligt().index_cache.get(key, generation) if cacheable else None
    if html is None:
        total = archive.catalog.count_versions(visibility=visibility)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        if not 1 <= page <= pages:
            raise keyed(NotFound, "index.page", f"the index has {pages} page(s)", pages=pages)
        versions = archive.versions(visibility=visibility, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        html = render_template(
            template,
            rows=rows(versions, request.script_root),
            show_visibility=visibility != PUBLIC,
            page=page,
            pages=pages,
        )
        if cacheable:
            pligt().index_cache.put(key, generation, html)
    return Response(html, mimetype="text/html")
