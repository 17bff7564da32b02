"""One approved request gives one credential, however many decide it at once.

Ten real ``pligt approve`` processes (and the owner API at the same moment)
race for one pending request; exactly one wins, the others are told it is
decided (exit 5 / 409), and the catalog holds one credential and one audit
trail. The same for rotations of one credential.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import requests

from pligt.instance import build_archive
from tests.support.access import REQUEST_FIELDS
from tests.support.access import issue_credential
from tests.support.app import Instance
from tests.support.cli import PLIGT
from tests.support.servers import Server

RACERS = 10


def _race(commands: list[list[str]]) -> list[subprocess.CompletedProcess[str]]:
    processes = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    results = []
    for command, process in zip(commands, processes, strict=True):
        out, err = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(command, process.returncode, out, err))
    return results


def test_parallel_approvals_of_one_request_issue_one_credential(instance: Instance) -> None:
    archive = build_archive(instance.settings)
    request = archive.access.file(dict(REQUEST_FIELDS))
    command = [PLIGT, "approve", str(request.id), "--json", "--instance", str(instance.path)]
    results = _race([command] * RACERS)
    won = [r for r in results if r.returncode == 0]
    assert len(won) == 1, [r.stderr for r in results]
    assert all(r.returncode == 5 and "not pending" in r.stderr for r in results if r.returncode != 0)
    assert len(archive.access.credentials()) == 1
    actions = [e.action for e in archive.catalog.audit_entries()]
    assert actions.count("request.approved") == 1
    assert actions.count("credential.issued") == 1
    archive.verify_audit()


def test_cli_and_api_at_once_issue_one_credential(instance: Instance, server: Server) -> None:
    archive = build_archive(instance.settings)
    request = archive.access.file(dict(REQUEST_FIELDS))
    command = [PLIGT, "approve", str(request.id), "--json", "--instance", str(instance.path)]

    def by_api() -> int:
        url = f"{server.url}/api/requests/{request.id}/approve"
        return requests.post(url, auth=instance.owner_auth, json={}, timeout=120).status_code

    with ThreadPoolExecutor(RACERS) as pool:
        api = [pool.submit(by_api) for _ in range(RACERS // 2)]
        cli = _race([command] * (RACERS // 2))
        statuses = [f.result() for f in api]
    wins = statuses.count(201) + statuses.count(200) + sum(r.returncode == 0 for r in cli)
    assert wins == 1, (statuses, [r.stderr for r in cli])
    assert set(statuses) <= {200, 201, 409}
    assert len(archive.access.credentials()) == 1


def test_parallel_rotations_replace_a_credential_once(instance: Instance) -> None:
    archive = build_archive(instance.settings)
    credential, _ = issue_credential(archive)
    command = [PLIGT, "rotate", str(credential.id), "--json", "--instance", str(instance.path)]
    results = _race([command] * RACERS)
    assert sum(r.returncode == 0 for r in results) == 1, [r.stderr for r in results]
    assert all(r.returncode == 5 for r in results if r.returncode != 0)
    active = [c for c in archive.access.credentials() if c.revoked_at is None]
    assert len(active) == 1 and active[0].id != credential.id
    archive.verify_audit()


def test_a_revoked_credential_can_still_be_replaced_once(instance: Instance) -> None:
    archive = build_archive(instance.settings)
    credential, _ = issue_credential(archive)
    archive.access.revoke(credential.id)
    replaced = archive.access.rotate(credential.id)
    assert replaced.credential.request_id == credential.request_id
    assert [c.id for c in archive.access.credentials() if c.revoked_at is None] == [replaced.credential.id]
