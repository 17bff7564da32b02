"""Guessing passwords is stopped per client, and never costs anyone their correct password.

Heritrix takes a 429 or 503 as final for that URL until the next harvest
(../shared/CRAWLER.md), so a guesser must not be able to lock the crawler (or
the owner) out: failures are counted per client (an HMAC of its address, in
memory only), a client is refused after ``auth_max_failures`` of them, and a
correct password from anyone else is checked and accepted, whether its check
is cached, has lapsed, or the server just restarted.

Decided and tested here: the guesser's own client still gets a password that
is in the cache (a crawler behind the same NAT or proxy as a guesser goes on
harvesting), but an unverified password from it is refused unchecked until it
has been quiet for ``auth_lockout_seconds``, even if it is right; otherwise
the refusal would not stop guessing.
"""

from __future__ import annotations

import logging
import multiprocessing
import re
import threading
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from pligt.core import Archive
from pligt.core.credentials import auth as core_auth
from pligt.core.credentials import passwords
from pligt.core.credentials.auth import Authenticator
from pligt.core.credentials.shared_checks import SharedChecks
from pligt.core.errors import LockedOut
from pligt.instance import build_archive
from pligt.settings import load_settings
from pligt.web.services import pligt
from tests.support.access import issue_credential
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.app import make_app
from tests.support.data import pdf_bytes
from tests.support.servers import start_server
from tests.support.servers import stop_server

GUESSER = "203.0.113.66"
CRAWLER = "198.51.100.7"
OWNER = "192.0.2.10"
PROTECTED = "/files/kursus/v1/kursus.pdf"


class Ticks:
    """A monotonic clock the tests move: the cache and the failure counts run on it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


def app_on(instance: Instance, clock: Clock, ticks: Ticks, **env: str) -> Flask:
    """An app on ``instance`` whose authenticator runs on ``ticks``, as a restarted server would build it."""
    settings = load_settings(instance.path, env={f"PLIGT_{k.upper()}": v for k, v in env.items()})
    app = make_app(settings, clock)
    services = app.extensions["pligt"]
    services.authenticator = Authenticator(
        services.archive.catalog,
        settings.auth_cache_seconds,
        clock,
        max_failures=settings.auth_max_failures,
        refusal_seconds=settings.auth_lockout_seconds,
        monotonic=ticks,
    )
    return app


@pytest.fixture
def guarded(instance: Instance, clock: Clock, ticks: Ticks) -> Flask:
    """The app with the default limits (10 failures, 300 s), a protected and a public file."""
    app = app_on(instance, clock, ticks)
    with app.app_context():
        archive = pligt().archive
        archive.publish([pdf_bytes("beskyttet")], filename="kursus.pdf", visibility="protected")
        archive.publish([pdf_bytes("offentlig")], filename="brochure.pdf", visibility="public")
    return app


@pytest.fixture
def archive_of(guarded: Flask) -> Archive:
    with guarded.app_context():
        return pligt().archive


@pytest.fixture
def slow_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The stored hashes the slow password check ran against, in order."""
    calls: list[str] = []
    real = passwords.verify_password  # what core_auth calls, before the counting stands in for it

    def counting(stored: str, password: str) -> bool:
        calls.append(stored)
        return real(stored, password)

    monkeypatch.setattr(core_auth, "verify_password", counting)
    return calls


def get(client: FlaskClient, path: str, auth: tuple[str, str] | None, address: str) -> TestResponse:
    return client.get(path, auth=auth, environ_base={"REMOTE_ADDR": address})


def guess(client: FlaskClient, username: str, times: int, address: str = GUESSER) -> list[int]:
    """Send ``times`` wrong passwords for ``username`` from ``address``; return the statuses."""
    return [get(client, PROTECTED, (username, f"guess-{n}"), address).status_code for n in range(times)]


def assert_refused(response: TestResponse) -> None:
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 300
    assert pdf_bytes("beskyttet") not in response.data


# -- a guesser is stopped ----------------------------------------------------------------------


