"""Signing out ends the session on the server, and a console left alone signs itself out.

The session cookie is signed, not stored: before, a copied cookie kept working
for 31 days after its owner signed out. Now signing out ends every session
issued before, and one unused for 30 minutes is over.
"""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from pligt.web.views.admin import IDLE_SECONDS
from tests.support.app import Clock
from tests.support.app import Instance


def _token(page: str) -> str:
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def _sign_in(client: FlaskClient, instance: Instance) -> None:
    token = _token(client.get("/admin/login").get_data(as_text=True))
    signed_in = client.post("/admin/login", data={"password": instance.owner.password, "csrf_token": token})
    assert signed_in.status_code == 302, signed_in.get_data(as_text=True)
    assert client.get("/admin/").status_code == 200


def _signed_out(response_status: int, location: str | None) -> bool:
    return response_status == 302 and (location or "").split("?")[0].endswith("/admin/login")


def test_signing_out_ends_a_copied_cookie_too(client: FlaskClient, instance: Instance) -> None:
    _sign_in(client, instance)
    copied = client.get_cookie("pligt_session")
    assert copied is not None
    token = _token(client.get("/admin/").get_data(as_text=True))
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 302

    thief = client.application.test_client()
    thief.set_cookie("pligt_session", copied.value)
    again = thief.get("/admin/")
    assert _signed_out(again.status_code, again.headers.get("Location"))


def test_a_console_left_alone_signs_itself_out(client: FlaskClient, instance: Instance, clock: Clock) -> None:
    _sign_in(client, instance)
    clock.advance(seconds=IDLE_SECONDS - 60)
    assert client.get("/admin/").status_code == 200  # used again: the half hour starts anew
    clock.advance(seconds=IDLE_SECONDS - 60)
    assert client.get("/admin/").status_code == 200
    clock.advance(seconds=IDLE_SECONDS + 1)
    idle = client.get("/admin/")
    assert _signed_out(idle.status_code, idle.headers.get("Location"))
