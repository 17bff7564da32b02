"""The audit log: every decision is an entry in a hash chain that shows tampering."""

from __future__ import annotations

import sqlite3
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pligt.core import Archive
from pligt.core import SqliteCatalog
from pligt.core.errors import AuditBroken
from pligt.core.keeping.privacy import Privacy
from pligt.core.proof.audit import GENESIS
from pligt.core.proof.audit import entry_hash
from pligt.core.proof.audit import verify_chain
from pligt.core.storage import LocalStorage
from tests.support.access import REQUEST_FIELDS
from tests.support.app import Clock
from tests.support.data import pdf_bytes


@pytest.fixture
def core(tmp_path: Path, clock: Clock) -> Archive:
    catalog = SqliteCatalog(tmp_path / "catalog.sqlite3")
    catalog.migrate()
    core = Archive(catalog, LocalStorage(tmp_path / "files"), clock=clock)
    core.publish([pdf_bytes()], filename="a.pdf", slug="brochure", visibility="public")
    request = core.access.file(dict(REQUEST_FIELDS))
    approval = core.access.approve(request.id)
    core.access.release(approval.release_token)
    core.access.revoke(approval.credential.id)
    core.access.deny(core.access.file(dict(REQUEST_FIELDS)).id, "duplicate")
    clock.advance(days=200)
    core.withdraw("brochure")
    return core


def catalog_file(core: Archive) -> Path:
    """The SQLite file the catalog is kept in."""
    assert isinstance(core.catalog, SqliteCatalog)
    return core.catalog.path


def tamper(core: Archive, *statements: str) -> None:
    """Change the database as someone with shell access could (triggers dropped first)."""
    db = sqlite3.connect(catalog_file(core))
    db.execute("DROP TRIGGER audit_log_no_delete")
    db.execute("DROP TRIGGER audit_log_no_rewrite")
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()


def test_every_step_is_an_entry_and_the_chain_verifies(core: Archive) -> None:
    actions = [e.action for e in core.catalog.audit_entries()]
    assert actions == [
        "version.published",
        "request.filed",
        "request.approved",
        "credential.issued",
        "credential.released",
        "credential.revoked",
        "request.filed",
        "request.denied",
        "version.withdrawn",
    ]
    seq, head = core.verify_audit()
    assert (seq, head) == core.audit_head()
    assert core.verify_audit(head=head) == (seq, head)


def test_no_password_or_token_is_in_the_log(core: Archive) -> None:
    text = "".join(str(e.to_dict()) for e in core.catalog.audit_entries())
    assert "scrypt" not in text
    assert "password" not in text


def test_the_database_refuses_edits_and_deletes(core: Archive) -> None:
    db = sqlite3.connect(catalog_file(core))
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM audit_log WHERE seq = 2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE audit_log SET data = '{}' WHERE seq = 2")
    db.close()
    core.verify_audit()


@pytest.mark.parametrize(
    ("statements", "seq"),
    [
        (["UPDATE audit_log SET data = replace(data, 'duplicate', 'spam') WHERE seq = 8"], 8),
        (["UPDATE audit_log SET at = '2020-01-01T00:00:00Z' WHERE seq = 3"], 3),
        (["UPDATE audit_log SET action = 'request.approved' WHERE seq = 8"], 8),
        (["DELETE FROM audit_log WHERE seq = 5"], 5),
        (["DELETE FROM audit_log WHERE seq = 1"], 1),
        (  # swap the contents of entries 4 and 5
            [
                "UPDATE audit_log SET seq = -4 WHERE seq = 4",
                "UPDATE audit_log SET seq = 4 WHERE seq = 5",
                "UPDATE audit_log SET seq = 5 WHERE seq = -4",
            ],
            4,
        ),
        (
            [
                "INSERT INTO audit_log (seq, at, action, data, prev_hash, hash) "
                "SELECT 10, at, 'version.published', data, hash, hash FROM audit_log WHERE seq = 9"
            ],
            10,
        ),
        # The personal fields are sealed (issue 23): any change to the sealed text is found.
        (["UPDATE audit_log SET personal = substr(personal, 1, length(personal) - 8) || 'AAAAAAA=' WHERE seq = 2"], 2),
    ],
)
def test_tampering_is_found_and_named(core: Archive, statements: list[str], seq: int) -> None:
    tamper(core, *statements)
    with pytest.raises(AuditBroken) as info:
        core.verify_audit()
    assert info.value.seq == seq
    assert f"entry {seq}" in info.value.message


def test_purging_personal_fields_keeps_the_chain_intact(core: Archive, clock: Clock) -> None:
    # The purge erases personal fields and their keys; the chain covers only their keyed digests.
    # (Fields nulled by hand, with no purge recorded, are found: tests/test_audit_erasures.py.)
    clock.advance(days=400)
    Privacy(core.catalog, core.clock).purge()
    core.verify_audit()
    assert all(e.personal is None for e in core.catalog.audit_entries())


