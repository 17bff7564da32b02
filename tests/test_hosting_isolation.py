"""Isolation between publishers, attacked as an adversary would: hundreds of attempts, no crossing.

One real ``pligt serve --deployment`` serves two publishers, Alpha and Bravo,
each with a public and a protected file, a crawler credential, an owner, an
unused release link and a checkpoint key. Every attempt either addresses one
publisher (the victim's neighbour, by its Host) while naming the other (an
absolute-form target, a second Host, forwarded headers, look-alike names), or
presents one publisher's secret (owner password, session cookie, CSRF token,
crawler credential, release link) to the other. A crossing is an answer that
carries the victim's content, or grants the neighbour's protected pages to the
victim's secret. Both directions are attacked.
"""

from __future__ import annotations

import base64
import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import pytest

from pligt.core.models import PROTECTED
from pligt.core.models import PUBLIC
from pligt.hosting import load_deployment
from pligt.links import RELEASE_PATH
from pligt.links import version_path
from tests.support.access import REQUEST_FIELDS
from tests.support.access import basic_header
from tests.support.access import issue_credential
from tests.support.cli import invoke
from tests.support.data import pdf_bytes
from tests.support.hosting import Hosted
from tests.support.hosting import make_deployment
from tests.support.hosting import serve
from tests.support.hosting import stop
from tests.support.s3 import FAKE_AWS_ENV
from tests.support.s3 import UNSET_AWS_ENV
from tests.support.s3 import loopback_only
from tests.support.s3 import new_bucket

ALPHA, BRAVO = "alpha.example", "bravo.example"
#: The guessing client of the lock-out test: an address no other attempt comes from.
GUESSER = "127.0.0.3"
NAMES = {ALPHA: "Alpha Secret Site", BRAVO: "Bravo Secret Site"}


@dataclass
class Secrets:
    """What one publisher holds that the other must never be able to use or see."""

    name: str
    public_path: str = ""
    protected_path: str = ""
    crawler: str = ""  # an Authorization header value
    spare_crawler: str = ""  # a credential never used before the lock-out test
    owner_password: str = ""
    session_cookie: str = ""
    csrf_token: str = ""
    release_token: str = ""
    checkpoint_key: bytes = b""
    pending_request: int = 0
    markers: list[bytes] = field(default_factory=list)


@dataclass
class Campaign:
    hosted: Hosted
    secrets: dict[str, Secrets]
    #: What a command run with ``--instance`` on a publisher's folder needs besides (its shared stores).
    cli_env: dict[str, dict[str, str]] = field(default_factory=dict)


def _prepare(hosted: Hosted, name: str) -> Secrets:
    s = Secrets(name, owner_password=hosted.passwords[name])
    mark = name.split(".")[0]
    archive = hosted.archive(name)
    try:
        public = archive.publish(
            [pdf_bytes(f"{mark}mark public")], filename=f"{mark}mark-public.pdf", visibility=PUBLIC
        )
        protected = archive.publish(
            [pdf_bytes(f"{mark}mark protected")], filename=f"{mark}mark-protected.pdf", visibility=PROTECTED
        )
        s.public_path, s.protected_path = version_path(public.version), version_path(protected.version)
        credential, password = issue_credential(archive)
        s.crawler = basic_header(credential, password)
        spare, spare_password = issue_credential(archive)
        s.spare_crawler = basic_header(spare, spare_password)
        unreleased = archive.access.approve(archive.access.file(dict(REQUEST_FIELDS)).id)
        s.release_token = unreleased.release_token
        s.pending_request = archive.access.file({**REQUEST_FIELDS, "contact_email": "other@example.dk"}).id
    finally:
        archive.catalog.close()
    s.checkpoint_key = hosted.get(name, "/.well-known/pligt/checkpoint-key").content.strip()
    assert s.checkpoint_key
    session = hosted.session(name)
    s.csrf_token = _csrf(session.get(hosted.url + "/admin/login", timeout=30).text)
    signed_in = session.post(
        hosted.url + "/admin/login",
        data={"csrf_token": s.csrf_token, "password": s.owner_password},
        allow_redirects=False,
        timeout=30,
    )
    assert signed_in.status_code == 302, signed_in.text
    s.session_cookie = session.cookies["pligt_session"]
    s.markers = [NAMES[name].encode(), f"{mark}mark".encode(), s.checkpoint_key, name.encode()]
    return s


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page
    )
    assert found, page
    return found.group(1)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param((0, False), id="direct"),
        pytest.param((1, False), id="behind a proxy"),
        pytest.param((0, True), id="postgresql-s3", marks=[pytest.mark.postgres, pytest.mark.s3]),
    ],
)
def campaign(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Campaign]:
    """The deployment served directly, and trusting one proxy's forwarded headers (as behind Caddy).

    Its publishers in folders of their own (SQLite and files), and served directly with every
    publisher in one PostgreSQL database (a schema each, on the connections they share in each
    worker) and one S3 bucket (a prefix each).
    """
    proxies, shared = request.param
    folder = tmp_path_factory.mktemp("isolation")
    with pytest.MonkeyPatch.context() as patch:
        text = f'scheme = "http"\n[settings]\ntrusted_proxies = {proxies}\n'
        env: dict[str, str] = {}
        if shared:
            text, env = _shared_stores(request, patch, proxies)
        hosted = make_deployment(folder / "deployment", text=text)
        for name in (ALPHA, BRAVO):
            hosted.add(name, site_name=NAMES[name])
        serve(hosted, folder / "serve.log", env=env)
        try:
            cli_env = {name: _instance_env(hosted, name) for name in (ALPHA, BRAVO)} if shared else {}
            yield Campaign(hosted, {name: _prepare(hosted, name) for name in (ALPHA, BRAVO)}, cli_env)
        finally:
            stop(hosted)


