"""`pligt audit verify` without a kept head catches every way of changing the log, by name.

Each test tampers with the real catalog file as an attacker with write access
to it would: the append-only triggers dropped first, and, where it helps the
attacker, the hash chain recomputed to hide the change. What remains are the
signed checkpoints (and the copy of the newest kept outside the catalog).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import pytest
from flask import Flask

from pligt.core import Archive
from pligt.core.proof.audit import GENESIS
from pligt.core.proof.audit import entry_hash
from pligt.web.services import pligt
from tests.support.access import REQUEST_FIELDS
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.cli import invoke
from tests.support.data import pdf_bytes


@pytest.fixture
def archive(app: Flask) -> Archive:
    """The web app's archive, checkpointing at once after each change (no burst delay): one checkpoint each."""
    with app.app_context():
        core = pligt().archive
    core.checkpoints.delay = 0.0
    return core


@pytest.fixture
def logged(archive: Archive, instance: Instance, clock: Clock) -> Instance:
    """An instance with 9 audit entries and 6 checkpoints (the newest covering all 9)."""
    done = archive.checkpoints.wait  # one checkpoint per change (the web app's come in the background)
    archive.publish([pdf_bytes()], filename="a.pdf", slug="brochure", visibility="public")
    done()
    request = archive.access.file(dict(REQUEST_FIELDS))
    approval = archive.access.approve(request.id)
    done()
    archive.access.release(approval.release_token)
    done()
    archive.access.revoke(approval.credential.id)
    done()
    archive.access.deny(archive.access.file(dict(REQUEST_FIELDS)).id, "duplicate")
    done()
    clock.advance(days=200)
    archive.withdraw("brochure")
    archive.checkpoints.wait()
    archive.catalog.close()
    assert [c.size for c in archive.catalog.checkpoints()] == [1, 4, 5, 6, 8, 9]
    return instance


@pytest.fixture
def db(logged: Instance) -> Iterator[sqlite3.Connection]:
    """The catalog file, opened as an attacker would, its triggers dropped."""
    connection = sqlite3.connect(logged.path / "catalog.sqlite3", isolation_level=None)
    connection.row_factory = sqlite3.Row
    for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        if name.startswith(("audit_log_", "checkpoints_")):
            connection.execute(f'DROP TRIGGER "{name}"')
    yield connection
    connection.close()


def verify(instance: Instance) -> str:
    """Run `pligt audit verify` (no --head); return its error line, failing if it passed."""
    result = invoke("audit", "verify", "--instance", str(instance.path))
    assert result.exit_code == 10, result.stdout
    return result.stderr.strip()


def rechain(db: sqlite3.Connection) -> None:
    """Recompute every entry's links and hashes, as one hiding a change from the chain would."""
    prev = GENESIS
    for row in db.execute("SELECT * FROM audit_log ORDER BY seq").fetchall():
        digest = entry_hash(row["seq"], prev, row["at"], row["action"], json.loads(row["data"]), row["personal_digest"])
        db.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, row["seq"]))
        prev = digest


def test_the_untouched_log_verifies(logged: Instance) -> None:
    result = invoke("audit", "verify", "--instance", str(logged.path))
    assert result.exit_code == 0, result.stderr
    assert "9 entries" in result.stdout and "6 checkpoints verify" in result.stdout


def test_an_edited_entry_is_named(logged: Instance, db: sqlite3.Connection) -> None:
    db.execute("""UPDATE audit_log SET data = '{"request":1,"valid_days":3000}' WHERE seq = 3""")
    assert verify(logged) == "pligt: error: audit log broken at entry 3: content altered (hash mismatch)"


def test_an_edited_entry_hidden_from_the_chain_is_caught_by_the_checkpoint_after_it(
    logged: Instance, db: sqlite3.Connection
) -> None:
    db.execute("""UPDATE audit_log SET data = '{"request":1,"valid_days":3000}' WHERE seq = 3""")
    rechain(db)
    message = verify(logged)
    assert "checkpoint 2 (of 4 entries" in message
    assert "entries 2-4 were changed, removed or inserted since" in message


def test_a_deleted_entry_is_named(logged: Instance, db: sqlite3.Connection) -> None:
    db.execute("DELETE FROM audit_log WHERE seq = 5")
    assert "entry 5: missing (found entry 6 where 5 belongs)" in verify(logged)


