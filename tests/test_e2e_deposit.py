"""End to end, the whole deposit: a request filed through the web form, the owner told by
email, approval on the command line, the release link followed, a wget harvest with the
released credentials, and `pligt harvest` showing everything fetched."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import requests
from warcio.archiveiterator import ArchiveIterator

from pligt.instance import build_archive
from tests.support.app import Instance
from tests.support.cli import invoke
from tests.support.data import pdf_bytes
from tests.support.mail import Mailbox
from tests.support.mail import smtp_env
from tests.support.net import free_port
from tests.support.servers import start_server
from tests.support.servers import stop_server


class _Inputs(HTMLParser):
    """Collect <input name=value> pairs and <code id=...> texts of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, str] = {}
        self.codes: dict[str, str] = {}
        self._code: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("name"):
            self.inputs[a["name"] or ""] = a.get("value") or ""
        if tag == "code" and a.get("id"):
            self._code = a["id"]

    def handle_data(self, data: str) -> None:
        if self._code:
            self.codes[self._code] = self.codes.get(self._code, "") + data

    def handle_endtag(self, tag: str) -> None:
        if tag == "code":
            self._code = None


def parse(html: str) -> _Inputs:
    parser = _Inputs()
    parser.feed(html)
    return parser


def test_request_approve_release_harvest(instance: Instance, smtp: tuple[Mailbox, int], tmp_path: Path) -> None:
    mailbox, smtp_port = smtp
    port = free_port()
    env = {**smtp_env(smtp_port), "PLIGT_BASE_URL": f"http://127.0.0.1:{port}"}
    server = start_server(instance.path, tmp_path / "server.log", env=env, port=port)
    try:
        _run(instance, server.url, env, mailbox, tmp_path)
    finally:
        stop_server(server)


