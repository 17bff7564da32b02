"""The owner's console (``/admin``): items, upload, requests and credentials, the audit log.

Server-rendered pages with Flask-WTF forms (CSRF on every form) and a session
cookie; a little JavaScript shows upload progress. The console calls the same
``pligt.core`` API as the CLI and the owner API.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Blueprint
from flask import Response
from flask import flash
from flask import jsonify
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError
from flask_wtf.csrf import validate_csrf
from wtforms import BooleanField
from wtforms import IntegerField
from wtforms import PasswordField
from wtforms import RadioField
from wtforms import StringField
from wtforms import TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired
from wtforms.validators import Length
from wtforms.validators import NumberRange

from pligt.core.crawl_budget import FILE_TOO_LARGE
from pligt.core.crawl_budget import budget_warnings
from pligt.core.credentials.access import DEFAULT_VALID_DAYS
from pligt.core.deposits import OWNER_USERNAME
from pligt.core.deposits import Publication
from pligt.core.deposits import read_chunks
from pligt.core.errors import ArchiveError
from pligt.core.errors import AuditBroken
from pligt.core.errors import InvalidInput
from pligt.core.errors import LockedOut
from pligt.core.errors import TooLarge
from pligt.core.models import BY_USER_AGENT
from pligt.core.models import FETCHED
from pligt.core.models import NAMED
from pligt.core.models import PARTIAL
from pligt.core.models import PROTECTED
from pligt.core.models import PUBLIC
from pligt.core.models import Version
from pligt.core.proof.receipts import make_receipt
from pligt.core.retention import MISTAKE_WINDOW
from pligt.release import deliver
from pligt.web.clients import client_address
from pligt.web.errors import json_error
from pligt.web.errors import with_retry_after
from pligt.web.i18n import size_text
from pligt.web.limits import body_chunks
from pligt.web.refusals import worded
from pligt.web.services import pligt
from pligt.web.urls import public_base
from pligt.web.urls import version_path

bp = Blueprint("admin", __name__, url_prefix="/admin")

SORTS = {
    "slug": lambda v: (v.slug, v.number),
    "published": lambda v: v.published_at,
    "retained": lambda v: v.retain_until,
    "size": lambda v: v.size,
}


# -- signing in ---------------------------------------------------------------------


class LoginForm(FlaskForm):
    password = PasswordField(_l("Password"), validators=[InputRequired()])


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token."""


class ApproveForm(FlaskForm):
    valid_days = IntegerField(_l("Valid for (days)"), default=DEFAULT_VALID_DAYS, validators=[NumberRange(1, 3660)])
    show = BooleanField(_l("Show the password here instead of sending the link"))


class DenyForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), validators=[InputRequired(), Length(max=1000)])


class UploadForm(FlaskForm):
    title = StringField(_l("Title (optional)"), validators=[Length(max=200)])
    slug = StringField(_l("Slug (optional: an existing slug gets a new version)"), validators=[Length(max=80)])
    visibility = RadioField(
        _l("Access"),
        choices=[SelectChoice(PUBLIC, _l("Public")), SelectChoice(PROTECTED, _l("Protected"))],
        default=PROTECTED,
    )


#: A console session unused this long is over (the owner signs in again).
IDLE_SECONDS = 30 * 60


def _owner_epoch() -> str | None:
    """A value that changes when the owner's password changes or anyone signs out: it ends every session.

    The session cookie is signed, not stored, so ending one server-side means
    making every cookie issued before name an epoch that is no longer current.
    """
    catalog = pligt().archive.catalog
    owner = catalog.owner()
    return f"{hashlib.sha256(owner[1].encode()).hexdigest()[:16]}.{catalog.console_epoch()}" if owner else None


def _session_live() -> bool:
    """Tell whether this request's session is the owner's current one and not idle; mark it used."""
    now = int(pligt().archive.clock().timestamp())
    seen = session.get("seen")
    if session.get("owner") is None or session.get("owner") != _owner_epoch():
        return False
    if not isinstance(seen, int) or now - seen > IDLE_SECONDS:
        return False
    session["seen"] = now
    return True


