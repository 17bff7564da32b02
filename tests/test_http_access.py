"""The access-request workflow over HTTP: the public request page and its JSON twin, the
owner told by a real SMTP server, the single-use release page, the owner's API for
deciding, revoking, rotating and auditing, the cost of a wrong password,
the proof of deposit written as downloads close, and the headers and cookies of every page."""

from __future__ import annotations

import json
import sqlite3
import statistics
import time
from dataclasses import dataclass
from dataclasses import field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from pligt.core import Archive
from pligt.core.credentials.access import DEFAULT_LEGAL_BASIS
from pligt.core.credentials.access import Approval
from pligt.core.models import AccessRequest
from pligt.core.models import Credential
from pligt.core.models import to_text
from pligt.instance import build_archive
from pligt.settings import load_settings
from pligt.web.services import pligt
from tests.support.access import REQUEST_FIELDS
from tests.support.access import issue_credential
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.app import make_app
from tests.support.cli import invoke
from tests.support.data import pdf_bytes
from tests.support.mail import Mailbox
from tests.support.mail import smtp_env
from tests.support.net import free_port
from tests.support.pages import assert_json_error
from tests.support.servers import Server

FORM_FIELDS = ("institution", "contact_name", "contact_email", "legal_basis", "message")
CSRF_MESSAGE = "The form expired or was sent from elsewhere; please send it again."
OWNER_EMAIL = "owner@publisher.example.dk"
NOW = "2026-01-05T12:00:00Z"  # the test clock's start


# -- reading the pages --------------------------------------------------------------------------


@dataclass
class Field:
    """One form control as the page shows it, with its label and the error next to it."""

    name: str
    tag: str
    attrs: dict[str, str]
    value: str = ""
    label_for: str | None = None
    label: str = ""
    error: str | None = None
    error_id: str | None = None
    invalid: bool = False


@dataclass
class Page(HTMLParser):
    """The forms, fields, hidden inputs, alerts and text of an HTML page."""

    html: str
    fields: dict[str, Field] = field(default_factory=dict)
    hidden: dict[str, str] = field(default_factory=dict)
    forms: list[dict[str, str]] = field(default_factory=list)
    buttons: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    by_id: dict[str, str] = field(default_factory=dict)
    text: str = ""

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._block: dict[str, Any] | None = None
        self._capture: list[tuple[str, str, list[str]]] = []  # (tag, purpose, parts)
        self._parts: list[str] = []
        self.feed(self.html)
        self.close()
        self.text = " ".join("".join(self._parts).split())

    def handle_starttag(self, tag: str, attr_list: list[tuple[str, str | None]]) -> None:
        attrs = {k: v or "" for k, v in attr_list}
        classes = attrs.get("class", "").split()
        if tag == "form":
            self.forms.append(attrs)
        elif tag == "div" and "field" in classes:
            self._block = {"fields": [], "label_for": None, "label": "", "error": None, "error_id": None}
            self._block["invalid"] = "invalid" in classes
        elif tag == "input" and attrs.get("type") == "hidden":
            self.hidden[attrs.get("name", "")] = attrs.get("value", "")
        elif tag in ("input", "textarea") and self._block is not None:
            control = Field(attrs.get("name", ""), tag, attrs, attrs.get("value", ""))
            self._block["fields"].append(control)
            if tag == "textarea":
                self._capture.append((tag, "textarea", []))
        elif tag == "label" and self._block is not None:
            self._block["label_for"] = attrs.get("for")
            self._capture.append((tag, "label", []))
        elif tag == "p" and "error" in classes and self._block is not None:
            self._block["error_id"] = attrs.get("id")
            self._capture.append((tag, "error", []))
        elif tag == "button":
            self._capture.append((tag, "button", []))
        elif attrs.get("role") == "alert":
            self._capture.append((tag, "alert", []))
        elif "id" in attrs:
            self._capture.append((tag, "id:" + attrs["id"], []))

    def _end_field_part(self, purpose: str, text: str) -> None:
        block = self._block
        assert block is not None  # captured only inside a field's block
        if purpose == "textarea":
            # The first newline after <textarea> is not part of the value (HTML spec).
            block["fields"][-1].value = text[2:] if text.startswith("\r\n") else text.removeprefix("\n")
        else:
            block[purpose] = " ".join(text.split())

    def handle_endtag(self, tag: str) -> None:
        if self._capture and self._capture[-1][0] == tag:
            _, purpose, parts = self._capture.pop()
            text = "".join(parts)
            if purpose in ("textarea", "label", "error"):
                self._end_field_part(purpose, text)
            elif purpose == "button":
                self.buttons.append(" ".join(text.split()))
            elif purpose == "alert":
                self.alerts.append(" ".join(text.split()))
            else:
                self.by_id[purpose[3:]] = text
        if tag == "div" and self._block is not None:
            for control in self._block["fields"]:
                control.label_for = self._block["label_for"]
                control.label = self._block["label"]
                control.error = self._block["error"]
                control.error_id = self._block["error_id"]
                control.invalid = self._block["invalid"]
                self.fields[control.name] = control
            self._block = None

    def handle_data(self, data: str) -> None:
        self._parts.append(data)
        for _, _, parts in self._capture:
            parts.append(data)


def page(response: TestResponse) -> Page:
    assert response.mimetype == "text/html"
    return Page(response.get_data(as_text=True))


def csrf_token(client: FlaskClient, path: str = "/access/", **kwargs: Any) -> str:
    response = client.get(path, **kwargs)
    assert response.status_code == 200
    token = page(response).hidden["csrf_token"]
    assert len(token) > 20
    return token


def post_form(client: FlaskClient, fields: dict[str, str] | None = None, **kwargs: Any) -> TestResponse:
    """File the request form as a browser does: GET for the token, then POST with it."""
    token = csrf_token(client, **kwargs)
    return client.post("/access/", data={**REQUEST_FIELDS, **(fields or {}), "csrf_token": token}, **kwargs)


def app_with(instance: Instance, clock: Clock, **env: str) -> tuple[FlaskClient, Archive]:
    """An app on the same instance with some PLIGT_* settings: (test client, its archive)."""
    settings = load_settings(instance.path, env={f"PLIGT_{k.upper()}": v for k, v in env.items()})
    app = make_app(settings, clock)
    with app.app_context():
        return app.test_client(), pligt().archive


def audit_actions(archive: Archive) -> list[str]:
    return [e.action for e in archive.catalog.audit_entries()]


# -- the request page ---------------------------------------------------------------------------


