"""Many publishers on one deployment: each answers on its own host name, and the host's commands.

A real ``pligt serve --deployment`` serves publishers made by ``pligt publishers
add``; the requests go to its loopback port with a publisher's name in ``Host``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pligt.core.models import PROTECTED
from pligt.core.models import PUBLIC
from pligt.hosting import load_deployment
from pligt.links import version_path
from pligt.server.dispatch import Dispatcher
from tests.support.access import basic_header
from tests.support.access import issue_credential
from tests.support.cli import invoke
from tests.support.data import pdf_bytes
from tests.support.hosting import Hosted
from tests.support.hosting import make_deployment
from tests.support.hosting import serve
from tests.support.hosting import stop
from tests.support.hosting import wait_for

A, B = "a.example", "b.example"
NO_PUBLISHER = "No publisher is served at this address."


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosted]:
    folder = tmp_path_factory.mktemp("deployment")
    deployment = make_deployment(folder / "deployment", A, B)
    serve(deployment, folder / "serve.log")
    yield deployment
    stop(deployment)


def publish(hosted: Hosted, name: str, filename: str, visibility: str = PUBLIC) -> str:
    """Publish a small PDF in ``name``'s archive; return its stable path."""
    archive = hosted.archive(name)
    try:
        version = archive.publish([pdf_bytes(f"{name} {filename}")], filename=filename, visibility=visibility).version
    finally:
        archive.catalog.close()
    return version_path(version)


def test_each_publisher_answers_on_its_own_name_only(hosted: Hosted) -> None:
    a_page, b_page = hosted.get(A), hosted.get(B)
    assert a_page.status_code == b_page.status_code == 200
    assert "<title>a.example</title>" in a_page.text and "b.example" not in a_page.text
    assert "<title>b.example</title>" in b_page.text and "a.example" not in b_page.text
    # Any case, and the port of its address written out, name the same publisher.
    assert "<title>a.example</title>" in hosted.get("A.Example").text
    assert "<title>a.example</title>" in hosted.get("a.example:80").text


@pytest.mark.parametrize(
    "host",
    [
        "c.example",
        "a.example.",
        "a.example:81",
        "127.0.0.1",
        "example",
        "a.example..",
        "xa.example",
        "a.example.b.example",
    ],
)
def test_a_name_of_no_publisher_gets_a_404_that_names_none(hosted: Hosted, host: str) -> None:
    answer = hosted.get(host)
    assert answer.status_code == 404
    assert answer.text.strip() == NO_PUBLISHER


def test_a_version_is_served_on_its_publishers_name_and_nowhere_else(hosted: Hosted) -> None:
    path = publish(hosted, A, "only-a.pdf")
    assert hosted.get(A, path).status_code == 200
    # B answers as for a file it never had (a challenge: it does not tell what exists).
    on_b, nowhere = hosted.get(B, path), hosted.get(B, "/files/never/v1/never.pdf")
    assert (on_b.status_code, on_b.content) == (nowhere.status_code, nowhere.content) != (200, pdf_bytes())
    assert path not in hosted.get(B).text


def test_a_publisher_added_while_the_server_runs_is_served_at_once(hosted: Hosted) -> None:
    assert hosted.get("late.example").status_code == 404
    hosted.add("late.example", site_name="Late Ltd")
    assert "<title>Late Ltd</title>" in hosted.get("late.example").text


def test_the_health_check_and_the_question_of_caddy_answer_from_this_machine(hosted: Hosted) -> None:
    assert hosted.get(f"127.0.0.1:{hosted.port}", "/healthz").status_code == 200
    assert hosted.get(f"127.0.0.1:{hosted.port}", f"/_pligt/ask?domain={A}").status_code == 200
    for asked in ("c.example", "a.example.", "A.EXAMPLE%00", "", "127.0.0.1"):
        assert hosted.get("localhost", f"/_pligt/ask?domain={asked}").status_code == 404, asked
    # Through a proxy that forwards a client, neither is answered: the client is not this machine.
    forwarded = {"X-Forwarded-For": "192.0.2.1"}
    assert hosted.get("localhost", f"/_pligt/ask?domain={A}", headers=forwarded).status_code == 404