def _run(instance: Instance, url: str, env: dict[str, str], mailbox: Mailbox, tmp_path: Path) -> None:
    folder = tmp_path / "material"
    folder.mkdir()
    (folder / "Brochure 2026.pdf").write_bytes(pdf_bytes("public brochure"))
    (folder / "Kursusmappe øvet.pdf").write_bytes(pdf_bytes("protected course", pad=400_000))
    (folder / "facit.txt").write_bytes(b"Kun for kursister og pligtaflevering.\n")
    for name, flag in [
        ("Brochure 2026.pdf", "--public"),
        ("Kursusmappe øvet.pdf", "--protected"),
        ("facit.txt", "--protected"),
    ]:
        result = invoke("add", "--instance", str(instance.path), flag, str(folder / name))
        assert result.exit_code == 0, result.stderr

    # The deposit institution files its request through the web form.
    browser = requests.Session()
    page = browser.get(f"{url}/access/", timeout=10)
    assert page.status_code == 200
    form = parse(page.text).inputs
    filed = browser.post(
        f"{url}/access/",
        data={
            "csrf_token": form["csrf_token"],
            "institution": "Det Kgl. Bibliotek",
            "contact_name": "Netarkivet",
            "contact_email": "netarkivet@kb.example.dk",
            "legal_basis": "Pligtafleveringsloven § 8 og § 10",
            "message": "Vi beder om adgang til det beskyttede materiale.",
        },
        timeout=10,
    )
    assert filed.status_code == 201, filed.text
    numbered = re.search(r'id="request-id">(\d+)<', filed.text)
    assert numbered, filed.text
    request_id = int(numbered.group(1))

    # The owner hears of it by email, and in `pligt requests`.
    [to_owner] = mailbox.wait_for(1)
    assert to_owner["To"] == "owner@publisher.example.dk"
    assert f"#{request_id}" in to_owner["Subject"]
    listed = json.loads(invoke("requests", "--instance", str(instance.path), "--json", env=env).stdout)
    assert [(r["id"], r["status"]) for r in listed] == [(request_id, "pending")]

    # The owner approves; the requester gets the single-use release link.
    approved = invoke("approve", str(request_id), "--instance", str(instance.path), env=env)
    assert approved.exit_code == 0, approved.stderr
    messages = mailbox.wait_for(2)
    to_requester = messages[1]
    assert to_requester["To"] == "netarkivet@kb.example.dk"
    mailed = re.search(r"(http://\S+/access/release/\S+)", to_requester.get_content())
    assert mailed, to_requester.get_content()
    link = mailed.group(1)
    assert link.startswith(url)

    # Following the link: a button first, then the credentials, once.
    staff = requests.Session()
    ready = staff.get(link, timeout=10)
    assert ready.status_code == 200
    shown = staff.post(link, data={"csrf_token": parse(ready.text).inputs["csrf_token"]}, timeout=10)
    assert shown.status_code == 200
    codes = parse(shown.text).codes
    username, password = codes["username"], codes["password"]
    assert codes["realm"] == instance.settings.realm
    assert codes["domain"] == urlsplit(url).netloc  # host:port, as Heritrix files the server
    assert f'<property name="password" value="{password}"/>' in codes["heritrix-credential"]
    assert staff.get(link, timeout=10).status_code == 410

    # The crawler harvests with them (credentials after the challenge, from .netrc).
    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text(f"machine 127.0.0.1 login {username} password {password}\n")
    (home / ".netrc").chmod(0o600)
    warc = tmp_path / "harvest"
    crawl = subprocess.run(
        [
            "wget",
            "--recursive",
            "--level=10",
            "--no-verbose",
            "--tries=1",
            "--directory-prefix",
            str(tmp_path / "mirror"),
            "--warc-file",
            str(warc),
            f"{url}/",
        ],
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert crawl.returncode in (0, 8), crawl.stderr
    payloads: dict[str, bytes] = {}
    with open(f"{warc}.warc.gz", "rb") as stream:
        for record in ArchiveIterator(stream):
            if record.rec_type == "response" and record.http_headers.get_statuscode() == "200":
                payloads[urlsplit(record.rec_headers.get_header("WARC-Target-URI")).path] = (
                    record.content_stream().read()
                )
    versions = build_archive(instance.settings).versions()
    for version in versions:
        [path] = [p for p in payloads if p.startswith(f"/files/{version.slug}/v{version.number}/")]
        assert hashlib.sha256(payloads[path]).hexdigest() == version.sha256

    # Proof of deposit: every protected version fetched completely with this credential;
    # the public one (fetched before wget had been challenged) was fetched without credentials.
    deadline = time.monotonic() + 10  # the server writes its records every half second
    while True:
        report = json.loads(invoke("harvest", "--instance", str(instance.path), "--json").stdout)
        mine = [row for row in report if row["request"] == request_id]
        if all(row["complete_at"] or row["anonymous_complete_at"] for row in mine) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(mine) == len(versions) == 3
    protected_rows = [row for row in mine if row["visibility"] == "protected"]
    assert all(row["complete_at"] and row["username"] == username for row in protected_rows), json.dumps(mine, indent=1)
    assert all(row["complete_at"] or row["anonymous_complete_at"] for row in mine), mine

    # A revoked credential is refused on the very next request.
    protected = f"{url}/protected/"
    assert requests.get(protected, auth=(username, password), timeout=10).status_code == 200
    credential_id = next(
        c["id"] for c in json.loads(invoke("credentials", "--instance", str(instance.path), "--json").stdout)
    )
    assert invoke("revoke", str(credential_id), "--instance", str(instance.path)).exit_code == 0
    refused = requests.get(protected, auth=(username, password), timeout=10)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith(f'Basic realm="{instance.settings.realm}"')

    # Every step is in the audit log, and the log verifies.
    verified = invoke("audit", "verify", "--instance", str(instance.path))
    assert verified.exit_code == 0, verified.stderr
    actions = [
        e["action"]
        for e in json.loads(invoke("audit", "log", "--instance", str(instance.path), "--json", "--limit", "100").stdout)
    ]
    for action in (
        "version.published",
        "request.filed",
        "request.approved",
        "credential.issued",
        "credential.released",
        "credential.revoked",
    ):
        assert action in actions