def owner_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not _session_live():
            session.pop("owner", None)
            if request.accept_mimetypes.best == "application/json":
                return json_error(401, "Unauthorized", _("Please sign in."))
            return redirect(url_for("admin.login", next=request.full_path if request.method == "GET" else None))
        return view(*args, **kwargs)

    return wrapped


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        try:
            principal = pligt().authenticator.owner(OWNER_USERNAME, form.password.data or "", client=client_address())
        except LockedOut as e:
            form.password.errors.append(
                _("Too many failed attempts; try again in %(seconds)d seconds.", seconds=e.retry_after)
            )
            page = render_template("admin/login.html", form=form, username=OWNER_USERNAME)
            return with_retry_after(Response(page, 429), e.retry_after)
        if principal is not None:
            session.clear()
            session["owner"] = _owner_epoch()
            session["seen"] = int(pligt().archive.clock().timestamp())
            return redirect(_console_path(request.args.get("next")) or url_for("admin.items"))
        form.password.errors.append(_("Wrong password."))
        status = 401
    elif form.is_submitted():
        status = 400
    return Response(render_template("admin/login.html", form=form, username=OWNER_USERNAME), status)


def _console_path(target: str | None) -> str | None:
    """Return ``target`` if it is a path inside the console (the sign-in page's ``next``), else None.

    Nothing with control characters (a CR/LF would split the Location header),
    or backslashes (which some browsers read as slashes, making another host).
    """
    if not target or not target.startswith("/admin") or not target.isprintable() or "\\" in target:
        return None
    return target


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    form = ActionForm()
    if form.validate_on_submit():
        session.clear()
        pligt().archive.catalog.end_console_sessions()  # a copied cookie is over too
    return redirect(url_for("admin.login"))


# -- items ------------------------------------------------------------------------------


@bp.get("/")
@owner_required
def items() -> str:
    archive = pligt().archive
    now = archive.clock()
    show_withdrawn = request.args.get("withdrawn") == "1"
    versions = archive.versions(include_withdrawn=show_withdrawn)
    query = (request.args.get("q") or "").strip().lower()
    if query:
        versions = [v for v in versions if query in v.slug or query in v.title.lower() or query in v.filename.lower()]
    visibility = request.args.get("visibility")
    if visibility in (PUBLIC, PROTECTED):
        versions = [v for v in versions if v.visibility == visibility]
    asked = request.args.get("sort") or ""
    sort = asked if asked in SORTS else "slug"
    descending = request.args.get("order") == "desc"
    versions.sort(key=SORTS[sort], reverse=descending)
    return render_template(
        "admin/items.html",
        versions=versions,
        fetched=_fetched(),
        now=now,
        query=query,
        visibility=visibility,
        sort=sort,
        descending=descending,
        show_withdrawn=show_withdrawn,
        form=ActionForm(),
        version_path=version_path,
        mistake_window=MISTAKE_WINDOW,
    )


def _fetched() -> dict[int, str]:
    """Map version id to what the proof of deposit says of it, over every access request.

    The best state wins (fetched whole: held; then fetched in part; then named
    only: a 304, which shows no download), then the earliest date. A download by
    anyone without credentials that nothing ties to the deposit crawler does not count.
    """
    best: dict[int, tuple[int, datetime, str]] = {}
    for row in pligt().archive.harvest(personal=False):  # the institution is not shown here
        evidence = row.evidence
        if evidence is None:
            continue
        rank = _STATES.index(row.state)
        date = evidence.at.strftime("%Y-%m-%d")
        if row.state == FETCHED:
            text = date if evidence.via != BY_USER_AGENT else _("%(date)s (by its User-Agent)", date=date)
        elif row.state == PARTIAL:
            text = _("partly, %(date)s", date=date)
        else:
            text = _("not taken: only a 304 Not Modified, %(date)s", date=date)
        current = best.get(row.version.id)
        if current is None or (rank, evidence.at) < current[:2]:
            best[row.version.id] = (rank, evidence.at, text)
    return {version_id: text for version_id, (_rank, _at, text) in best.items()}


_STATES = (FETCHED, PARTIAL, NAMED)