def test_a_guesser_is_refused_after_ten_tries_without_another_slow_hash(
    guarded: Flask, archive_of: Archive, slow_checks: list[str]
) -> None:
    client = guarded.test_client()
    credential, _ = issue_credential(archive_of)

    assert guess(client, credential.username, 10) == [401] * 10
    assert len(slow_checks) == 10

    for path in (PROTECTED, "/protected/"):
        assert_refused(get(client, path, (credential.username, "guess-11"), GUESSER))
    assert_refused(get(client, PROTECTED, ("crawler-00000000", "another username"), GUESSER))
    assert len(slow_checks) == 10  # refused unchecked: guessing costs the server nothing more

    public = get(client, "/files/brochure/v1/brochure.pdf", (credential.username, "guess"), GUESSER)
    assert (public.status_code, public.data) == (200, pdf_bytes("offentlig"))
    assert get(client, "/", (credential.username, "guess"), GUESSER).status_code == 200


def test_a_guesser_spreading_over_usernames_is_one_client(guarded: Flask, archive_of: Archive) -> None:
    client = guarded.test_client()
    usernames = [issue_credential(archive_of)[0].username for _ in range(3)] + ["owner", "crawler-00000000"]

    statuses = [status for username in usernames for status in guess(client, username, 2)]

    assert statuses == [401] * 10
    assert get(client, PROTECTED, (usernames[0], "guess"), GUESSER).status_code == 429


