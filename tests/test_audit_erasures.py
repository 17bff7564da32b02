"""`pligt audit verify` tells a recorded purge from personal fields nulled by hand."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pligt.core import Archive
from pligt.core import SqliteCatalog
from pligt.core.errors import AuditBroken
from pligt.core.keeping.privacy import Privacy
from pligt.core.storage import LocalStorage
from tests.support.access import REQUEST_FIELDS
from tests.support.app import Clock


@pytest.fixture
def core(tmp_path: Path, clock: Clock) -> Archive:
    catalog = SqliteCatalog(tmp_path / "catalog.sqlite3")
    catalog.migrate()
    return Archive(catalog, LocalStorage(tmp_path / "files"), clock=clock)


def _closed_request(core: Archive) -> int:
    request = core.access.file(dict(REQUEST_FIELDS))
    core.access.deny(request.id, "no protected material")
    return request.id


def test_a_recorded_purge_verifies(core: Archive, clock: Clock) -> None:
    _closed_request(core)
    clock.advance(days=400)
    assert Privacy(core.catalog, core.clock).purge().requests
    core.verify_audit()


def test_request_fields_nulled_by_hand_are_found(core: Archive, tmp_path: Path) -> None:
    request_id = _closed_request(core)
    with sqlite3.connect(tmp_path / "catalog.sqlite3") as db:
        # The fields are sealed (issue 23): nulling by hand now means nulling the sealed column.
        db.execute(
            "UPDATE access_requests SET institution = NULL, contact_name = NULL, contact_email = NULL, sealed = NULL"
        )
    with pytest.raises(AuditBroken, match=f"request {request_id}'s personal fields are gone without a recorded"):
        core.verify_audit()


def test_audit_personal_fields_nulled_by_hand_are_found(core: Archive, tmp_path: Path, clock: Clock) -> None:
    request_id = _closed_request(core)
    with sqlite3.connect(tmp_path / "catalog.sqlite3") as db:
        db.execute("UPDATE audit_log SET personal = NULL, personal_key = NULL")
    with pytest.raises(AuditBroken, match=f"no purge or erasure names request {request_id}"):
        core.verify_audit()