def test_list_counts_each_publishers_versions_bytes_requests_and_harvest(hosted: Hosted) -> None:
    hosted.add("counted.example")
    publish(hosted, "counted.example", "one.pdf")
    path = publish(hosted, "counted.example", "two.pdf", PROTECTED)
    archive = hosted.archive("counted.example")
    try:
        credential, password = issue_credential(archive)
        archive.access.file({**_fields(), "contact_email": "second@example.dk"})
    finally:
        archive.catalog.close()
    fetched = hosted.get("counted.example", path, headers={"Authorization": basic_header(credential, password)})
    assert fetched.status_code == 200
    rows = wait_for(lambda: listed(hosted), lambda rows: rows["counted.example"]["last_harvest"] is not None)
    counted = rows["counted.example"]
    assert (counted["versions"], counted["retained"], counted["pending_requests"]) == (2, 2, 1)
    assert counted["bytes"] == len(pdf_bytes("counted.example one.pdf")) + len(pdf_bytes("counted.example two.pdf"))
    assert counted["last_harvest"] is not None
    assert rows[B]["versions"] == 0 and rows[B]["last_harvest"] is None


def listed(hosted: Hosted) -> dict[str, dict[str, Any]]:
    """``pligt publishers list --json``, by name (the server records downloads every half second)."""
    result = invoke("publishers", "list", "--deployment", str(hosted.folder), "--json")
    assert result.exit_code == 0, result.output
    return {row["name"]: row for row in json.loads(result.stdout)}


def _fields() -> dict[str, str]:
    from tests.support.access import REQUEST_FIELDS

    return dict(REQUEST_FIELDS)


def test_a_suspended_publisher_keeps_serving_its_files_and_refuses_its_owner(hosted: Hosted) -> None:
    hosted.add("paused.example")
    public = publish(hosted, "paused.example", "kept.pdf")
    protected = publish(hosted, "paused.example", "kept-protected.pdf", PROTECTED)
    archive = hosted.archive("paused.example")
    try:
        credential, password = issue_credential(archive)
    finally:
        archive.catalog.close()
    crawler = {"Authorization": basic_header(credential, password)}
    assert invoke("publishers", "suspend", "--deployment", str(hosted.folder), "paused.example").exit_code == 0
    # The crawler harvests as before: pages, public and protected files.
    for path in ("/", "/robots.txt", "/protected/", public, protected):
        assert hosted.get("paused.example", path, headers=crawler).status_code == 200, path
    # The owner, the API and every form wait.
    assert hosted.get("paused.example", "/admin/login").status_code == 403
    owner = ("owner", hosted.passwords["paused.example"])
    assert hosted.get("paused.example", "/api/items", auth=owner).status_code == 403
    assert hosted.request("POST", "paused.example", "/access/", data=_fields()).status_code == 403
    # The others are not touched; the question of Caddy still says yes (its certificate must not lapse).
    assert hosted.get(A, "/admin/login").status_code == 200
    assert hosted.get("localhost", "/_pligt/ask?domain=paused.example").status_code == 200
    assert invoke("publishers", "resume", "--deployment", str(hosted.folder), "paused.example").exit_code == 0
    assert hosted.get("paused.example", "/admin/login").status_code == 200
    assert hosted.get("paused.example", "/api/items", auth=owner).status_code == 200


def test_remove_is_refused_while_a_version_is_retained(hosted: Hosted) -> None:
    hosted.add("keeps.example")
    path = publish(hosted, "keeps.example", "retained.pdf")
    result = invoke("publishers", "remove", "--deployment", str(hosted.folder), "keeps.example")
    assert result.exit_code != 0
    assert "retained" in result.stderr
    assert hosted.get("keeps.example", path).status_code == 200
    assert (hosted.folder / "publishers" / "keeps.example" / "catalog.sqlite3").is_file()


def test_a_publisher_with_nothing_retained_is_removed_and_answers_no_more(hosted: Hosted) -> None:
    hosted.add("empty.example")
    assert hosted.get("empty.example").status_code == 200  # its app is built in a worker
    result = invoke("publishers", "remove", "--deployment", str(hosted.folder), "empty.example")
    assert result.exit_code == 0, result.output
    assert not (hosted.folder / "publishers" / "empty.example").exists()
    for _ in range(4):  # whichever worker answers
        assert hosted.get("empty.example").status_code == 404


@pytest.mark.parametrize(
    "name",
    ["a.example", "A.EXAMPLE", "-x.example", "x", "1.2.3.4", "a.example.", "a_b.example", "a.example:443", "../etc"],
)
def test_add_refuses_a_name_that_is_taken_or_no_host_name(hosted: Hosted, name: str) -> None:
    result = invoke("publishers", "add", "--deployment", str(hosted.folder), "--owner-email", "o@x.example", "--", name)
    assert result.exit_code != 0
    assert "error" in result.stderr