def test_a_deleted_entry_hidden_from_the_chain_is_caught(logged: Instance, db: sqlite3.Connection) -> None:
    db.execute("DELETE FROM audit_log WHERE seq = 5")
    db.execute("UPDATE audit_log SET seq = seq - 1 WHERE seq > 5")
    rechain(db)
    message = verify(logged)
    assert "checkpoint 3 (of 5 entries" in message and "entry 5 was changed, removed or inserted" in message


def test_an_inserted_entry_is_named(logged: Instance, db: sqlite3.Connection) -> None:
    db.execute("UPDATE audit_log SET seq = seq + 100 WHERE seq >= 4")
    db.execute("UPDATE audit_log SET seq = seq - 99 WHERE seq >= 100")
    row = db.execute("SELECT * FROM audit_log WHERE seq = 3").fetchone()
    data = {"request": 1, "credential": 9}
    digest = entry_hash(4, row["hash"], row["at"], "credential.issued", data, None)
    db.execute(
        "INSERT INTO audit_log (seq, at, action, data, prev_hash, hash) VALUES (4, ?, 'credential.issued', ?, ?, ?)",
        (row["at"], json.dumps(data), row["hash"], digest),
    )
    assert "entry 5: does not link to the entry before it" in verify(logged)
    rechain(db)
    message = verify(logged)
    assert "checkpoint 2 (of 4 entries" in message and "entries 2-4 were changed" in message


def test_reordered_entries_are_named(logged: Instance, db: sqlite3.Connection) -> None:
    db.execute("UPDATE audit_log SET seq = 100 WHERE seq = 6")
    db.execute("UPDATE audit_log SET seq = 6 WHERE seq = 7")
    db.execute("UPDATE audit_log SET seq = 7 WHERE seq = 100")
    assert "entry 6: does not link to the entry before it" in verify(logged)
    rechain(db)
    message = verify(logged)
    assert "checkpoint 4 (of 6 entries" in message and "entry 6 was changed, removed or inserted" in message


def test_the_newest_entries_cut_off_are_named(logged: Instance, db: sqlite3.Connection) -> None:
    db.execute("DELETE FROM audit_log WHERE seq >= 8")
    message = verify(logged)
    assert "checkpoint 5 (of 8 entries" in message and "covers 8 entries, the log has 7: entry 8 was cut off" in message


def test_entries_cut_off_with_their_checkpoints_are_caught_by_the_copy(
    logged: Instance, db: sqlite3.Connection
) -> None:
    db.execute("DELETE FROM audit_log WHERE seq >= 7")
    db.execute("DELETE FROM checkpoints WHERE size >= 7")
    message = verify(logged)
    assert "the copy of the newest checkpoint kept in" in message
    assert "covers 9 entries, the log has 6: entries 7-9 were cut off" in message


def test_a_deleted_checkpoint_is_named(logged: Instance, db: sqlite3.Connection) -> None:
    db.execute("DELETE FROM checkpoints WHERE id = 3")
    assert verify(logged).endswith("checkpoint 3 is missing (found checkpoint 4 after it)")


def test_a_checkpoint_whose_signature_fails_is_named(logged: Instance, db: sqlite3.Connection) -> None:
    note = db.execute("SELECT note FROM checkpoints WHERE id = 4").fetchone()["note"]
    origin, size, rest = note.split("\n", 2)
    db.execute("UPDATE checkpoints SET note = ?, size = 5 WHERE id = 4", (f"{origin}\n5\n{rest}",))
    message = verify(logged)
    assert "checkpoint 4 (of 5 entries" in message and "signature by" in message and "does not verify" in message


def test_a_checkpoint_row_that_disagrees_with_its_note_is_named(logged: Instance, db: sqlite3.Connection) -> None:
    db.execute("UPDATE checkpoints SET size = 3 WHERE id = 2")
    assert "checkpoint 2 (of 3 entries" in verify(logged)
    assert "its stored size or root differs from what it signed" in verify(logged)


def test_sealed_personal_fields_altered_in_place_are_named(logged: Instance, db: sqlite3.Connection) -> None:
    """The chain covers a digest of the fields; their seal shows an edit of the ciphertext itself."""
    row = db.execute("SELECT seq, personal FROM audit_log WHERE personal IS NOT NULL ORDER BY seq LIMIT 1").fetchone()
    sealed = str(row["personal"])
    flipped = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    db.execute("UPDATE audit_log SET personal = ? WHERE seq = ?", (flipped, row["seq"]))
    assert verify(logged) == (
        f"pligt: error: audit log broken at entry {row['seq']}: personal fields altered (their seal does not open)"
    )
