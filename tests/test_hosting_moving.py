"""A publisher moves out: ``pligt publishers hand-over`` then ``pligt restore`` on its own server, every URL the same.

The hosted publisher and the restored instance are both real ``pligt serve``
processes; the crawler, the owner and a holder of a receipt use the new one as
they used the old, by the same name.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from pligt.core.models import PROTECTED
from pligt.core.models import PUBLIC
from tests.support.access import basic_header
from tests.support.access import issue_credential
from tests.support.cli import invoke
from tests.support.data import pdf_bytes
from tests.support.hosting import make_deployment
from tests.support.hosting import serve
from tests.support.hosting import stop
from tests.support.servers import start_server
from tests.support.servers import stop_server

NAME = "move.example"


@pytest.mark.server
def test_a_handed_over_publisher_runs_on_its_own_with_every_url_credential_and_proof(tmp_path: Path) -> None:
    hosted = make_deployment(tmp_path / "deployment", NAME)
    archive = hosted.archive(NAME)
    try:
        public = archive.publish([pdf_bytes("public")], filename="brochure.pdf", visibility=PUBLIC).version
        protected = archive.publish([pdf_bytes("protected")], filename="course.pdf", visibility=PROTECTED).version
        credential, password = issue_credential(archive)
    finally:
        archive.catalog.close()
    crawler = {"Authorization": basic_header(credential, password)}
    owner = ("owner", hosted.passwords[NAME])
    paths = ["/", "/protected/", "/robots.txt", "/.well-known/pligt/checkpoint-key"]
    receipt = tmp_path / "receipt.json"
    instance = str(hosted.folder / "publishers" / NAME)
    made = invoke("proof", "--instance", instance, "brochure", "--version", "1", "--output", str(receipt))
    assert made.exit_code == 0, made.output
    serve(hosted, tmp_path / "hosted.log")
    try:
        front = hosted.get(NAME).text
        links = sorted(set(re.findall(r'href="(/files/[^"]+)"', front)))
        assert links, front
        before = {path: hosted.get(NAME, path, headers=crawler).content for path in [*paths, *links]}
        for version in (public, protected):
            path = f"/files/{version.slug}/v1/{version.filename}"
            before[path] = hosted.get(NAME, path, headers=crawler).content
        backup = tmp_path / "backup"
        handed = invoke("publishers", "hand-over", "--deployment", str(hosted.folder), NAME, str(backup))
        assert handed.exit_code == 0, handed.output
    finally:
        stop(hosted)

    # On its own server: its settings as they were in force, then its catalog, files and keys.
    own = tmp_path / "own-server"
    own.mkdir()
    shutil.copy(backup / "pligt.toml", own / "pligt.toml")
    assert f'base_url = "http://{NAME}"' in (own / "pligt.toml").read_text()
    restored = invoke("restore", "--instance", str(own), str(backup))
    assert restored.exit_code == 0, restored.output
    server = start_server(own, tmp_path / "own.log")
    try:
        for path, content in before.items():
            answer = server_get(server.url, path, crawler)
            assert answer == content, path
        api = server_get(server.url, "/api/items", auth=owner)
        assert b"brochure" in api
    finally:
        stop_server(server)
    key = before["/.well-known/pligt/checkpoint-key"].decode().strip()
    verified = invoke("verify-proof", str(receipt), "--key", key)
    assert re.search(rf"^holds: the checkpoint of \d+ entries is signed by {re.escape(NAME)}", verified.output, re.M)

    # Handed over and unchanged since: the host may take it off the deployment.
    removed = invoke("publishers", "remove", "--deployment", str(hosted.folder), NAME)
    assert removed.exit_code == 0, removed.output


def test_a_publisher_that_changed_after_its_hand_over_is_not_removed(tmp_path: Path) -> None:
    hosted = make_deployment(tmp_path / "deployment", NAME)
    archive = hosted.archive(NAME)
    try:
        archive.publish([pdf_bytes("one")], filename="one.pdf", visibility=PUBLIC)
    finally:
        archive.catalog.close()
    assert (
        invoke("publishers", "hand-over", "--deployment", str(hosted.folder), NAME, str(tmp_path / "b1")).exit_code == 0
    )
    archive = hosted.archive(NAME)
    try:
        archive.publish([pdf_bytes("two")], filename="two.pdf", visibility=PUBLIC)
    finally:
        archive.catalog.close()
    refused = invoke("publishers", "remove", "--deployment", str(hosted.folder), NAME)
    assert refused.exit_code != 0 and "retained" in refused.stderr
    assert (hosted.folder / "publishers" / NAME / "catalog.sqlite3").is_file()


def server_get(
    url: str, path: str, headers: dict[str, str] | None = None, auth: tuple[str, str] | None = None
) -> bytes:
    import requests

    answer = requests.get(url + path, headers={"Host": NAME, **(headers or {})}, auth=auth, timeout=30)
    assert answer.status_code == 200, (path, answer.status_code)
    return answer.content