def test_concurrent_guesses_cannot_overshoot_the_limit(instance: Instance, slow_checks: list[str]) -> None:
    authenticator = Authenticator(build_archive(instance.settings).catalog, max_failures=10)
    results: list[str] = []

    def try_once() -> None:
        try:
            found = authenticator.crawler("crawler-00000000", "guess", client=GUESSER)
            results.append("accepted" if found else "wrong")
        except LockedOut:
            results.append("refused")

    threads = [threading.Thread(target=try_once) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results.count("wrong") == 10
    assert results.count("refused") == 30
    assert len(slow_checks) == 10


def test_the_refusal_ends_after_a_quiet_while(guarded: Flask, archive_of: Archive, ticks: Ticks) -> None:
    client = guarded.test_client()
    credential, password = issue_credential(archive_of)
    guess(client, credential.username, 10)
    refused = get(client, PROTECTED, (credential.username, "guess"), GUESSER)
    assert refused.headers["Retry-After"] == "300"

    ticks.now += 200
    assert get(client, PROTECTED, (credential.username, "guess"), GUESSER).headers["Retry-After"] == "100"
    ticks.now += 100  # refused tries do not prolong the refusal

    assert guess(client, credential.username, 1) == [401]
    assert get(client, PROTECTED, (credential.username, password), GUESSER).status_code == 200


# -- the correct password is never refused because of someone else ----------------------------------


def test_the_correct_password_is_checked_and_accepted_from_another_client(
    guarded: Flask, archive_of: Archive, slow_checks: list[str]
) -> None:
    client = guarded.test_client()
    credential, password = issue_credential(archive_of)
    guess(client, credential.username, 15)

    response = get(client, PROTECTED, (credential.username, password), CRAWLER)

    assert (response.status_code, response.data) == (200, pdf_bytes("beskyttet"))
    assert len(slow_checks) == 11  # ten guesses, and the crawler's own first check
    assert get(client, PROTECTED, (credential.username, password + "x"), CRAWLER).status_code == 401


def test_a_cached_check_passes_from_anyone_even_the_guesser(
    guarded: Flask, archive_of: Archive, slow_checks: list[str]
) -> None:
    client = guarded.test_client()
    credential, password = issue_credential(archive_of)
    assert get(client, PROTECTED, (credential.username, password), CRAWLER).status_code == 200

    guess(client, credential.username, 12)

    for address in (CRAWLER, GUESSER):
        for path in (PROTECTED, "/protected/", "/files/kursus/latest"):
            assert get(client, path, (credential.username, password), address).status_code in (200, 302)
    assert len(slow_checks) == 11


def test_after_the_cache_lapsed_the_correct_password_is_checked_again_and_accepted(
    instance: Instance, clock: Clock, ticks: Ticks, slow_checks: list[str]
) -> None:
    app = app_on(instance, clock, ticks, auth_cache_seconds="60")
    with app.app_context():
        archive = pligt().archive
        archive.publish([pdf_bytes("beskyttet")], filename="kursus.pdf", visibility="protected")
    client = app.test_client()
    credential, password = issue_credential(archive)
    assert get(client, PROTECTED, (credential.username, password), CRAWLER).status_code == 200
    guess(client, credential.username, 10)

    ticks.now += 61  # the check lapsed; the guesser is still refused
    assert get(client, PROTECTED, (credential.username, "guess"), GUESSER).status_code == 429
    assert get(client, PROTECTED, (credential.username, password), CRAWLER).status_code == 200
    assert len(slow_checks) == 12  # checked again: the crawler's first, ten guesses, and now

    # The decision for the guesser's own client: an unverified password is refused, however right.
    ticks.now += 61
    assert_refused(get(client, PROTECTED, (credential.username, password), GUESSER))


def test_after_a_restart_the_correct_password_is_accepted(
    instance: Instance, clock: Clock, ticks: Ticks, guarded: Flask, archive_of: Archive
) -> None:
    client = guarded.test_client()
    credential, password = issue_credential(archive_of)
    assert get(client, PROTECTED, (credential.username, password), CRAWLER).status_code == 200
    guess(client, credential.username, 10)

    restarted = app_on(instance, clock, ticks).test_client()  # a new process: nothing remembered, nothing counted

    assert get(restarted, PROTECTED, (credential.username, password), CRAWLER).status_code == 200
    assert get(restarted, PROTECTED, (credential.username, password), GUESSER).status_code == 200


def test_revoked_and_expired_credentials_with_their_right_password_are_not_guesses(
    guarded: Flask, archive_of: Archive, clock: Clock
) -> None:
    client = guarded.test_client()
    old, old_password = issue_credential(archive_of)
    archive_of.access.revoke(old.id)
    short, short_password = issue_credential(archive_of, valid_days=1)
    clock.advance(days=2)
    current, password = issue_credential(archive_of)

    for _ in range(6):  # a job still configured with the old credentials, on the same machine
        assert get(client, PROTECTED, (old.username, old_password), CRAWLER).status_code == 401
        assert get(client, PROTECTED, (short.username, short_password), CRAWLER).status_code == 401

    assert get(client, PROTECTED, (current.username, password), CRAWLER).status_code == 200


# -- the owner ----------------------------------------------------------------------------------------


def sign_in(client: FlaskClient, password: str, address: str) -> TestResponse:
    """Sign in to the console as a browser does: the form's token first, then the POST."""
    form = client.get("/admin/login", environ_base={"REMOTE_ADDR": address}).get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form) or re.search(
        r'name="csrf_token" value="([^"]+)"', form
    )
    assert token, form
    return client.post(
        "/admin/login", data={"password": password, "csrf_token": token.group(1)}, environ_base={"REMOTE_ADDR": address}
    )


def test_others_guessing_never_lock_the_owner_out(guarded: Flask, instance: Instance) -> None:
    username, password = instance.owner_auth
    guesser = guarded.test_client()
    for n in range(10):
        assert sign_in(guesser, f"guess-{n}", GUESSER).status_code == 401
    assert sign_in(guesser, "guess", GUESSER).status_code == 429
    assert get(guesser, "/api/items", (username, "guess"), GUESSER).status_code == 429
    assert guess(guesser, username, 1) == [429]

    owner = guarded.test_client()
    signed_in = sign_in(owner, password, OWNER)
    assert signed_in.status_code == 302
    assert signed_in.headers["Location"].endswith("/admin/")
    assert get(owner, "/api/items", (username, password), OWNER).status_code == 200
    assert get(owner, PROTECTED, (username, password), OWNER).status_code == 200


