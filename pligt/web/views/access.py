"""The deposit institution's side: what is available, the request form, the release page."""

from __future__ import annotations

import threading

from flask import Blueprint
from flask import Response
from flask import jsonify
from flask import make_response
from flask import render_template
from flask import request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField
from wtforms import StringField
from wtforms import TextAreaField
from wtforms.validators import InputRequired
from wtforms.validators import Length

from pligt.core.crawl_budget import FILE_TOO_LARGE
from pligt.core.crawl_budget import SITE_TOO_LARGE
from pligt.core.crawl_budget import megabytes
from pligt.core.credentials.access import DEFAULT_LEGAL_BASIS
from pligt.core.credentials.access import FIELD_LIMITS
from pligt.core.credentials.access import clean_request
from pligt.core.errors import ArchiveError
from pligt.core.errors import InvalidRequest
from pligt.core.errors import TooManyRequests
from pligt.core.models import AccessRequest
from pligt.mail import mail_configured
from pligt.mail import notify_owner
from pligt.release import credential_facts
from pligt.web.clients import client_address
from pligt.web.errors import json_error
from pligt.web.errors import with_retry_after
from pligt.web.refusals import worded
from pligt.web.services import pligt
from pligt.web.urls import external_url
from pligt.web.urls import public_base

bp = Blueprint("access", __name__, url_prefix="/access")

_FIELDS = tuple(FIELD_LIMITS)


class RequestForm(FlaskForm):
    """The request for credentials; the core checks the same rules again."""

    institution = StringField(_l("Institution"), validators=[InputRequired(), Length(max=FIELD_LIMITS["institution"])])
    contact_name = StringField(
        _l("Contact name"), validators=[InputRequired(), Length(max=FIELD_LIMITS["contact_name"])]
    )
    contact_email = EmailField(
        _l("Contact email"), validators=[InputRequired(), Length(max=FIELD_LIMITS["contact_email"])]
    )
    legal_basis = TextAreaField(
        _l("Legal basis"), default=DEFAULT_LEGAL_BASIS, validators=[Length(max=FIELD_LIMITS["legal_basis"])]
    )
    message = TextAreaField(_l("Message"), validators=[Length(max=FIELD_LIMITS["message"])])


class ReleaseForm(FlaskForm):
    """Only a CSRF token: revealing the credentials takes a deliberate POST."""


def _file(fields: dict[str, str | None]) -> AccessRequest:
    """Throttle, file and notify; raise TooManyRequests when a client sends too many."""
    wait = pligt().request_limit.hit(client_address())
    if wait:
        raise TooManyRequests("too many requests from this client; please try again later", retry_after=wait)
    filed = pligt().archive.access.file(fields)
    # The owner's email must not hold up the answer; the catalog has the request either way.
    threading.Thread(target=notify_owner, args=(pligt().settings, filed), daemon=True).start()
    return filed


@bp.route("/", methods=["GET", "POST"])
def index() -> Response:
    """Explain access and take a request through the form."""
    form = RequestForm()
    status = 200
    if form.validate_on_submit():
        try:
            filed = _file(_form_fields(form))
        except InvalidRequest as e:
            for name, message in e.errors.items():
                getattr(form, name).errors.append(message)
            status = 400
        except TooManyRequests as e:
            form.form_errors.append(
                worded(e) if e.key else _("There are too many requests right now; please try again later.")
            )
            page = render_template("access.html", form=form, budget=_budget())
            return with_retry_after(make_response(page, 429), e.retry_after)
        else:
            return make_response(_filed_page(filed), 201)
    elif form.is_submitted():
        status = 400
        if form.csrf_token.errors:
            form.form_errors.append(_("The form expired or was sent from elsewhere; please send it again."))
        else:
            _add_core_errors(form)
    return make_response(render_template("access.html", form=form, budget=_budget()), status)


def _budget() -> dict[str, object]:
    """What the institution's staff should know before a harvest: files and a site too large for its budget.

    Counts and sizes only: the names of protected files are not for this public page.
    """
    warnings = pligt().archive.crawl_budget_warnings()
    files = [w for w in warnings if w.kind == FILE_TOO_LARGE]
    site = next((w for w in warnings if w.kind == SITE_TOO_LARGE), None)
    return {
        "files": len(files),
        "largest": megabytes(max((w.size for w in files), default=0)),
        "file_budget": megabytes(files[0].budget) if files else "",
        "site": megabytes(site.size) if site else "",
        "site_budget": megabytes(site.budget) if site else "",
    }


def _filed_page(filed: AccessRequest) -> str:
    """The confirmation, saying only what happens: without SMTP no email goes out, and the owner passes the link on."""
    settings = pligt().settings
    return render_template(
        "access_filed.html",
        request_=filed,
        owner_told=mail_configured(settings) and bool(settings.owner_email),
        link_by_mail=mail_configured(settings),
    )


def _form_fields(form: RequestForm) -> dict[str, str | None]:
    fields = {name: getattr(form, name).data for name in _FIELDS}
    # The legal basis is one line; its text area wraps it, and a typed line break is not an error.
    fields["legal_basis"] = " ".join((fields["legal_basis"] or "").split())
    return fields


def _add_core_errors(form: RequestForm) -> None:
    """Show the core's errors too for fields the form's own checks passed: every bad field at once."""
    try:
        clean_request(_form_fields(form))
    except InvalidRequest as e:
        for name, message in e.errors.items():
            if not getattr(form, name).errors:
                getattr(form, name).errors.append(message)


@bp.post("/requests")
def file_json() -> Response:
    """File a request as JSON (``Content-Type: application/json``): 201 with the request's id.

    Its errors are JSON too, whatever the client's Accept header says.
    """
    if not request.is_json:
        return json_error(415, "UnsupportedMediaType", "send a JSON object with Content-Type: application/json")
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return json_error(400, "InvalidRequest", "the body is not a JSON object")
    try:
        filed = _file({name: _text(data.get(name)) for name in _FIELDS})
    except InvalidRequest as e:
        return json_error(400, "InvalidRequest", e.message, errors=e.errors)
    except TooManyRequests as e:
        return json_error(429, "TooManyRequests", e.message, retry_after=e.retry_after)
    response = jsonify(id=filed.id, status=filed.status)
    response.status_code = 201
    response.headers["Location"] = external_url("access.index")
    return response


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None if value is None else str(value)


@bp.route("/release/<token>", methods=["GET", "POST"])
def release(token: str) -> Response:
    """Show the single-use release: a button first (link scanners only GET), then the credentials."""
    form = ReleaseForm()
    desk = pligt().archive.access
    try:
        if form.validate_on_submit():
            filed, credential, password = desk.release(token)
            page = render_template(
                "release.html",
                state="released",
                credential=credential,
                facts=credential_facts(public_base(), pligt().settings.realm, credential.username, password),
                request_=filed,
                protected_url=external_url("protected.index"),
            )
            status = 200
        else:
            desk.check_release(token)
            page = render_template("release.html", state="ready", form=form)
            status = 400 if form.is_submitted() else 200
    except ArchiveError as e:
        page = render_template("release.html", state="unavailable", reason=worded(e))
        status = e.status_code
    response = make_response(page, status)
    response.headers["Cache-Control"] = "no-store"
    return response
