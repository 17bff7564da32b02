"""An HTTP fuzzer against the owner API and the JSON access request, on a real server.

Schemathesis generates requests from the OpenAPI description (the one served at
``/api/openapi.json``, loaded in-process so that pytest has one test per operation
before any server runs) for every operation in it: valid ones, and ones that break
the description (wrong types, missing fields, numbers out of range, odd
characters, other content types). They go to a real ``pligt serve`` on a fresh
instance with published versions, a pending request and a released credential,
with the owner's credentials. Every answer must be below 500, carry a status and
headers the description names, and match its schema; each path is also sent the
methods it does not have (405). Afterwards the server still serves every version
it had and its log holds no traceback.

Schemathesis' ``ignored_auth`` check is left out: it resends every successful
request with a wrong password, and a dozen of those lock the loopback client out
(429 for everything after). ``test_every_owner_operation_refuses_a_request_without_credentials``
checks the same without a wrong password. ``schemathesis.pytest.from_fixture`` is
not used: with pytest 9.2 it fails (it sets ``Node._nodeid``, which pytest no
longer has).

The run is derandomised (a fixed seed per operation), with no example database,
and ``_loopback_only`` refuses any connection that is not to the loopback address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings
from openapi_spec_validator import validate

from pligt.core import Archive
from pligt.core.errors import InvalidInput
from pligt.instance import build_archive
from pligt.instance import init_instance
from pligt.settings import load_settings
from pligt.web.openapi import REASON_MAX
from pligt.web.openapi import VALID_DAYS_RANGE
from pligt.web.openapi import openapi_document
from tests.support.access import REQUEST_FIELDS
from tests.support.access import issue_credential
from tests.support.app import Instance
from tests.support.data import pdf_bytes
from tests.support.pages import assert_json_error
from tests.support.servers import Server
from tests.support.servers import start_server
from tests.support.servers import stop_server

#: Examples per operation: enough to reach each status an operation has within the normal suite's time.
SHORT_RUN = 25
#: The long run (``scripts/test -m slow``).
LONG_RUN = 300
SEED = 13

#: The checks every answer goes through (schemathesis' names).
CHECKS: dict[str, dict[str, Any]] = {
    "not_a_server_error": {},
    "status_code_conformance": {},
    "content_type_conformance": {},
    "response_headers_conformance": {},
    "response_schema_conformance": {},
    "unsupported_method": {},
}


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse, in this process, every connection that is not to the loopback address."""
    connect = socket.socket.connect

    def loopback_connect(sock: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"the fuzz test tried to connect to {address!r}")
        connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_connect)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    """One fresh instance for the whole module: every operation's examples land on the same server."""
    settings = load_settings(tmp_path_factory.mktemp("fuzz") / "instance", env={})
    return Instance(settings, init_instance(settings))


@pytest.fixture(scope="module")
def site(fuzzed: Instance) -> Iterator[Server]:
    """A server with two items (one with two versions), a pending request and a released credential."""
    archive = build_archive(fuzzed.settings)
    archive.publish([pdf_bytes("public")], filename="brochure.pdf", visibility="public")
    archive.publish([pdf_bytes("public 2")], filename="brochure.pdf", slug="brochure")
    archive.publish([pdf_bytes("protected")], filename="kursus.pdf", title="Kursus", visibility="protected")
    issue_credential(archive)
    archive.access.file({**REQUEST_FIELDS, "institution": "Statsbiblioteket"})
    # The per-client throttle (5 an hour) and the pause at 50 pending requests would answer most of
    # the fuzzer's access requests 429 before their fields are read; they have tests of their own.
    unthrottled = {"PLIGT_REQUESTS_PER_HOUR_PER_CLIENT": "1000000", "PLIGT_MAX_PENDING_REQUESTS": "1000000"}
    server = start_server(fuzzed.path, fuzzed.path.parent / "server.log", env=unthrottled)
    try:
        yield server
        # Whatever the fuzzer sent, the server still answers and every version is still served.
        assert requests.get(server.url + "/healthz", timeout=10).status_code == 200
        for number, text in ((1, "public"), (2, "public 2")):
            kept = requests.get(f"{server.url}/files/brochure/v{number}/brochure.pdf", timeout=10)
            assert (kept.status_code, kept.content) == (200, pdf_bytes(text))
        assert "Traceback" not in server.log.read_text()
    finally:
        stop_server(server)


