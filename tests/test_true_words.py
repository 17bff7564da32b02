"""Every word a page says is true, and in its reader's language (issue 22, part 4).

Without SMTP no email goes out, so the confirmation does not say one did; Danish
pages carry Danish messages and Danish number formats; the owner API's 401 speaks
to the owner; a PUT (``curl -T`` alone) to the items URL is told to use POST.
"""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from pligt.core import Archive
from pligt.settings import load_settings
from tests.support.access import REQUEST_FIELDS
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.app import make_app
from tests.support.data import pdf_bytes
from tests.support.mail import Mailbox
from tests.support.mail import smtp_env

DA = {"Accept-Language": "da"}


def _file_request(client: FlaskClient, headers: dict[str, str]) -> str:
    form = client.get("/access/", headers=headers).get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form)
    assert token
    filed = client.post("/access/", data={**REQUEST_FIELDS, "csrf_token": token.group(1)}, headers=headers)
    assert filed.status_code == 201, filed.get_data(as_text=True)
    return " ".join(filed.get_data(as_text=True).split())


def test_without_smtp_the_confirmation_says_the_owner_passes_the_link_on(client: FlaskClient) -> None:
    english = _file_request(client, {"Accept-Language": "en"})
    assert "has been told" not in english
    assert "receives a link" not in english
    assert "no email is sent from this server" in english
    assert f"the owner passes on to {REQUEST_FIELDS['contact_email']} a single-use link" in english

    danish = _file_request(client, DA)
    assert "fået besked" not in danish
    assert "modtager" not in danish
    assert "denne server sender ingen e-mail" in danish
    assert f"giver ejeren {REQUEST_FIELDS['contact_email']} et engangslink" in danish


def test_with_smtp_the_confirmation_says_the_owner_was_told_and_the_link_comes_by_mail(
    instance: Instance, clock: Clock, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    client = make_app(load_settings(instance.path, env=smtp_env(port)), clock).test_client()
    text = _file_request(client, {"Accept-Language": "en"})
    assert "The owner has been told by email." in text
    assert f"{REQUEST_FIELDS['contact_email']} receives a link that shows the credentials once" in text
    # The owner's mail goes out in the background: the server must not stop before it is received.
    assert len(mailbox.wait_for(1)) == 1


def test_a_spent_or_unknown_release_link_says_so_in_danish(client: FlaskClient, archive: Archive) -> None:
    approval = archive.access.approve(archive.access.file(dict(REQUEST_FIELDS)).id)
    archive.access.release(approval.release_token)

    spent = client.get(f"/access/release/{approval.release_token}", headers=DA)
    assert spent.status_code == 410
    text = spent.get_data(as_text=True)
    assert "Disse adgangsoplysninger blev allerede udleveret 2026-01-05 12:00 UTC." in text
    assert "already released" not in text

    unknown = client.get("/access/release/not-a-token", headers=DA)
    assert unknown.status_code == 404
    assert "Dette udleveringslink er ikke gyldigt." in unknown.get_data(as_text=True)


def test_a_danish_error_page_is_danish(client: FlaskClient) -> None:
    missing = client.get("/no/such/page", headers=DA)
    assert missing.status_code == 404
    text = missing.get_data(as_text=True)
    assert "Ikke fundet" in text and "Der er intet på denne adresse." in text
    assert "not found" not in text.lower()

    beyond = client.get("/?page=9", headers=DA)
    assert beyond.status_code == 404
    text = beyond.get_data(as_text=True)
    assert "Oversigten har 1 sider; den side findes ikke." in text
    assert "the index has" not in text


def test_sizes_are_written_the_danish_way_on_danish_pages(
    client: FlaskClient, instance: Instance, archive: Archive
) -> None:
    body = pdf_bytes("sizes", pad=1234 - len(pdf_bytes("sizes")))
    assert len(body) == 1234
    published = client.post(
        "/api/items",
        query_string={"filename": "sizes.pdf", "visibility": "public"},
        data=body,
        auth=instance.owner_auth,
    )
    assert published.status_code == 201
    danish = client.get("/", headers=DA).get_data(as_text=True)
    english = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "1,2 kB" in danish and "1.2 kB" not in danish
    assert "1.2 kB" in english


def test_the_owner_api_401_speaks_to_the_owner(client: FlaskClient) -> None:
    refused = client.get("/api/items")
    assert refused.status_code == 401
    assert "(owner)" in refused.headers["WWW-Authenticate"]
    assert refused.json is not None
    description = refused.json["description"]
    assert "owner's username and password" in description and "curl -u owner:" in description
    assert "released to you" not in description
    wrong = client.get("/api/items", auth=("owner", "not the password"))
    assert wrong.status_code == 401 and wrong.json is not None
    assert wrong.json["description"] == description


def test_a_put_to_the_items_url_is_told_to_use_post(client: FlaskClient, instance: Instance) -> None:
    put = client.put("/api/items?filename=brochure.pdf", data=pdf_bytes(), auth=instance.owner_auth)
    assert put.status_code == 405
    assert "POST" in put.headers["Allow"]
    assert put.json is not None
    assert put.json["description"].startswith("send the file with POST, not PUT")
    assert "curl -u owner:PASSWORD -X POST -T FILE" in put.json["description"]


def test_the_console_words_warnings_and_refusals_in_danish(instance: Instance, clock: Clock) -> None:
    settings = load_settings(instance.path, env={"PLIGT_FETCH_BUDGET_BYTES": "1000"})
    client = make_app(settings, clock).test_client()
    form = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form)
    assert token
    client.post("/admin/login", data={"password": instance.owner.password, "csrf_token": token.group(1)})
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get("/admin/upload").get_data(as_text=True))
    assert token
    headers = {"X-CSRFToken": token.group(1), "Accept": "application/json", **DA}
    body = pdf_bytes("big", pad=1234 - len(pdf_bytes("big")))

    first = client.post("/admin/upload/raw", query_string={"filename": "big.pdf"}, data=body, headers=headers)
    assert first.status_code == 201 and first.json is not None
    assert first.json["warnings"] == [
        "big.pdf fylder 1,2 kB: mere end pligtafleveringsinstitutionens høster kan hente pr. fil, 1,0 kB "
        "(omkring 500 kB/s i højst 1200 s), så den kan måske ikke hente den hel; overvej at dele den op."
    ]
    public = client.post(
        "/admin/upload/raw",
        query_string={"filename": "big.pdf", "slug": "big", "visibility": "public"},
        data=pdf_bytes("other"),
        headers=headers,
    )
    assert public.status_code == 409 and public.json is not None
    assert public.json["error"] == "big er beskyttet: en ny version kan ikke gøre den offentlig."