@bp.post("/items/<slug>/versions/<int:number>/withdraw")
@owner_required
def withdraw(slug: str, number: int) -> ResponseReturnValue:
    form = ActionForm()
    if form.validate_on_submit():
        mistake = request.form.get("mistake") == "1"
        try:
            pligt().archive.withdraw(slug, number, mistake=mistake)
            if mistake:
                flash(_("Took back %(slug)s version %(number)d, published by mistake.", slug=slug, number=number), "ok")
            else:
                flash(_("Withdrew %(slug)s version %(number)d.", slug=slug, number=number), "ok")
        except ArchiveError as e:
            flash(worded(e), "error")
    return redirect(url_for("admin.items"))


@bp.get("/items/<slug>/versions/<int:number>/receipt")
@owner_required
def receipt(slug: str, number: int) -> Response:
    """The version's receipt to download (as ``pligt proof`` writes it), checked offline by anyone."""
    made = make_receipt(pligt().archive, slug, number)
    response = Response(json.dumps(made, indent=1, ensure_ascii=False) + "\n", mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="{slug}-v{number}.receipt.json"'
    return response


# -- upload ------------------------------------------------------------------------------


@bp.route("/upload", methods=["GET", "POST"])
@owner_required
def upload() -> ResponseReturnValue:
    """The upload page; without JavaScript the form posts the files as multipart."""
    form = UploadForm()
    results: list[dict[str, Any]] = []
    status = 200
    if form.validate_on_submit():
        files = [f for f in request.files.getlist("files") if f and f.filename]
        if not files:
            form.form_errors.append(_("Choose at least one file."))
            status = 400
        for storage in files:
            results.append(
                _publish(
                    read_chunks(storage.stream),
                    storage.filename or "",
                    form.title.data,
                    form.slug.data,
                    form.visibility.data,
                )
            )
        if any(not r["ok"] for r in results):
            # When every file failed, the server's own failure (507 out of space, 503) is the page's status.
            server_side = [r["status"] for r in results if not r["ok"] and r["status"] >= 500]
            status = 200 if any(r["ok"] for r in results) else max(server_side, default=400)
    elif form.is_submitted():
        status = 400
    return Response(render_template("admin/upload.html", form=form, results=results), status)


@bp.post("/upload/raw")
@owner_required
def upload_raw() -> tuple[Response, int]:
    """Publish one file sent as the raw request body (the page's script, with progress)."""
    try:
        validate_csrf(request.headers.get("X-CSRFToken", ""))
    except Exception as e:
        raise CSRFError(str(e)) from e
    result = _publish(
        body_chunks(),
        request.args.get("filename", ""),
        request.args.get("title"),
        request.args.get("slug"),
        request.args.get("visibility"),
        declared=request.content_length,
    )
    return jsonify(result), (200 if result["unchanged"] else 201) if result["ok"] else result["status"]


def _publish(
    chunks: Any,
    filename: str,
    title: str | None,
    slug: str | None,
    visibility: str | None,
    *,
    declared: int | None = None,
) -> dict[str, Any]:
    """Publish one file; return what the page shows of it, a refusal worded in the reader's language.

    :param declared: the body's announced size (Content-Length): one over the
        limit is refused before a byte is read.
    """
    try:
        if not filename:
            raise InvalidInput(_("The file has no name."))
        limit = pligt().settings.max_upload_bytes
        if declared is not None and declared > limit:
            raise TooLarge(limit, declared)
        publication = pligt().archive.publish(
            chunks, filename=filename, title=title or None, slug=slug or None, visibility=visibility or None
        )
    except ArchiveError as e:
        return {"ok": False, "filename": filename, "error": worded(e), "status": e.status_code}
    v = publication.version
    return {
        "ok": True,
        "unchanged": publication.unchanged,
        "message": _(
            "Unchanged: %(file)s has the very bytes of %(slug)s version %(number)d; nothing was published.",
            file=filename,
            slug=v.slug,
            number=v.number,
        )
        if publication.unchanged
        else "",
        "filename": v.filename,
        "slug": v.slug,
        "version": v.number,
        "content_type": v.content_type,
        "size": v.size,
        "retain_until": v.retain_until.strftime("%Y-%m-%d"),
        "url": version_path(v),
        "warnings": _worded_warnings(publication),
    }


def _worded_warnings(publication: Publication) -> list[str]:
    """The publication's crawl-budget warnings in the page's language (the core's are English, for the CLI and API)."""
    v = publication.version
    archive = pligt().archive
    worded = []
    for warning in budget_warnings([(v.filename, v.size)], archive.site_bytes(), archive.crawl_budget):
        if warning.kind == FILE_TOO_LARGE:
            worded.append(
                _(
                    "%(file)s is %(size)s: larger than the deposit crawler's per-file budget of %(budget)s (about "
                    "500 kB/s for at most 1200 s), so the crawler may not be able to fetch it whole; consider "
                    "splitting it.",
                    file=v.filename,
                    size=size_text(warning.size),
                    budget=size_text(warning.budget),
                )
            )
        else:
            worded.append(
                _(
                    "The retained versions add up to %(size)s: more than the deposit crawler fetches from one "
                    "domain in a default harvest (%(budget)s), so a harvest will be cut short; tell the deposit "
                    "institution, which can raise the domain's budget.",
                    size=size_text(warning.size),
                    budget=size_text(warning.budget),
                )
            )
    return worded


# -- requests and credentials -------------------------------------------------------------


@bp.get("/requests")
@owner_required
def requests_() -> str:
    """The newest page of requests (``?before=ID``: an older one), newest first, and every credential."""
    desk = pligt().archive.access
    before = request.args.get("before", type=int)
    page = desk.page(before=before if before is not None and before > 0 else None)
    return render_template(
        "admin/requests.html",
        requests=list(reversed(page.requests)),
        older=page.older,
        paged=before is not None,
        credentials=list(reversed(desk.credentials())),
        now=pligt().archive.clock(),
        approve_form=ApproveForm(),
        deny_form=DenyForm(),
        form=ActionForm(),
        delivered=session.pop("delivered", None),
    )


@bp.post("/requests/<int:request_id>/approve")
@owner_required
def approve(request_id: int) -> ResponseReturnValue:
    form = ApproveForm()
    if form.validate_on_submit():
        try:
            approval = pligt().archive.access.approve(request_id, form.valid_days.data or DEFAULT_VALID_DAYS)
            shown = bool(form.show.data)
            session["delivered"] = deliver(pligt().settings, pligt().archive, approval, shown, public_base())
        except ArchiveError as e:
            flash(worded(e), "error")
    else:
        flash(_("The form was not valid; please try again."), "error")
    return redirect(url_for("admin.requests_"))


@bp.post("/requests/<int:request_id>/deny")
@owner_required
def deny(request_id: int) -> ResponseReturnValue:
    form = DenyForm()
    if form.validate_on_submit():
        try:
            pligt().archive.access.deny(request_id, form.reason.data or "")
            flash(_("Denied request #%(id)d.", id=request_id), "ok")
        except ArchiveError as e:
            flash(worded(e), "error")
    else:
        flash(_("A denial needs a reason."), "error")
    return redirect(url_for("admin.requests_"))


@bp.post("/credentials/<int:credential_id>/revoke")
@owner_required
def revoke(credential_id: int) -> ResponseReturnValue:
    form = ActionForm()
    if form.validate_on_submit():
        try:
            credential = pligt().archive.access.revoke(credential_id)
            flash(_("Revoked %(username)s.", username=credential.username), "ok")
        except ArchiveError as e:
            flash(worded(e), "error")
    return redirect(url_for("admin.requests_"))


# -- audit ---------------------------------------------------------------------------------------


@bp.route("/audit", methods=["GET", "POST"])
@owner_required
def audit() -> str:
    archive = pligt().archive
    form = ActionForm()
    verified: dict[str, Any] | None = None
    if form.validate_on_submit():
        try:
            count, head = archive.verify_audit()
            verified = {"ok": True, "count": count, "head": head}
        except AuditBroken as e:
            verified = {"ok": False, "message": _("The log does not verify: %(reason)s", reason=e.message)}
    entries = list(archive.catalog.audit_entries(newest_first=True, limit=50))
    return render_template("admin/audit.html", entries=entries, head=archive.audit_head(), form=form, verified=verified)


def days_left(version: Version, now: datetime) -> int:
    """Whole days until the version's minimum retention ends (0 once it has)."""
    return max(0, int((version.retain_until - now).days))


bp.add_app_template_global(days_left, "days_left")