def test_access_page_explains_and_shows_the_request_form(client: FlaskClient, instance: Instance) -> None:
    response = client.get("/access/")

    assert response.status_code == 200
    shown = page(response)
    assert "behind a password" in shown.text
    assert "The legal-deposit institution gets its own crawler credentials after a formal request" in shown.text
    assert "Pligtafleveringsloven" in shown.text
    assert instance.settings.realm in shown.text
    assert [f for f in shown.forms if f.get("method") == "post" and f.get("action") == "/access/"]
    assert "csrf_token" in shown.hidden
    assert list(shown.fields) == list(FORM_FIELDS)
    for name, control in shown.fields.items():
        control_id = control.attrs.get("id")
        assert control_id, name
        assert control.label_for == control_id, name
        assert control.label, name
        assert control.error is None and not control.invalid, name
    assert shown.fields["contact_email"].attrs["type"] == "email"
    assert shown.fields["legal_basis"].tag == "textarea"
    assert shown.fields["legal_basis"].value == DEFAULT_LEGAL_BASIS
    assert "Pligtafleveringsloven" in shown.fields["legal_basis"].value
    assert shown.fields["message"].tag == "textarea"
    assert shown.fields["institution"].value == ""
    assert [b for b in shown.buttons if b not in ("Dansk", "English")] == ["Send request"]  # beside the language switch


def test_form_with_csrf_token_files_a_pending_request(client: FlaskClient, archive: Archive) -> None:
    response = post_form(client, {"legal_basis": DEFAULT_LEGAL_BASIS})

    assert response.status_code == 201
    filed = archive.access.requests()
    assert len(filed) == 1
    request = filed[0]
    assert request.status == "pending"
    assert request.institution == REQUEST_FIELDS["institution"]
    assert request.contact_name == REQUEST_FIELDS["contact_name"]
    assert request.contact_email == REQUEST_FIELDS["contact_email"]
    assert request.legal_basis == DEFAULT_LEGAL_BASIS
    assert request.message == REQUEST_FIELDS["message"]
    shown = page(response)
    assert shown.by_id["request-id"] == str(request.id)
    assert "pending" in shown.text
    entries = list(archive.catalog.audit_entries())
    assert [(e.action, e.data) for e in entries] == [("request.filed", {"request": request.id})]
    assert entries[0].personal is not None
    assert entries[0].personal["institution"] == REQUEST_FIELDS["institution"]


def test_form_legal_basis_left_empty_gets_the_act(client: FlaskClient, archive: Archive) -> None:
    assert post_form(client, {"legal_basis": ""}).status_code == 201
    assert archive.access.requests()[0].legal_basis == DEFAULT_LEGAL_BASIS


@pytest.mark.parametrize(
    "token", [None, "", "not-a-token", "IjAxMjM0NTY3ODkwYWJjZGVmIg.aaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbb"]
)
def test_form_without_a_valid_csrf_token_is_refused(client: FlaskClient, archive: Archive, token: str | None) -> None:
    client.get("/access/")  # a session exists, but the token sent is not its own
    data = {**REQUEST_FIELDS, "institution": "Skjult forsøg"}
    if token is not None:
        data["csrf_token"] = token

    response = client.post("/access/", data=data)

    assert response.status_code == 400
    shown = page(response)
    assert CSRF_MESSAGE in shown.alerts
    assert list(shown.fields) == list(FORM_FIELDS)
    assert shown.fields["institution"].value == "Skjult forsøg"
    assert shown.hidden["csrf_token"]
    assert archive.access.requests() == []
    assert audit_actions(archive) == []


def test_form_with_another_sessions_csrf_token_is_refused(app: Flask, client: FlaskClient, archive: Archive) -> None:
    foreign = csrf_token(app.test_client())
    client.get("/access/")

    response = client.post("/access/", data={**REQUEST_FIELDS, "csrf_token": foreign})

    assert response.status_code == 400
    assert CSRF_MESSAGE in page(response).alerts
    assert archive.access.requests() == []


def test_form_without_a_session_cookie_is_refused(app: Flask, archive: Archive) -> None:
    token = csrf_token(app.test_client())
    cookieless = app.test_client(use_cookies=False)

    response = cookieless.post("/access/", data={**REQUEST_FIELDS, "csrf_token": token})

    assert response.status_code == 400
    assert CSRF_MESSAGE in page(response).alerts
    assert archive.access.requests() == []


BAD_INPUT = [
    pytest.param({"contact_email": "netarkivet.example.dk"}, "contact_email", "not a valid email address", id="email"),
    pytest.param({"contact_email": "a@b"}, "contact_email", "not a valid email address", id="email-no-tld"),
    pytest.param({"institution": ""}, "institution", "required", id="empty-institution"),
    pytest.param({"institution": "   "}, "institution", "required", id="blank-institution"),
    pytest.param({"contact_name": ""}, "contact_name", "required", id="empty-name"),
    pytest.param({"institution": "K" * 201}, "institution", "200", id="long-institution"),
    pytest.param({"contact_email": "a" * 250 + "@kb.dk"}, "contact_email", "254", id="long-email"),
    pytest.param({"legal_basis": "§" * 501}, "legal_basis", "500", id="long-legal-basis"),
    pytest.param({"message": "x" * 5001}, "message", "5000", id="long-message"),
    pytest.param({"institution": "Det Kgl.\x07Bibliotek"}, "institution", "control characters", id="bell"),
    pytest.param({"contact_name": "Netarkivet\x1b[2J"}, "contact_name", "control characters", id="escape"),
    pytest.param({"legal_basis": "§ 8\x00og § 10"}, "legal_basis", "control characters", id="nul"),
]


@pytest.mark.parametrize(("changes", "bad", "words"), BAD_INPUT)
def test_bad_input_reshows_the_form_with_the_error_next_to_the_field(
    client: FlaskClient, archive: Archive, changes: dict[str, str], bad: str, words: str
) -> None:
    typed = {
        **REQUEST_FIELDS,
        "legal_basis": "Pligtafleveringsloven § 8",
        "message": "Hej\r\nmed venlig hilsen",
        **changes,
    }

    response = post_form(client, typed)

    assert response.status_code == 400
    shown = page(response)
    assert list(shown.fields) == list(FORM_FIELDS)
    control = shown.fields[bad]
    assert control.invalid
    assert control.error is not None
    assert words.lower() in control.error.lower(), control.error
    assert control.error_id == f"{bad}-error"
    assert control.attrs.get("aria-invalid") == "true"
    assert control.attrs.get("aria-describedby") == f"{bad}-error"
    for name in FORM_FIELDS:
        if name != bad:
            assert shown.fields[name].error is None, (name, shown.fields[name].error)
        expected = typed[name].replace("\r\n", "\n") if shown.fields[name].tag == "textarea" else typed[name]
        assert shown.fields[name].value.replace("\r\n", "\n") == expected, name
    assert shown.hidden["csrf_token"]
    assert archive.access.requests() == []
    assert audit_actions(archive) == []