def _shared_stores(
    request: pytest.FixtureRequest, patch: pytest.MonkeyPatch, proxies: int
) -> tuple[str, dict[str, str]]:
    """deployment.toml for one database of the session's cluster and a new bucket; the fake S3 credentials."""
    for name, value in FAKE_AWS_ENV.items():
        patch.setenv(name, value)
    for name in UNSET_AWS_ENV:
        patch.delenv(name, raising=False)
    patch.setattr(socket.socket, "connect", loopback_only(socket.socket.connect))
    database = request.getfixturevalue("postgres").new_database()
    bucket = new_bucket(request.getfixturevalue("moto_endpoint"))
    text = (
        f'scheme = "http"\ncatalog = "{database}"\nstorage = "{bucket.url("pligt")}"\n[settings]\n'
        f"trusted_proxies = {proxies}\n"
        f's3_endpoint_url = "{bucket.endpoint}"\ns3_region = "{bucket.region}"\ns3_addressing_style = "path"\n'
    )
    return text, dict(FAKE_AWS_ENV)


def _instance_env(hosted: Hosted, name: str) -> dict[str, str]:
    """The publisher's catalog and storage (and the deployment's S3 settings) as PLIGT_* variables."""
    settings = load_deployment(hosted.folder).publisher_settings(name, env={})
    keys = ("catalog", "storage", "s3_endpoint_url", "s3_region", "s3_addressing_style")
    return {f"PLIGT_{key.upper()}": str(getattr(settings, key)) for key in keys}


def _other(name: str) -> str:
    return BRAVO if name == ALPHA else ALPHA


