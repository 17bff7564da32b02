"""The pages' Content-Security-Policy: no script runs but the console's own, by its nonce; and the
small things every browser asks of a page (the icon, a username beside the password).

The browser tests (tests/test_browser.py) show the same in Chromium: the upload's progress bars
move, and no page's console reports a violation.
"""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from tests.support.app import Instance


def _sign_in(client: FlaskClient, instance: Instance) -> None:
    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token
    signed_in = client.post("/admin/login", data={"password": instance.owner.password, "csrf_token": token.group(1)})
    assert signed_in.status_code == 302


def test_the_upload_page_runs_its_own_script_by_nonce_and_nothing_else(client: FlaskClient, instance: Instance) -> None:
    _sign_in(client, instance)
    nonces = []
    for _ in range(2):
        page = client.get("/admin/upload")
        policy = page.headers["Content-Security-Policy"]
        found = re.search(r"script-src 'nonce-([A-Za-z0-9_-]{20,})'(;|$)", policy)
        assert found, policy
        nonce = found.group(1)
        assert "connect-src 'self'" in policy  # the script's uploads go to this server only
        assert "'unsafe-inline'" not in policy and "'self'" not in policy.split("script-src", 1)[1].split(";")[0]
        scripts = re.findall(r"<script[^>]*>", page.get_data(as_text=True))
        assert scripts == [f'<script src="/static/admin.js" nonce="{nonce}">'], scripts
        nonces.append(nonce)
    assert nonces[0] != nonces[1]  # a new one each time


def test_every_other_page_runs_no_script(client: FlaskClient, instance: Instance) -> None:
    pages = ["/", "/access/", "/admin/login", "/no-such-page"]
    for path in pages:
        page = client.get(path, headers={"Accept": "text/html"})
        policy = page.headers["Content-Security-Policy"]
        assert policy.startswith("default-src 'none'"), path
        assert "script-src" not in policy and "connect-src" not in policy, (path, policy)
        assert "<script" not in page.get_data(as_text=True), path
    _sign_in(client, instance)
    for path in ["/admin/", "/admin/requests", "/admin/audit"]:
        page = client.get(path)
        assert page.status_code == 200, path
        assert "script-src" not in page.headers["Content-Security-Policy"], path


def test_the_favicon(client: FlaskClient) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.mimetype == "image/x-icon"
    assert icon.data[:4] == b"\x00\x00\x01\x00"
    assert icon.cache_control.public and icon.cache_control.max_age == 7 * 24 * 3600
    assert client.get("/favicon.ico", headers={"If-None-Match": icon.headers["ETag"]}).status_code == 304
    assert '<link rel="icon" href="/favicon.ico">' in client.get("/").get_data(as_text=True)


def test_the_sign_in_form_names_the_owner_beside_the_password(client: FlaskClient) -> None:
    page = client.get("/admin/login").get_data(as_text=True)
    assert '<input type="text" name="username" value="owner" autocomplete="username" hidden>' in page
    assert 'autocomplete="current-password"' in page