#: The description as the server serves it (``test_the_description_is_served_without_credentials``);
#: loaded here so that pytest has one test per operation before any server runs. Where to send
#: requests (the fixture's server) and the owner's password come with each call.
SCHEMA = schemathesis.openapi.from_dict(
    openapi_document(),
    config=schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "max-redirects": 0,
            "request-timeout": 30,
            "cache": {"enabled": False},
            "generation": {"mode": "all", "deterministic": True, "database": "none"},
            "phases": {"stateful": {"enabled": False}},
            "checks": {"enabled": False, **{name: {"enabled": True, **options} for name, options in CHECKS.items()}},
        }
    ),
)


def test_the_description_is_valid_openapi_and_covers_every_route(app: Flask) -> None:
    document = openapi_document()
    validate(document)
    routes = {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.") or rule.endpoint == "access.file_json"
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    described = {
        (path.replace("{", "<").replace("}", ">"), method.upper())
        for path, operations in document["paths"].items()
        for method in operations
        if method != "parameters"
    }
    flask_style = {(rule.replace("<int:", "<"), method) for rule, method in routes}
    assert flask_style == described


def test_the_described_limits_are_the_access_desks(archive: Archive) -> None:
    """The limits the description repeats from the access desk (where they are literals) still hold there."""
    low, high = VALID_DAYS_RANGE
    for days in (low - 1, high + 1):
        with pytest.raises(InvalidInput):
            archive.access.approve(archive.access.file(dict(REQUEST_FIELDS)).id, valid_days=days)
    assert archive.access.approve(archive.access.file(dict(REQUEST_FIELDS)).id, valid_days=high).credential
    denied = archive.access.file(dict(REQUEST_FIELDS)).id
    with pytest.raises(InvalidInput):
        archive.access.deny(denied, "x" * (REASON_MAX + 1))
    assert archive.access.deny(denied, "x" * REASON_MAX).status == "denied"


def test_the_description_is_served_without_credentials(site: Server) -> None:
    response = requests.get(site.url + "/api/openapi.json", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == openapi_document()


def test_every_owner_operation_refuses_a_request_without_credentials(site: Server) -> None:
    """The fuzzer sends the owner's credentials; each operation that needs them answers 401 without."""
    document = openapi_document()
    refused = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters" or not operation["security"]:
                continue
            url = site.url + path.format(slug="brochure", number=1, request_id=1, credential_id=1)
            response = requests.request(method, url, params={"filename": "x.pdf"}, data=b"%PDF-", timeout=10)
            refused[f"{method.upper()} {path}"] = (
                response.status_code,
                response.json()["code"],
                response.headers["WWW-Authenticate"].startswith("Basic realm="),
            )
    assert len(refused) == 15  # every owner operation, the receipt (issue 15) included
    assert set(refused.values()) == {(401, 401, True)}, refused


def test_a_head_that_is_not_64_hex_digits_is_a_400(client: FlaskClient, instance: Instance, archive: Archive) -> None:
    """Found by the fuzzer: a non-ASCII head reached the chain's compare_digest, a TypeError and a 500."""
    archive.publish([pdf_bytes("head")], filename="head.pdf")
    for head in ("\u00f4" * 64, "G" * 64, "0" * 63):
        assert_json_error(client.get("/api/audit/verify", query_string={"head": head}, auth=instance.owner_auth), 400)
    kept = client.get("/api/audit/verify", auth=instance.owner_auth).get_json()["head"]
    assert client.get("/api/audit/verify", query_string={"head": kept}, auth=instance.owner_auth).status_code == 200
    assert_json_error(client.get("/api/audit/verify", query_string={"head": "0" * 64}, auth=instance.owner_auth), 409)


@SCHEMA.parametrize()
@settings(max_examples=SHORT_RUN)
def test_fuzzed_requests_get_no_5xx_and_answers_match_the_description(
    case: schemathesis.Case[Any], site: Server, fuzzed: Instance
) -> None:
    case.call_and_validate(base_url=site.url, auth=fuzzed.owner_auth)


@pytest.mark.slow
@SCHEMA.parametrize()
@settings(max_examples=LONG_RUN)
def test_fuzzed_requests_long_run(case: schemathesis.Case[Any], site: Server, fuzzed: Instance) -> None:
    case.call_and_validate(base_url=site.url, auth=fuzzed.owner_auth)