def _status_and_body(answer: bytes) -> tuple[int, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, body


# -- 1. Requests addressed to the neighbour (or to no one) that name the victim ------------------

#: How a request can name the victim V while its Host names the neighbour N: (label, head lines).
#: ``{v}``/``{n}`` are the names, ``{path}`` the victim's path; the request line comes first.
HOST_TRICKS = {
    "absolute-form http": ["GET http://{v}{path} HTTP/1.1", "Host: {n}"],
    "absolute-form https": ["GET https://{v}{path} HTTP/1.1", "Host: {n}"],
    "absolute-form with port": ["GET http://{v}:80{path} HTTP/1.1", "Host: {n}:80"],
    "absolute-form, HTTP/1.0, no Host": ["GET http://{v}{path} HTTP/1.0"],
    "absolute-form, empty Host": ["GET http://{v}{path} HTTP/1.1", "Host: "],
    "absolute-form, Host an address": ["GET http://{v}{path} HTTP/1.1", "Host: 127.0.0.1"],
    "neighbour's Host then victim's": ["GET {path} HTTP/1.1", "Host: {n}", "Host: {v}"],
    "victim's Host then neighbour's": ["GET {path} HTTP/1.1", "Host: {v}", "Host: {n}"],
    "X-Forwarded-Host": ["GET {path} HTTP/1.1", "Host: {n}", "X-Forwarded-Host: {v}"],
    "X-Forwarded-Host from loopback": [
        "GET {path} HTTP/1.1",
        "Host: {n}",
        "X-Forwarded-Host: {v}",
        "X-Forwarded-For: 127.0.0.1",
    ],
    "Forwarded host=": ["GET {path} HTTP/1.1", "Host: {n}", "Forwarded: host={v};proto=https"],
    "X-Original-Host": ["GET {path} HTTP/1.1", "Host: {n}", "X-Original-Host: {v}", "X-Host: {v}"],
    "both names in one Host": ["GET {path} HTTP/1.1", "Host: {n}, {v}"],
    "userinfo in Host": ["GET {path} HTTP/1.1", "Host: {v}@{n}"],
    "percent-encoded dot": ["GET {path} HTTP/1.1", "Host: {v_pct}"],
    "percent-encoded whole name": ["GET {path} HTTP/1.1", "Host: {v_pct_all}"],
    "trailing dot": ["GET {path} HTTP/1.1", "Host: {v}."],
    "trailing dot, upper case": ["GET {path} HTTP/1.1", "Host: {v_upper}."],
    "another port": ["GET {path} HTTP/1.1", "Host: {v}:8080"],
    "a name under the victim's": ["GET {path} HTTP/1.1", "Host: www.{v}"],
    "the victim's name under the neighbour's": ["GET {path} HTTP/1.1", "Host: {v}.{n}"],
    "NUL in Host": ["GET {path} HTTP/1.1", "Host: {n}\x00{v}"],
    "tab in Host": ["GET {path} HTTP/1.1", "Host: {n}\t{v}"],
}
VICTIM_PATHS = ("/", "public", "protected", "/protected/", "/access/", "/.well-known/pligt/checkpoint-key")
DIRECTIONS = ((ALPHA, BRAVO), (BRAVO, ALPHA))


def _victim_path(s: Secrets, which: str) -> str:
    return {"public": s.public_path, "protected": s.protected_path}.get(which, which)


@pytest.mark.parametrize(("victim", "neighbour"), DIRECTIONS)
@pytest.mark.parametrize("which", VICTIM_PATHS)
@pytest.mark.parametrize("trick", sorted(HOST_TRICKS))
def test_a_request_that_names_another_publisher_never_gets_its_content(
    campaign: Campaign, victim: str, neighbour: str, which: str, trick: str
) -> None:
    v = campaign.secrets[victim]
    path = _victim_path(v, which)
    values = {
        "v": victim,
        "n": neighbour,
        "path": path,
        "v_pct": victim.replace(".", "%2e"),
        "v_pct_all": "".join(f"%{b:02x}" for b in victim.encode()),
        "v_upper": victim.upper(),
    }
    lines = [line.format(**values) for line in HOST_TRICKS[trick]]
    # The victim's own crawler credential rides along: had the request reached the victim, it would be served.
    head = "\r\n".join([*lines, f"Authorization: {v.crawler}", "Connection: close"]) + "\r\n\r\n"
    status, body = _status_and_body(campaign.hosted.raw(head.encode("latin-1")))
    crossed = [m for m in v.markers if m in body]
    assert crossed == [], f"{trick} {path}: {status} carried {crossed}"


# -- 2. The victim's secrets presented to its neighbour -------------------------------------------

NEIGHBOUR_PATHS = (
    "protected",
    "/protected/",
    "/api/items",
    "/api/requests",
    "/admin/",
    "/admin/requests",
    "/admin/audit",
    "/admin/upload",
)
SECRET_FORMS = ("crawler credential", "owner password", "session cookie", "session cookie and owner password", "all")


def _presented(v: Secrets, form: str) -> dict[str, str]:
    owner = "Basic " + base64.b64encode(f"owner:{v.owner_password}".encode()).decode()
    cookie = f"pligt_session={v.session_cookie}"
    return {
        "crawler credential": {"Authorization": v.crawler},
        "owner password": {"Authorization": owner},
        "session cookie": {"Cookie": cookie},
        "session cookie and owner password": {"Cookie": cookie, "Authorization": owner},
        "all": {"Cookie": cookie, "Authorization": owner, "X-CSRFToken": v.csrf_token, "Accept": "application/json"},
    }[form]


@pytest.mark.parametrize(("victim", "neighbour"), DIRECTIONS)
@pytest.mark.parametrize("which", NEIGHBOUR_PATHS)
@pytest.mark.parametrize("form", SECRET_FORMS)
def test_one_publishers_secret_opens_nothing_at_another(
    campaign: Campaign, victim: str, neighbour: str, which: str, form: str
) -> None:
    n = campaign.secrets[neighbour]
    path = _victim_path(n, which)
    answer = campaign.hosted.get(neighbour, path, headers=_presented(campaign.secrets[victim], form))
    assert answer.status_code != 200, f"{form} of {victim} opened {path} at {neighbour}"
    assert not any(m in answer.content for m in (b"mark-protected", b"mark protected"))


@pytest.mark.parametrize(("victim", "neighbour"), DIRECTIONS)
def test_one_publishers_owner_password_does_not_sign_in_at_another(
    campaign: Campaign, victim: str, neighbour: str
) -> None:
    session = campaign.hosted.session(neighbour)
    token = _csrf(session.get(campaign.hosted.url + "/admin/login", timeout=30).text)
    answer = session.post(
        campaign.hosted.url + "/admin/login",
        data={"csrf_token": token, "password": campaign.secrets[victim].owner_password},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code in (401, 429)  # wrong, or this client failed too often there already
    assert (
        "pligt_session" not in session.cookies
        or session.get(campaign.hosted.url + "/admin/", allow_redirects=False, timeout=30).status_code != 200
    )


@pytest.mark.parametrize(("victim", "neighbour"), DIRECTIONS)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_one_publishers_release_link_releases_nothing_at_another(
    campaign: Campaign, victim: str, neighbour: str, method: str
) -> None:
    path = RELEASE_PATH + campaign.secrets[victim].release_token
    answer = campaign.hosted.request(method, neighbour, path)
    assert answer.status_code in (400, 404, 410), answer.status_code
    assert "crawler-" not in answer.text.lower() or "password" not in answer.text.lower()


@pytest.mark.parametrize(("victim", "neighbour"), DIRECTIONS)
def test_one_publishers_csrf_token_decides_nothing_at_another(campaign: Campaign, victim: str, neighbour: str) -> None:
    """The neighbour's owner is signed in; a decision posted with the victim's CSRF token is not taken.

    Then the same post with the neighbour's own token is (the session was live all along).
    """
    hosted, n = campaign.hosted, campaign.secrets[neighbour]
    session = hosted.session(neighbour)
    session.cookies.set("pligt_session", n.session_cookie, domain=neighbour, path="/")
    own_token = _csrf(session.get(f"{hosted.url}/admin/requests", timeout=30).text)
    approve = f"{hosted.url}/admin/requests/{n.pending_request}/approve"
    for token, decided in ((campaign.secrets[victim].csrf_token, False), (own_token, True)):
        session.post(approve, data={"csrf_token": token, "valid_days": "30"}, allow_redirects=False, timeout=30)
        archive = hosted.archive(neighbour)
        try:
            pending = [r.id for r in archive.access.requests("pending")]
        finally:
            archive.catalog.close()
        assert (n.pending_request not in pending) is decided, token
    # A new pending request for the other direction's run and for the list above.
    archive = hosted.archive(neighbour)
    try:
        n.pending_request = archive.access.file({**REQUEST_FIELDS, "contact_email": "again@example.dk"}).id
    finally:
        archive.catalog.close()


# -- 3. Counters, lock-outs and proofs ----------------------------------------------------------


def test_guessers_at_one_publisher_never_lock_out_anothers_crawler(campaign: Campaign) -> None:
    """Bravo's passwords guessed from one client until Bravo refuses it; Alpha's crawler, from that client, goes on.

    The client is an address of its own (127.0.0.3): the attempts above, from 127.0.0.1, count at both.
    """
    hosted, a, b = campaign.hosted, campaign.secrets[ALPHA], campaign.secrets[BRAVO]
    wrong = "Basic " + base64.b64encode(b"crawler-guess:not-the-password").decode()

    def status(host: str, path: str, authorization: str) -> int:
        head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {authorization}\r\nConnection: close\r\n\r\n"
        return _status_and_body(hosted.raw(head.encode(), source=GUESSER))[0]

    statuses = [status(BRAVO, b.protected_path, wrong) for _ in range(14)]
    assert statuses[-1] == 429, statuses  # Bravo refuses this client
    # Alpha's spare credential was never checked before: no cache helps it, only Alpha's own count.
    assert status(ALPHA, a.protected_path, a.spare_crawler) == 200
    # And at Alpha this client's wrong guesses start from nothing: a plain 401, not a refusal.
    assert status(ALPHA, a.protected_path, wrong) == 401


def test_a_receipt_of_one_publisher_never_verifies_under_anothers_key(campaign: Campaign, tmp_path: Path) -> None:
    hosted = campaign.hosted
    for victim, neighbour in DIRECTIONS:
        slug = campaign.secrets[victim].public_path.split("/")[2]
        receipt = tmp_path / f"{victim}.json"
        instance = str(hosted.folder / "publishers" / victim)
        env = campaign.cli_env.get(victim)
        made = invoke("proof", "--instance", instance, slug, "--version", "1", "--output", str(receipt), env=env)
        assert made.exit_code == 0, made.output
        own = invoke("verify-proof", str(receipt), "--key", campaign.secrets[victim].checkpoint_key.decode())
        # (No time-stamping authority here: that one fact does not hold, the signature does.)
        assert re.search(rf"^holds: the checkpoint of \d+ entries is signed by {re.escape(victim)}", own.output, re.M)
        other = invoke("verify-proof", str(receipt), "--key", campaign.secrets[neighbour].checkpoint_key.decode())
        assert other.exit_code != 0
        assert not re.search(r"^holds: the checkpoint of \d+ entries is signed", other.output, re.M), other.output
        # Nor does the neighbour's published checkpoint name the victim's log.
        checkpoint = hosted.get(neighbour, "/.well-known/pligt/checkpoint").text
        assert victim not in checkpoint and json.dumps(victim) not in checkpoint