def test_the_owner_verified_before_is_not_refused_with_a_guesser_on_the_same_address(
    guarded: Flask, instance: Instance, archive_of: Archive
) -> None:
    username, password = instance.owner_auth
    client = guarded.test_client()
    assert get(client, "/api/items", (username, password), GUESSER).status_code == 200
    guess(client, "crawler-00000000", 10)

    assert get(client, "/api/items", (username, password), GUESSER).status_code == 200
    assert sign_in(client, password, GUESSER).status_code == 302

    _, new_password = archive_of.set_owner_password()  # a new password misses the remembered check at once
    assert get(client, "/api/items", (username, password), OWNER).status_code == 401
    assert get(client, "/api/items", (username, new_password), OWNER).status_code == 200


def test_the_owner_is_told_in_the_log_without_the_address(
    guarded: Flask, archive_of: Archive, caplog: pytest.LogCaptureFixture
) -> None:
    client = guarded.test_client()
    credential, password = issue_credential(archive_of)
    caplog.set_level(logging.WARNING, logger="pligt")

    guess(client, credential.username, 11)
    for n in range(5):
        guess(client, credential.username, 2, address=f"198.18.0.{n}")

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "refusing a client for 300 s after 10 failed checks" in warnings[0]
    assert repr(credential.username) in warnings[0]
    assert f"20 failed for username {credential.username!r}" in warnings[1]
    assert "still accepted" in warnings[1]
    for message in warnings:
        assert not re.search(r"\d+\.\d+\.\d+\.\d+", message), message
        assert password not in message
    assert get(client, PROTECTED, (credential.username, password), CRAWLER).status_code == 200


# -- the workers of one server count together ---------------------------------------------------------


def _fail_in_child(shared: SharedChecks, client: bytes, times: int) -> None:
    for _ in range(times):
        shared.count_failures(client, 1, 10, 300, 0.0 + 1)


def test_failures_counted_in_one_worker_are_seen_in_another() -> None:
    shared = SharedChecks()
    client = b"c" * 32
    child = multiprocessing.get_context("fork").Process(target=_fail_in_child, args=(shared, client, 10))
    child.start()
    child.join(10)

    assert shared.count_failures(client, 1, 10, 300, 2.0) == (10, 1.0, True)
    assert shared.count_failures(b"d" * 32, 1, 10, 300, 2.0) == (1, 2.0, False)
    assert shared.count_failures(client, 0, 10, 300, 301.0) == (0, 0.0, False)  # quiet for 300 s: lapsed


def test_a_real_server_stops_the_guesser_across_its_workers_and_never_the_crawler(
    instance: Instance, tmp_path: Path
) -> None:
    archive = build_archive(instance.settings)
    archive.publish([pdf_bytes("beskyttet")], filename="kursus.pdf", visibility="protected")
    credential, password = issue_credential(archive)
    env = {"PLIGT_TRUSTED_PROXIES": "1"}

    def fetch(url: str, auth: tuple[str, str], address: str) -> int:
        # A new connection each time: the kernel spreads them over both workers.
        with requests.Session() as session:
            return session.get(url + PROTECTED, auth=auth, headers={"X-Forwarded-For": address}, timeout=30).status_code

    server = start_server(instance.path, tmp_path / "first.log", env=env)
    try:
        statuses = [fetch(server.url, (credential.username, f"guess-{n}"), GUESSER) for n in range(14)]
        assert statuses == [401] * 10 + [429] * 4
        assert fetch(server.url, (credential.username, password), CRAWLER) == 200
        assert fetch(server.url, (credential.username, password), GUESSER) == 200  # cached now, so it passes
    finally:
        stop_server(server)
    first_log = (tmp_path / "first.log").read_text()
    assert f"after 10 failed checks, the last for username {credential.username!r}" in first_log
    assert GUESSER not in first_log and CRAWLER not in first_log

    server = start_server(instance.path, tmp_path / "second.log", env=env)
    try:  # a restart: the check is no longer cached, and no count survived
        assert fetch(server.url, (credential.username, password), GUESSER) == 200
        assert fetch(server.url, (credential.username, password), CRAWLER) == 200
    finally:
        stop_server(server)
