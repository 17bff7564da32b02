"""The access-request workflow in the core: no credential without an approved request."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pligt.core import Archive
from pligt.core import SqliteCatalog
from pligt.core.credentials.access import DEFAULT_LEGAL_BASIS
from pligt.core.credentials.passwords import verify_password
from pligt.core.errors import Conflict
from pligt.core.errors import Gone
from pligt.core.errors import InvalidInput
from pligt.core.errors import InvalidRequest
from pligt.core.errors import NotFound
from pligt.core.errors import TooManyRequests
from pligt.core.storage import LocalStorage
from tests.support.access import REQUEST_FIELDS
from tests.support.app import Clock


@pytest.fixture
def core(tmp_path: Path, clock: Clock) -> Archive:
    catalog = SqliteCatalog(tmp_path / "catalog.sqlite3")
    catalog.migrate()
    return Archive(catalog, LocalStorage(tmp_path / "files"), clock=clock)


def test_a_filed_request_is_pending_with_the_act_as_default_basis(core: Archive) -> None:
    request = core.access.file(dict(REQUEST_FIELDS))
    assert request.status == "pending"
    assert request.legal_basis == DEFAULT_LEGAL_BASIS
    assert "Pligtafleveringsloven" in request.legal_basis
    assert [r.id for r in core.access.requests()] == [request.id]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"institution": "  "}, "institution"),
        ({"contact_name": ""}, "contact_name"),
        ({"contact_email": "not-an-email"}, "contact_email"),
        ({"contact_email": "a@b"}, "contact_email"),
        ({"contact_email": "x@example.dk\nBcc: victim@example.com"}, "contact_email"),
        ({"institution": "x" * 201}, "institution"),
        ({"message": "y" * 5001}, "message"),
        ({"institution": "Bad\x00name"}, "institution"),
    ],
)
def test_bad_requests_are_refused_field_by_field(core: Archive, change: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        core.access.file({**REQUEST_FIELDS, **change})
    assert field in info.value.errors
    assert core.access.requests() == []


def test_filing_pauses_when_too_many_requests_wait(core: Archive) -> None:
    core.access.max_pending = 3
    for _ in range(3):
        core.access.file(dict(REQUEST_FIELDS))
    with pytest.raises(TooManyRequests):
        core.access.file(dict(REQUEST_FIELDS))
    assert len(core.access.requests()) == 3


def test_no_credential_without_an_approved_request(core: Archive, clock: Clock) -> None:
    request = core.access.file(dict(REQUEST_FIELDS))
    with pytest.raises(Conflict, match="not approved"):
        core.catalog.add_credential(request.id, "crawler-x", "scrypt$...", clock.now, clock.now)
    with pytest.raises(Conflict, match="not approved"):
        core.catalog.add_credential(999, "crawler-y", "scrypt$...", clock.now, clock.now)
    assert core.access.credentials() == []


def test_approval_issues_one_hashed_expiring_credential_bound_to_the_request(core: Archive, clock: Clock) -> None:
    request = core.access.file(dict(REQUEST_FIELDS))
    approval = core.access.approve(request.id, valid_days=90)
    credential = approval.credential
    assert credential.request_id == request.id
    assert credential.expires_at == clock.now + timedelta(days=90)
    assert credential.username.isascii() and approval.password.isascii()
    assert len(approval.password) >= 22
    assert verify_password(credential.password_hash, approval.password)
    assert core.access.get(request.id).status == "approved"
    with pytest.raises(Conflict, match="approved, not pending"):
        core.access.approve(request.id)


def test_the_release_link_works_once(core: Archive, clock: Clock) -> None:
    request = core.access.file(dict(REQUEST_FIELDS))
    approval = core.access.approve(request.id)
    released_request, credential, password = core.access.release(approval.release_token)
    assert password == approval.password
    assert credential.id == approval.credential.id
    assert released_request.status == "released"
    with pytest.raises(Gone, match="already released"):
        core.access.release(approval.release_token)
    with pytest.raises(NotFound):
        core.access.release("forged-token")
    # Nothing in the catalog can give the password again.
    [release] = core.catalog.releases(request.id)
    assert release.sealed_password is None


def test_an_expired_release_link_says_so(core: Archive, clock: Clock) -> None:
    approval = core.access.approve(core.access.file(dict(REQUEST_FIELDS)).id)
    clock.advance(days=7, seconds=1)
    with pytest.raises(Gone, match="expired"):
        core.access.release(approval.release_token)
    assert core.access.requests()[0].status == "expired"


def test_deny_needs_a_reason_and_closes_the_request(core: Archive) -> None:
    request = core.access.file(dict(REQUEST_FIELDS))
    with pytest.raises(InvalidInput):
        core.access.deny(request.id, " ")
    denied = core.access.deny(request.id, "Not a deposit institution")
    assert (denied.status, denied.decision_reason) == ("denied", "Not a deposit institution")
    assert denied.closed_at is not None
    with pytest.raises(Conflict):
        core.access.approve(request.id)
    assert core.access.credentials() == []


def test_rotation_replaces_the_credential_without_a_new_request(core: Archive) -> None:
    request = core.access.file(dict(REQUEST_FIELDS))
    first = core.access.approve(request.id)
    core.access.release(first.release_token)
    second = core.access.rotate(first.credential.id)
    assert second.credential.request_id == request.id
    assert second.credential.username != first.credential.username
    assert second.password != first.password
    old = core.catalog.get_credential(first.credential.id)
    assert old is not None and old.revoked_at is not None
    assert core.access.release(second.release_token)[2] == second.password


def test_revoking_discards_an_unspent_release(core: Archive) -> None:
    approval = core.access.approve(core.access.file(dict(REQUEST_FIELDS)).id)
    core.access.revoke(approval.credential.id)
    with pytest.raises(Gone, match="revoked"):
        core.access.release(approval.release_token)
    with pytest.raises(Conflict, match="already revoked"):
        core.access.revoke(approval.credential.id)
    with pytest.raises(NotFound):
        core.access.revoke(12345)