def test_a_legal_basis_typed_over_several_lines_is_one_line(client: FlaskClient, archive: Archive) -> None:
    response = post_form(client, {"legal_basis": "Pligtafleveringsloven\r\n§ 8 og § 10\r\n"})

    assert response.status_code == 201
    assert archive.access.requests()[0].legal_basis == "Pligtafleveringsloven § 8 og § 10"


def test_several_bad_fields_each_get_their_error(client: FlaskClient, archive: Archive) -> None:
    response = post_form(client, {"contact_email": "nobody", "contact_name": "x" * 201})

    assert response.status_code == 400
    shown = page(response)
    assert shown.fields["contact_name"].error
    assert shown.fields["contact_email"].error
    assert shown.fields["institution"].error is None
    assert archive.access.requests() == []


def test_the_page_does_not_inject_what_was_typed(client: FlaskClient, archive: Archive) -> None:
    evil = '"><script>alert(1)</script>'
    response = post_form(client, {"institution": evil, "contact_email": "nobody"})

    assert response.status_code == 400
    assert b"<script>" not in response.data
    assert page(response).fields["institution"].value == evil


def test_filing_is_throttled_per_client(instance: Instance, clock: Clock) -> None:
    client, archive = app_with(instance, clock, requests_per_hour_per_client="2")

    assert post_form(client, {"institution": "Første"}).status_code == 201
    assert client.post("/access/requests", json={**REQUEST_FIELDS, "institution": "Anden"}).status_code == 201
    third = post_form(client, {"institution": "Tredje"})

    assert third.status_code == 429
    assert 3500 <= int(third.headers["Retry-After"]) <= 3600
    shown = page(third)
    assert any("too many requests" in alert for alert in shown.alerts)
    assert shown.fields["institution"].value == "Tredje"
    as_json = client.post("/access/requests", json={**REQUEST_FIELDS, "institution": "Fjerde"})
    assert_json_error(as_json, 429, "too many requests")
    assert 3500 <= int(as_json.headers["Retry-After"]) <= 3600
    assert [r.institution for r in archive.access.requests()] == ["Første", "Anden"]

    other = {"REMOTE_ADDR": "192.0.2.44"}
    assert post_form(client, {"institution": "Anden klient"}, environ_base=other).status_code == 201
    assert len(archive.access.requests()) == 3


def test_filing_stops_while_too_many_requests_are_pending(instance: Instance, clock: Clock) -> None:
    client, archive = app_with(instance, clock, max_pending_requests="2")
    for n in (1, 2):
        response = post_form(client, {"institution": f"Institution {n}"}, environ_base={"REMOTE_ADDR": f"192.0.2.{n}"})
        assert response.status_code == 201

    refused = post_form(client, {"institution": "Institution 3"}, environ_base={"REMOTE_ADDR": "192.0.2.3"})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert any("wait for the owner" in alert for alert in page(refused).alerts)
    as_json = client.post("/access/requests", json=REQUEST_FIELDS, environ_base={"REMOTE_ADDR": "192.0.2.4"})
    assert_json_error(as_json, 429, "wait for the owner")
    assert "Retry-After" in as_json.headers
    assert len(archive.access.requests()) == 2

    archive.access.deny(archive.access.requests()[0].id, "not a deposit institution")
    again = post_form(client, {"institution": "Institution 5"}, environ_base={"REMOTE_ADDR": "192.0.2.5"})
    assert again.status_code == 201


# -- the JSON twin ---------------------------------------------------------------------------


def test_json_filing_answers_201_with_the_id(client: FlaskClient, archive: Archive) -> None:
    response = client.post("/access/requests", json=REQUEST_FIELDS)

    assert response.status_code == 201
    assert response.mimetype == "application/json"
    request = archive.access.requests()[0]
    assert response.get_json() == {"id": request.id, "status": "pending"}
    assert request.status == "pending"
    assert request.legal_basis == DEFAULT_LEGAL_BASIS
    assert "pligt_session" not in response.headers.get("Set-Cookie", "")
    assert audit_actions(archive) == ["request.filed"]

    second = client.post("/access/requests", json={**REQUEST_FIELDS, "institution": "Statsbiblioteket"})
    assert second.get_json() == {"id": request.id + 1, "status": "pending"}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (json.dumps(REQUEST_FIELDS), "text/plain"),
        (json.dumps(REQUEST_FIELDS), None),
        ("institution=KB&contact_name=N&contact_email=n%40kb.dk", "application/x-www-form-urlencoded"),
    ],
)
def test_json_filing_needs_the_json_content_type(
    client: FlaskClient, archive: Archive, body: str, content_type: str | None
) -> None:
    kwargs = {"content_type": content_type} if content_type else {}
    response = client.post("/access/requests", data=body, **kwargs)

    assert_json_error(response, 415, "application/json")
    assert archive.access.requests() == []


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '"text"', "null"])
def test_json_filing_that_is_not_an_object_is_refused(client: FlaskClient, archive: Archive, body: str) -> None:
    response = client.post("/access/requests", data=body, content_type="application/json")

    assert_json_error(response, 400, "JSON object")
    assert archive.access.requests() == []


def test_json_filing_names_each_bad_field(client: FlaskClient, archive: Archive) -> None:
    response = client.post(
        "/access/requests",
        json={**REQUEST_FIELDS, "institution": " ", "contact_email": "nobody@", "message": "m" * 5001},
    )

    body = assert_json_error(response, 400)
    assert body["errors"] == {
        "institution": "required",
        "contact_email": "not a valid email address",
        "message": "at most 5000 characters",
    }
    control = client.post("/access/requests", json={**REQUEST_FIELDS, "contact_name": "Net\x00arkivet"})
    assert assert_json_error(control, 400)["errors"] == {"contact_name": "contains control characters"}
    assert archive.access.requests() == []
    assert audit_actions(archive) == []


# -- the owner is told --------------------------------------------------------------------------