def test_a_publishers_folder_is_an_instance_of_its_own(hosted: Hosted, tmp_path: Path) -> None:
    """The commands of one instance work on a publisher's folder, and its address is its own."""
    folder = hosted.folder / "publishers" / A
    result = invoke("items", "--instance", str(folder), "--json")
    assert result.exit_code == 0, result.output
    assert 'base_url = "http://a.example"' in (folder / "pligt.toml").read_text()


def test_a_worker_keeps_the_most_recently_used_publishers_and_builds_the_others_again(tmp_path: Path) -> None:
    """The memory bound: apps_in_memory apps per worker; one let go is built again on its next request."""
    names = [f"p{n}.example" for n in range(4)]
    hosted = make_deployment(tmp_path / "deployment", *names, text='scheme = "http"\napps_in_memory = 2\n')
    dispatcher = Dispatcher(load_deployment(hosted.folder))
    first = dispatcher.app(names[0])
    for name in names[1:]:
        dispatcher.app(name)
    assert dispatcher.built == names[2:]
    dispatcher.app(names[2])  # used again: now the most recent
    assert dispatcher.built == [names[3], names[2]]
    rebuilt = dispatcher.app(names[0])
    assert rebuilt is not first
    assert dispatcher.built == [names[2], names[0]]
    with rebuilt.test_client() as client:
        assert "<title>p0.example</title>" in client.get("/", headers={"Host": names[0]}).text


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('scheme = "gopher"\n', "scheme"),
        ("public_port = 70000\n", "public_port"),
        ("apps_in_memory = 0\n", "apps_in_memory"),
        ('colour = "blue"\n', "colour"),
        ('[settings]\nbase_url = "https://everyone.example"\n', "base_url"),
        ('[settings]\nstorage = "file:///srv/shared"\n', "storage"),
        ('catalog = "mysql://db/pligt"\n', "catalog"),
        ("[settings]\nquota_bytes = -1\n", "quota_bytes"),
        ("scheme = \n", "not valid TOML"),
    ],
)
def test_a_bad_deployment_file_stops_the_commands_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    folder = tmp_path / "deployment"
    folder.mkdir()
    (folder / "deployment.toml").write_text(text)
    result = invoke("publishers", "add", "--deployment", str(folder), "x.example", "--owner-email", "o@x.example")
    assert result.exit_code != 0
    assert named in result.stderr
    assert not (folder / "publishers" / "x.example").exists()


@pytest.mark.server
def test_serve_takes_no_single_address_for_a_deployment(tmp_path: Path) -> None:
    hosted = make_deployment(tmp_path / "deployment", A)
    result = invoke("serve", "--deployment", str(hosted.folder), "--base-url", "https://a.example")
    assert result.exit_code != 0
    assert "each publisher's own" in result.stderr


def test_a_publisher_that_cannot_be_opened_keeps_no_other_offline(tmp_path: Path) -> None:
    """Its settings broken (the only publisher when the workers start, so the one they prepare): 503 for it alone."""
    hosted = make_deployment(tmp_path / "deployment", "broken.example")
    with (hosted.folder / "publishers" / "broken.example" / "pligt.toml").open("a") as config:
        config.write("retention_days = 1\n")
    serve(hosted, tmp_path / "serve.log")
    try:
        assert hosted.get("broken.example").status_code == 503
        hosted.add("fine.example")
        assert hosted.get("fine.example").status_code == 200
    finally:
        stop(hosted)


def test_behind_a_proxy_a_forwarded_host_never_makes_a_publisher_take_another_site_for_its_own(
    tmp_path: Path,
) -> None:
    """The owner API refuses cross-site requests by Origin; X-Forwarded-Host naming the other site changes nothing."""
    hosted = make_deployment(tmp_path / "deployment", A, B, text='scheme = "http"\n[settings]\ntrusted_proxies = 1\n')
    serve(hosted, tmp_path / "serve.log")
    try:
        owner = ("owner", hosted.passwords[B])
        proxy = {"X-Forwarded-For": "192.0.2.7", "X-Forwarded-Proto": "http"}
        same = hosted.get(B, "/api/items", auth=owner, headers={**proxy, "Origin": f"http://{B}"})
        assert same.status_code == 200
        forged = {**proxy, "Origin": f"http://{A}", "X-Forwarded-Host": A}
        assert hosted.get(B, "/api/items", auth=owner, headers=forged).status_code == 403
    finally:
        stop(hosted)