def test_a_rewritten_chain_fails_against_a_kept_head(core: Archive) -> None:
    _, kept = core.audit_head()
    # Someone deletes an entry and recomputes every hash after it: the chain alone looks fine.
    entries = [e for e in core.catalog.audit_entries() if e.seq != 6]
    statements = ["DELETE FROM audit_log"]
    prev = GENESIS
    for seq, e in enumerate(entries, start=1):
        digest = entry_hash(seq, prev, e.at, e.action, e.data, e.personal_digest)
        statements.append(
            "INSERT INTO audit_log (seq, at, action, data, personal, personal_key, personal_digest, prev_hash, hash) "
            f"VALUES ({seq}, '{e.at}', '{e.action}', (SELECT '{_json(e.data)}'), "
            f"{_sql(None if e.personal is None else _json(e.personal))}, "
            f"{_sql(e.personal_key)}, {_sql(e.personal_digest)}, "
            f"'{prev}', '{digest}')"
        )
        prev = digest
    tamper(core, *statements)
    core.verify_audit()  # the chain is consistent...
    with pytest.raises(AuditBroken, match="kept head"):
        core.verify_audit(head=kept)  # ...but not the one the owner kept


def _json(value: object) -> str:
    from pligt.core.proof.audit import canonical_json

    return canonical_json(value).decode().replace("'", "''")


def _sql(value: str | None) -> str:
    return "NULL" if value is None else f"'{value}'"


# -- known answers: the chain's hashes are part of the format ----------------------------------

#: A fixed sequence of entries (without personal fields: those are keyed by a fresh random key).
KNOWN_ENTRIES: list[tuple[str, dict[str, Any], datetime]] = [
    (
        "version.published",
        {"slug": "brochure", "version": 1, "filename": "Forårsbrochure.pdf", "size": 1234},
        datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC),
    ),
    (
        "request.approved",
        {"request": 1, "credential": 1, "valid_days": 365},
        datetime(2026, 1, 6, 9, 30, 0, tzinfo=UTC),
    ),
    ("credential.revoked", {"credential": 1}, datetime(2026, 3, 1, 8, 0, 5, tzinfo=UTC)),
    ("version.withdrawn", {"slug": "brochure", "version": 1}, datetime(2026, 7, 8, 12, 0, 0, tzinfo=UTC)),
]
#: The head those entries give, computed once: a head kept by an owner must verify on every later Pligt.
KNOWN_HEAD = "bf071bc8181826c2da456ae4a7a49ce2e34839836efe7082a42b19acb03ad000"


def head_of(folder: Path, entries: list[tuple[str, dict[str, Any], datetime]]) -> str:
    """Append ``entries`` to a fresh catalog in ``folder``; return the verified head."""
    catalog = SqliteCatalog(folder / "catalog.sqlite3")
    catalog.migrate()
    for action, data, at in entries:
        catalog.append_audit(action, data, None, at)
    seq, head = verify_chain(catalog.audit_entries())
    catalog.close()
    assert seq == len(entries)
    return head


def test_a_fixed_sequence_of_entries_has_a_known_head(tmp_path: Path) -> None:
    assert GENESIS == "748a2cfc1af043089f7896125c164b5101d933089f1c3a5868872c987ce2de04"
    assert head_of(tmp_path, KNOWN_ENTRIES) == KNOWN_HEAD


def test_the_personal_digest_is_covered_by_a_known_hash() -> None:
    digest = "ab" * 32
    known = "aab43a68b8be91f06798d0509ee592d579c258c4829b25e30eb523a94abc91a0"
    assert entry_hash(1, GENESIS, "2026-01-05T12:00:00Z", "request.filed", {"request": 1}, digest) == known
    assert entry_hash(1, GENESIS, "2026-01-05T12:00:00Z", "request.filed", {"request": 1}, "ac" * 32) != known


@pytest.mark.parametrize(
    ("index", "changed"),
    [
        (0, ("version.publishee", KNOWN_ENTRIES[0][1], KNOWN_ENTRIES[0][2])),  # one byte of the action
        (0, (KNOWN_ENTRIES[0][0], {**KNOWN_ENTRIES[0][1], "filename": "Forårsbrochure.pdg"}, KNOWN_ENTRIES[0][2])),
        (1, (KNOWN_ENTRIES[1][0], {**KNOWN_ENTRIES[1][1], "valid_days": 366}, KNOWN_ENTRIES[1][2])),
        (2, (KNOWN_ENTRIES[2][0], KNOWN_ENTRIES[2][1], datetime(2026, 3, 1, 8, 0, 6, tzinfo=UTC))),  # one second
        (3, (KNOWN_ENTRIES[3][0], {"slug": "brochurf", "version": 1}, KNOWN_ENTRIES[3][2])),  # the last entry
    ],
)
def test_changing_one_byte_of_one_entry_changes_the_head(
    tmp_path: Path, index: int, changed: tuple[str, dict[str, Any], datetime]
) -> None:
    entries = [*KNOWN_ENTRIES]
    entries[index] = changed
    assert head_of(tmp_path, entries) != KNOWN_HEAD