def test_filing_notifies_the_owner_through_smtp(instance: Instance, clock: Clock, smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    app = make_app(load_settings(instance.path, env=smtp_env(port)), clock)
    client = app.test_client()

    response = post_form(client, {"institution": "Det Kgl. Bibliotek, Netarkivet"})

    assert response.status_code == 201
    with app.app_context():
        request = pligt().archive.access.requests()[0]
    messages = mailbox.wait_for(1)
    assert len(messages) == 1
    message = messages[0]
    assert message["To"] == OWNER_EMAIL
    assert message["From"] == "pligt@publisher.example.dk"
    assert f"#{request.id}" in message["Subject"]
    assert "Det Kgl. Bibliotek, Netarkivet" in message["Subject"]
    body = message.get_content()
    assert f"#{request.id}" in body
    assert "Det Kgl. Bibliotek, Netarkivet" in body
    assert REQUEST_FIELDS["contact_email"] in body
    assert f"pligt approve {request.id}" in body


def test_filing_succeeds_while_smtp_is_down(instance: Instance, clock: Clock) -> None:
    app = make_app(load_settings(instance.path, env=smtp_env(free_port())), clock)
    client = app.test_client()

    began = time.monotonic()
    by_form = post_form(client)
    by_json = client.post("/access/requests", json=REQUEST_FIELDS)

    assert by_form.status_code == 201
    assert by_json.status_code == 201
    assert time.monotonic() - began < 5
    with app.app_context():
        assert [r.status for r in pligt().archive.access.requests()] == ["pending", "pending"]


# -- the release page --------------------------------------------------------------------------


@pytest.fixture
def approved(archive: Archive) -> Approval:
    """A filed and approved request, its release link not yet followed."""
    request = archive.access.file(dict(REQUEST_FIELDS))
    return archive.access.approve(request.id)


def release_path(token: str) -> str:
    return f"/access/release/{token}"


def reveal(client: FlaskClient, token: str) -> TestResponse:
    path = release_path(token)
    return client.post(path, data={"csrf_token": csrf_token(client, path)})


def test_release_link_shows_a_button_not_the_password(
    client: FlaskClient, archive: Archive, approved: Approval
) -> None:
    path = release_path(approved.release_token)

    for _ in range(2):  # a link scanner may GET it any number of times
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        shown = page(response)
        assert approved.password not in response.get_data(as_text=True)
        assert approved.credential.username not in response.get_data(as_text=True)
        assert [f for f in shown.forms if f.get("method") == "post"]
        assert shown.hidden["csrf_token"]
        assert len([b for b in shown.buttons if b not in ("Dansk", "English")]) == 1  # beside the language switch
    assert archive.access.get(approved.request.id).status == "approved"
    assert "credential.released" not in audit_actions(archive)


def test_release_post_shows_the_credentials_once(
    client: FlaskClient, archive: Archive, instance: Instance, approved: Approval
) -> None:
    response = reveal(client, approved.release_token)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    shown = page(response)
    assert shown.by_id["domain"] == "localhost"  # the host the request came to: http, port 80
    assert shown.by_id["realm"] == instance.settings.realm
    assert shown.by_id["username"] == approved.credential.username
    assert shown.by_id["password"] == approved.password
    assert "for the legal-deposit institution alone" in shown.text
    assert "§ 10" in shown.text
    auth = (approved.credential.username, approved.password)
    assert client.get("/protected/", auth=auth).status_code == 200
    assert archive.access.get(approved.request.id).status == "released"
    released = [e for e in archive.catalog.audit_entries() if e.action == "credential.released"]
    assert [e.data for e in released] == [
        {"request": approved.request.id, "credential": approved.credential.id, "via": "link"}
    ]

    again = client.get(release_path(approved.release_token))
    assert again.status_code == 410
    assert "already released" in page(again).alerts[0]
    assert approved.password not in again.get_data(as_text=True)
    token = page(client.get("/access/")).hidden["csrf_token"]
    repost = client.post(release_path(approved.release_token), data={"csrf_token": token})
    assert repost.status_code == 410
    assert "already released" in page(repost).alerts[0]
    assert approved.password not in repost.get_data(as_text=True)
    assert audit_actions(archive).count("credential.released") == 1


def test_release_post_without_csrf_token_reveals_nothing(
    client: FlaskClient, archive: Archive, approved: Approval
) -> None:
    path = release_path(approved.release_token)
    client.get(path)

    for data in ({}, {"csrf_token": "forged"}):
        response = client.post(path, data=data)
        assert response.status_code == 400
        assert approved.password not in response.get_data(as_text=True)
    assert archive.access.get(approved.request.id).status == "approved"
    assert reveal(client, approved.release_token).status_code == 200


def test_unknown_release_link_is_404(client: FlaskClient, approved: Approval) -> None:
    for token in ("x" * 43, approved.release_token[:-1] + ("A" if approved.release_token[-1] != "A" else "B")):
        response = client.get(release_path(token))
        assert response.status_code == 404
        assert "not valid" in page(response).alerts[0]
        assert response.headers["Cache-Control"] == "no-store"


def test_expired_release_link_says_it_expired(
    client: FlaskClient, archive: Archive, clock: Clock, approved: Approval
) -> None:
    path = release_path(approved.release_token)
    token = csrf_token(client, path)
    clock.advance(days=8)

    response = client.get(path)
    assert response.status_code == 410
    assert "expired" in page(response).alerts[0]
    posted = client.post(path, data={"csrf_token": token})
    assert posted.status_code == 410
    assert "expired" in page(posted).alerts[0]
    assert approved.password not in posted.get_data(as_text=True)
    assert "credential.released" not in audit_actions(archive)


def test_revoked_credentials_link_is_gone(client: FlaskClient, archive: Archive, approved: Approval) -> None:
    path = release_path(approved.release_token)
    token = csrf_token(client, path)
    archive.access.revoke(approved.credential.id)

    response = client.get(path)
    assert response.status_code == 410
    assert "revoked" in page(response).alerts[0]
    posted = client.post(path, data={"csrf_token": token})
    assert posted.status_code == 410
    assert approved.password not in posted.get_data(as_text=True)


# -- the owner's API ------------------------------------------------------------------------------


def api(client: FlaskClient, instance: Instance, method: str, path: str, **kwargs: Any) -> TestResponse:
    return client.open("/api" + path, method=method, auth=instance.owner_auth, **kwargs)


@pytest.fixture
def filed(archive: Archive) -> AccessRequest:
    return archive.access.file(dict(REQUEST_FIELDS))


def test_api_lists_requests_for_the_owner_only(
    client: FlaskClient, instance: Instance, archive: Archive, filed: AccessRequest
) -> None:
    assert client.get("/api/requests").status_code == 401
    assert client.get("/api/requests", auth=("owner", "wrong")).status_code == 401

    response = api(client, instance, "GET", "/requests")

    assert response.status_code == 200
    listed = response.get_json()["requests"]
    assert [(r["id"], r["status"], r["institution"]) for r in listed] == [
        (filed.id, "pending", REQUEST_FIELDS["institution"])
    ]
    assert listed[0]["contact_email"] == REQUEST_FIELDS["contact_email"]
    assert listed[0]["created_at"] == NOW
    pending = api(client, instance, "GET", "/requests", query_string={"status": "denied"})
    assert pending.get_json() == {"requests": []}


def test_api_approve_returns_a_release_link_that_works_once(
    client: FlaskClient, instance: Instance, archive: Archive, filed: AccessRequest
) -> None:
    response = api(client, instance, "POST", f"/requests/{filed.id}/approve", json={"valid_days": 30})

    assert response.status_code == 200
    body = response.get_json()
    credential = archive.access.credentials()[0]
    base = "http://localhost"  # the address the request came to, not a default port it is not served on
    assert body["request"] == filed.id
    assert body["credential"] == credential.id
    assert body["username"] == credential.username
    assert body["realm"] == instance.settings.realm
    assert body["protected_index"] == f"{base}/protected/"
    assert body["expires_at"] == "2026-02-04T12:00:00Z"
    assert body["release_emailed_to"] is None
    assert body["release_link"].startswith(f"{base}/access/release/")
    assert body["release_expires_at"] == "2026-01-12T12:00:00Z"
    assert "password" not in body
    assert archive.access.get(filed.id).status == "approved"

    path = urlsplit(body["release_link"]).path
    released = reveal(client, path.rsplit("/", 1)[1])
    assert released.status_code == 200
    password = page(released).by_id["password"]
    assert client.get("/protected/", auth=(credential.username, password)).status_code == 200
    assert client.get(path).status_code == 410
    assert api(client, instance, "POST", f"/requests/{filed.id}/approve", json={}).status_code == 409


def test_api_approve_with_show_returns_the_password_once(
    client: FlaskClient, instance: Instance, archive: Archive, filed: AccessRequest
) -> None:
    response = api(client, instance, "POST", f"/requests/{filed.id}/approve", json={"valid_days": 30, "show": True})

    assert response.status_code == 200
    body = response.get_json()
    assert body["realm"] == instance.settings.realm
    assert body["protected_index"] == "http://localhost/protected/"
    assert body["domain"] == "localhost"
    assert f'<property name="password" value="{body["password"]}"/>' in body["heritrix_credential"]
    assert "release_link" not in body
    assert len(body["password"]) >= 22 and body["password"].isascii()
    assert client.get("/protected/", auth=(body["username"], body["password"])).status_code == 200
    assert archive.access.get(filed.id).status == "released"
    released = [e.data for e in archive.catalog.audit_entries() if e.action == "credential.released"]
    assert released == [{"request": filed.id, "credential": body["credential"], "via": "owner"}]
    listed = api(client, instance, "GET", "/requests").get_data(as_text=True)
    assert body["password"] not in listed


def test_api_approve_emails_the_release_link_when_smtp_is_set(
    instance: Instance, clock: Clock, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    app = make_app(load_settings(instance.path, env=smtp_env(port)), clock)
    client = app.test_client()
    request_id = client.post("/access/requests", json=REQUEST_FIELDS).get_json()["id"]
    mailbox.wait_for(1)

    body = api(client, instance, "POST", f"/requests/{request_id}/approve").get_json()

    assert body["release_emailed_to"] == REQUEST_FIELDS["contact_email"]
    assert body["release_link"] is None
    assert "password" not in body
    messages = mailbox.wait_for(2)
    assert [m["To"] for m in messages] == [OWNER_EMAIL, REQUEST_FIELDS["contact_email"]]
    text = messages[1].get_content()
    link = next(word for word in text.split() if "/access/release/" in word)
    released = reveal(client, urlsplit(link).path.rsplit("/", 1)[1])
    assert released.status_code == 200
    assert page(released).by_id["username"] == body["username"]


@pytest.mark.parametrize(
    "payload", [{"valid_days": "30"}, {"valid_days": 0}, {"valid_days": 3661}, {"valid_days": True}]
)
def test_api_approve_refuses_bad_validity(
    client: FlaskClient, instance: Instance, archive: Archive, filed: AccessRequest, payload: dict[str, object]
) -> None:
    response = api(client, instance, "POST", f"/requests/{filed.id}/approve", json=payload)

    assert_json_error(response, 400)
    assert archive.access.get(filed.id).status == "pending"
    assert archive.access.credentials() == []


def test_api_deny_needs_a_reason(
    client: FlaskClient, instance: Instance, archive: Archive, filed: AccessRequest
) -> None:
    refused: list[dict[str, Any]] = [{}, {"json": {}}, {"json": {"reason": "   "}}, {"json": {"reason": 7}}]
    for kwargs in refused:
        response = api(client, instance, "POST", f"/requests/{filed.id}/deny", **kwargs)
        assert_json_error(response, 400, "reason")
    assert archive.access.get(filed.id).status == "pending"

    response = api(client, instance, "POST", f"/requests/{filed.id}/deny", json={"reason": "Ikke en pligtinstitution"})

    assert response.status_code == 200
    body = response.get_json()
    assert (body["id"], body["status"], body["decision_reason"]) == (filed.id, "denied", "Ikke en pligtinstitution")
    assert body["decided_at"] == NOW
    assert audit_actions(archive) == ["request.filed", "request.denied"]
    assert archive.access.credentials() == []
    assert api(client, instance, "POST", f"/requests/{filed.id}/approve").status_code == 409
    assert api(client, instance, "POST", "/requests/999/deny", json={"reason": "x"}).status_code == 404


def test_api_credentials_never_show_a_password_or_hash(
    client: FlaskClient, instance: Instance, archive: Archive
) -> None:
    credential, password = issue_credential(archive)
    stored = archive.catalog.get_credential(credential.id)
    assert stored is not None
    stored_hash = stored.password_hash

    response = api(client, instance, "GET", "/credentials")

    assert response.status_code == 200
    listed = response.get_json()["credentials"]
    assert [(c["id"], c["username"], c["revoked_at"]) for c in listed] == [(credential.id, credential.username, None)]
    text = response.get_data(as_text=True)
    assert password not in text
    assert stored_hash not in text
    assert "scrypt" not in text
    assert not {key for c in listed for key in c if "password" in key or "hash" in key}


@pytest.fixture
def protected_file(archive: Archive) -> str:
    archive.publish([pdf_bytes("beskyttet")], filename="kursus.pdf", visibility="protected")
    return "/files/kursus/v1/kursus.pdf"


def test_api_revoke_refuses_a_cached_credential_on_the_next_request(
    client: FlaskClient, instance: Instance, archive: Archive, protected_file: str
) -> None:
    credential, password = issue_credential(archive)
    auth = (credential.username, password)
    assert client.get("/protected/", auth=auth).status_code == 200
    assert client.get(protected_file, auth=auth).status_code == 200

    response = api(client, instance, "POST", f"/credentials/{credential.id}/revoke")

    assert response.status_code == 200
    assert response.get_json()["revoked_at"] == NOW
    assert client.get(protected_file, auth=auth).status_code == 401
    assert client.get("/protected/", auth=auth).status_code == 401
    assert audit_actions(archive)[-1] == "credential.revoked"
    assert_json_error(api(client, instance, "POST", f"/credentials/{credential.id}/revoke"), 409, "already revoked")
    assert_json_error(api(client, instance, "POST", "/credentials/999/revoke"), 404)


def test_api_rotate_replaces_a_credential(
    client: FlaskClient, instance: Instance, archive: Archive, protected_file: str
) -> None:
    old, old_password = issue_credential(archive)
    assert client.get(protected_file, auth=(old.username, old_password)).status_code == 200

    response = api(client, instance, "POST", f"/credentials/{old.id}/rotate", json={"show": True})

    assert response.status_code == 200
    body = response.get_json()
    assert body["credential"] != old.id
    assert body["username"] != old.username
    assert body["request"] == old.request_id
    assert client.get(protected_file, auth=(old.username, old_password)).status_code == 401
    assert client.get(protected_file, auth=(body["username"], body["password"])).status_code == 200
    listed = {c["id"]: c for c in api(client, instance, "GET", "/credentials").get_json()["credentials"]}
    assert listed[old.id]["revoked_at"] == NOW
    assert listed[body["credential"]]["revoked_at"] is None
    assert "credential.rotated" in audit_actions(archive)

    by_link = api(client, instance, "POST", f"/credentials/{body['credential']}/rotate").get_json()
    assert "password" not in by_link
    token = urlsplit(by_link["release_link"]).path.rsplit("/", 1)[1]
    assert page(reveal(client, token)).by_id["username"] == by_link["username"]


def test_api_audit_log_and_verify(
    client: FlaskClient, instance: Instance, archive: Archive, filed: AccessRequest
) -> None:
    archive.access.approve(filed.id)

    entries = api(client, instance, "GET", "/audit").get_json()["entries"]
    assert [e["action"] for e in entries] == ["credential.issued", "request.approved", "request.filed"]
    assert [e["seq"] for e in entries] == [3, 2, 1]
    assert entries[2]["personal"]["contact_email"] == REQUEST_FIELDS["contact_email"]
    assert [e["action"] for e in api(client, instance, "GET", "/audit?limit=1").get_json()["entries"]] == [
        "credential.issued"
    ]

    verified = api(client, instance, "GET", "/audit/verify")
    assert verified.status_code == 200
    assert verified.get_json() == {"ok": True, "entries": 3, "head": archive.audit_head()[1]}
    head = archive.audit_head()[1]
    assert api(client, instance, "GET", f"/audit/verify?head={head}").status_code == 200
    assert_json_error(api(client, instance, "GET", f"/audit/verify?head={'0' * 64}"), 409, "not in the log")

    with sqlite3.connect(instance.settings.catalog) as db:
        db.execute("DROP TRIGGER audit_log_no_rewrite")
        db.execute("""UPDATE audit_log SET data = '{"request":1,"valid_days":3660}' WHERE seq = 2""")
    db.close()

    assert_json_error(api(client, instance, "GET", "/audit/verify"), 409, "entry 2")


def test_api_refuses_cross_site_requests(
    client: FlaskClient, instance: Instance, archive: Archive, filed: AccessRequest, protected_file: str
) -> None:
    credential, _ = issue_credential(archive)
    before = (list(archive.catalog.audit_entries()), archive.access.credentials(), archive.access.requests())
    evil = {"Origin": "https://evil.example"}

    for method, path, body in (
        ("POST", f"/requests/{filed.id}/approve", {"show": True}),
        ("POST", f"/requests/{filed.id}/deny", {"reason": "x"}),
        ("POST", f"/credentials/{credential.id}/revoke", None),
        ("POST", f"/credentials/{credential.id}/rotate", {"show": True}),
        ("GET", "/credentials", None),
        ("DELETE", "/items/kursus", None),
    ):
        response = api(client, instance, method, path, json=body, headers=evil)
        assert_json_error(response, 403, "cross-site")
        assert "password" not in response.get_json()

    assert (list(archive.catalog.audit_entries()), archive.access.credentials(), archive.access.requests()) == before
    same_site = api(client, instance, "GET", "/credentials", headers={"Origin": "http://localhost"})
    assert same_site.status_code == 200


# -- the slow check (guessing is stopped per client: tests/test_guessing.py) ------------------


def test_unknown_username_costs_as_much_as_a_wrong_password(client: FlaskClient, archive: Archive) -> None:
    credential, password = issue_credential(archive)
    archive.checkpoints.wait()  # the decision's checkpoint written now, not in the middle of the timing

    def median_seconds(auth: tuple[str, str]) -> float:
        times = []
        for _ in range(5):
            began = time.perf_counter()
            assert client.get("/protected/", auth=auth).status_code == 401
            times.append(time.perf_counter() - began)
        return statistics.median(times)

    known = median_seconds((credential.username, password + "x"))
    unknown = median_seconds(("crawler-00000000", password))

    assert known > 0.02  # the slow hash ran
    assert 0.5 <= unknown / known <= 2, (unknown, known)


# -- proof of deposit -------------------------------------------------------------------------------


@pytest.fixture
def deposit(archive: Archive) -> tuple[Credential, tuple[str, str]]:
    """Two protected versions of one item, one of another, a public one; and a crawler."""
    archive.publish([pdf_bytes("kursus 1", pad=5000)], filename="kursus.pdf", visibility="protected")
    archive.publish([pdf_bytes("kursus 2")], filename="kursus.pdf", slug="kursus")
    archive.publish([pdf_bytes("noter")], filename="noter.pdf", visibility="protected")
    archive.publish([pdf_bytes("brochure")], filename="brochure.pdf", visibility="public")
    credential, password = issue_credential(archive)
    return credential, (credential.username, password)


def harvest_of(archive: Archive, credential_id: int) -> dict[tuple[str, int], tuple[str | None, str | None]]:
    """Per version: the first fetch and the first complete one, for the request the credential is of."""
    credential = archive.catalog.get_credential(credential_id)
    assert credential is not None
    request_id = credential.request_id
    return {
        (r.version.slug, r.version.number): (to_text(r.fetched_at), to_text(r.complete_at))
        for r in archive.harvest()
        if r.request_id == request_id
    }


def downloads(instance: Instance, archive: Archive) -> list[tuple[Any, ...]]:
    """The stored download records, after the server's batch of pending ones is written."""
    archive.recorder.flush()
    with sqlite3.connect(instance.settings.catalog) as db:
        rows = db.execute("SELECT credential_id, version_id, status, bytes_sent, complete FROM downloads").fetchall()
    db.close()
    return rows


def test_a_crawler_download_is_recorded_complete(
    client: FlaskClient, archive: Archive, clock: Clock, deposit: tuple[Credential, tuple[str, str]]
) -> None:
    credential, auth = deposit
    clock.advance(hours=1)

    response = client.get("/files/kursus/v1/kursus.pdf", auth=auth)

    assert response.status_code == 200
    assert response.data == pdf_bytes("kursus 1", pad=5000)
    assert harvest_of(archive, credential.id) == {
        ("brochure", 1): (None, None),
        ("kursus", 1): ("2026-01-05T13:00:00Z", "2026-01-05T13:00:00Z"),
        ("kursus", 2): (None, None),
        ("noter", 1): (None, None),
    }


def test_a_range_request_is_recorded_but_not_complete(
    client: FlaskClient, archive: Archive, instance: Instance, deposit: tuple[Credential, tuple[str, str]]
) -> None:
    credential, auth = deposit
    version = archive.item_versions("kursus")[0]

    response = client.get("/files/kursus/v1/kursus.pdf", auth=auth, headers={"Range": "bytes=0-99"})

    assert response.status_code == 206
    assert len(response.data) == 100
    assert harvest_of(archive, credential.id)[("kursus", 1)] == (NOW, None)
    assert downloads(instance, archive) == [(credential.id, version.id, 206, 100, 0)]


def test_an_open_ended_range_is_not_a_complete_download(
    client: FlaskClient, archive: Archive, instance: Instance, deposit: tuple[Credential, tuple[str, str]]
) -> None:
    credential, auth = deposit
    version = archive.item_versions("kursus")[1]

    response = client.get("/files/kursus/v2/kursus.pdf", auth=auth, headers={"Range": "bytes=10-"})

    assert response.status_code == 206
    assert downloads(instance, archive) == [(credential.id, version.id, 206, version.size - 10, 0)]
    assert harvest_of(archive, credential.id)[("kursus", 2)] == (NOW, None)


def test_head_and_the_owners_downloads_are_not_recorded(
    client: FlaskClient, archive: Archive, instance: Instance, deposit: tuple[Credential, tuple[str, str]]
) -> None:
    credential, auth = deposit

    assert client.head("/files/kursus/v1/kursus.pdf", auth=auth).status_code == 200
    assert client.head("/files/brochure/v1/brochure.pdf", auth=auth).status_code == 200
    assert client.get("/files/kursus/v1/kursus.pdf", auth=instance.owner_auth).status_code == 200
    assert client.get("/files/brochure/v1/brochure.pdf", auth=instance.owner_auth).status_code == 200

    assert downloads(instance, archive) == []
    assert all(row == (None, None) for row in harvest_of(archive, credential.id).values())


def test_an_anonymous_public_download_is_recorded_without_a_credential(
    client: FlaskClient, archive: Archive, instance: Instance, deposit: tuple[Credential, tuple[str, str]]
) -> None:
    credential, _ = deposit
    brochure = archive.item_versions("brochure")[0]

    assert client.get("/files/brochure/v1/brochure.pdf").status_code == 200

    assert downloads(instance, archive) == [(None, brochure.id, 200, brochure.size, 1)]
    assert harvest_of(archive, credential.id)[("brochure", 1)] == (None, None)
    [row] = [r for r in archive.harvest() if r.version.id == brochure.id]
    assert to_text(row.anonymous_complete_at) == NOW


def test_refused_downloads_are_not_recorded(
    client: FlaskClient, archive: Archive, instance: Instance, deposit: tuple[Credential, tuple[str, str]]
) -> None:
    credential, (username, password) = deposit

    assert client.get("/files/kursus/v1/kursus.pdf", auth=(username, password + "x")).status_code == 401
    archive.access.revoke(credential.id)
    assert client.get("/files/kursus/v1/kursus.pdf", auth=(username, password)).status_code == 401

    assert downloads(instance, archive) == []


def complete_of(archive: Archive, credential_id: int, key: tuple[str, int]) -> str | None:
    return harvest_of(archive, credential_id)[key][1]


def wait_for_harvest(
    archive: Archive, credential_id: int, key: tuple[str, int], timeout: float = 10
) -> tuple[str | None, str | None]:
    deadline = time.monotonic() + timeout
    while True:
        row = harvest_of(archive, credential_id)[key]
        if row[0] is not None or time.monotonic() > deadline:
            return row
        time.sleep(0.05)


def test_real_server_records_a_full_and_an_abandoned_download(server: Server, instance: Instance) -> None:
    core = build_archive(instance.settings)
    full = bytes(range(256)) * (3 * 1024 * 1024 // 256)
    # What the kernel buffers on both sides (~4 MiB on loopback) counts as sent: the
    # abandoned file must be larger than that for the server to see the client go.
    half = bytes(reversed(range(256))) * (16 * 1024 * 1024 // 256)
    for slug, data in (("stor", full), ("halv", half)):
        response = requests.post(
            server.url + "/api/items",
            params={"filename": f"{slug}.bin", "visibility": "protected"},
            data=data,
            auth=instance.owner_auth,
            timeout=30,
        )
        assert response.status_code == 201, response.text
    credential, password = issue_credential(core)
    auth = (credential.username, password)

    response = requests.get(server.url + "/files/stor/v1/stor.bin", auth=auth, timeout=30)
    assert response.status_code == 200
    assert response.content == full
    fetched, complete = wait_for_harvest(core, credential.id, ("stor", 1))
    assert fetched is not None
    assert complete == fetched

    with requests.get(server.url + "/files/halv/v1/halv.bin", auth=auth, stream=True, timeout=30) as partial:
        assert partial.status_code == 200
        assert len(partial.raw.read(256 * 1024)) == 256 * 1024
    fetched, complete = wait_for_harvest(core, credential.id, ("halv", 1))
    assert fetched is not None
    assert complete is None
    recorded = {version_id: (status, sent, done) for _, version_id, status, sent, done in downloads(instance, core)}
    halv = core.item_versions("halv")[0]
    status, sent, done = recorded[halv.id]
    assert (status, done) == (200, 0)
    assert 256 * 1024 <= sent < len(half)
    assert recorded[core.item_versions("stor")[0].id] == (200, len(full), 1)

    result = invoke("harvest", "--json", "--instance", str(instance.path))
    assert result.exit_code == 0, result.stderr
    shown = {(r["slug"], r["version"]): r for r in json.loads(result.stdout) if r["request"] == credential.request_id}
    assert shown[("stor", 1)]["complete_at"] == complete_of(core, credential.id, ("stor", 1))
    assert shown[("stor", 1)]["complete_at"] is not None
    assert shown[("stor", 1)]["state"] == "fetched"
    assert shown[("halv", 1)]["fetched_at"] is not None
    assert shown[("halv", 1)]["complete_at"] is None
    assert shown[("halv", 1)]["state"] == "partial"
    for row in shown.values():  # each by this credential, which the request carried
        assert (row["credential"], row["credentials"]) == (credential.id, [credential.id])
        assert row["attributed_by"] == "credential"
    assert shown[("stor", 1)]["url_path"] == "/files/stor/v1/stor.bin"


# -- headers and cookies --------------------------------------------------------------------------


def assert_security_headers(response: TestResponse, what: str) -> None:
    headers = response.headers
    assert "default-src 'none'" in headers.get("Content-Security-Policy", ""), what
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], what
    assert headers.get("X-Content-Type-Options") == "nosniff", what
    assert headers.get("Referrer-Policy") == "no-referrer", what
    assert headers.get("X-Frame-Options") == "DENY", what


def test_every_response_has_the_security_headers(
    client: FlaskClient, instance: Instance, archive: Archive, approved: Approval
) -> None:
    archive.publish([pdf_bytes("brochure")], filename="brochure.pdf", visibility="public")
    token = csrf_token(client)
    responses = {
        "index": client.get("/"),
        "access": client.get("/access/"),
        "access 400": client.post("/access/", data={}),
        "access 201": client.post("/access/", data={**REQUEST_FIELDS, "csrf_token": token}),
        "json filing": client.post("/access/requests", json=REQUEST_FIELDS),
        "json 415": client.post("/access/requests", data="x"),
        "release": client.get(release_path(approved.release_token)),
        "release 404": client.get(release_path("nope")),
        "protected 401": client.get("/protected/"),
        "protected": client.get("/protected/", auth=instance.owner_auth),
        "file": client.get("/files/brochure/v1/brochure.pdf"),
        "robots": client.get("/robots.txt"),
        "sitemap": client.get("/sitemap.xml"),
        "healthz": client.get("/healthz"),
        "api": client.get("/api/requests", auth=instance.owner_auth),
        "api 401": client.get("/api/requests"),
        "404": client.get("/no/such/page"),
    }
    assert responses["access 201"].status_code == 201
    for what, response in responses.items():
        assert_security_headers(response, what)
        assert "Strict-Transport-Security" not in response.headers, what


def session_cookie(response: TestResponse) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("pligt_session=")]
    assert len(cookies) == 1, response.headers.getlist("Set-Cookie")
    return cookies[0]


def cookie_flags(cookie: str) -> set[str]:
    return {part.strip().lower() for part in cookie.split(";")[1:]}


def test_session_cookie_is_httponly_and_lax_but_not_secure_over_http(client: FlaskClient) -> None:
    flags = cookie_flags(session_cookie(client.get("/access/")))

    assert "httponly" in flags
    assert "samesite=lax" in flags
    assert "secure" not in flags


def test_behind_a_tls_proxy_the_cookie_is_secure_and_hsts_is_sent(instance: Instance, clock: Clock) -> None:
    client, archive = app_with(instance, clock, trusted_proxies="1")
    tls = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "deposit.example.dk"}

    response = client.get("/access/", headers=tls)

    assert response.status_code == 200
    flags = cookie_flags(session_cookie(response))
    assert {"secure", "httponly", "samesite=lax"} <= flags
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert int(response.headers["Strict-Transport-Security"].split("=")[1].split(";")[0]) >= 15552000
    assert_security_headers(response, "behind TLS")

    # Our pages send no Referer (Referrer-Policy: no-referrer): the form must still work over TLS.
    token = page(response).hidden["csrf_token"]
    filed = client.post("/access/", data={**REQUEST_FIELDS, "csrf_token": token}, headers=tls)
    assert filed.status_code == 201
    assert len(archive.access.requests()) == 1

    fresh, _ = app_with(instance, clock, trusted_proxies="1")
    plain = fresh.get("/access/")
    assert "Strict-Transport-Security" not in plain.headers
    assert "secure" not in cookie_flags(session_cookie(plain))


def test_forwarded_proto_is_ignored_without_a_trusted_proxy(client: FlaskClient) -> None:
    response = client.get("/access/", headers={"X-Forwarded-Proto": "https"})

    assert "Strict-Transport-Security" not in response.headers
    assert "secure" not in cookie_flags(session_cookie(response))


def test_behind_a_proxy_the_throttle_counts_each_client_not_the_proxy(instance: Instance, clock: Clock) -> None:
    from tests.support.app import make_app

    settings = load_settings(
        instance.path, env={"PLIGT_TRUSTED_PROXIES": "1", "PLIGT_REQUESTS_PER_HOUR_PER_CLIENT": "1"}
    )
    client = make_app(settings, clock).test_client()
    for address in ("198.51.100.7", "203.0.113.9"):
        response = client.post(
            "/access/requests", json=REQUEST_FIELDS, headers={"X-Forwarded-For": f"1.2.3.4, {address}"}
        )
        assert response.status_code == 201, address
    again = client.post("/access/requests", json=REQUEST_FIELDS, headers={"X-Forwarded-For": "203.0.113.9"})
    assert again.status_code == 429
