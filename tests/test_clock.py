"""Retention is immune to a clock set back: refused (or, a little behind, moved up), never shortened.

Found on the open internet: with the clock 30 days behind, a new version was
retained until 30 days too early and `pligt withdraw` removed it at real day
160. Now a clock well behind what the catalog recorded is refused before any
byte is stored, a clock a little behind is moved up to the newest moment, no
version is retained for less than one published before it, and `pligt audit
verify` refuses a log whose entries go back in time.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from pligt.core import Archive
from pligt.core import SqliteCatalog
from pligt.core.errors import AuditBroken
from pligt.core.errors import ClockBehind
from pligt.core.proof.audit import entry_hash
from pligt.core.retention import CLOCK_TOLERANCE
from pligt.core.storage import LocalStorage
from pligt.instance import build_archive
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.cli import PLIGT
from tests.support.data import pdf_bytes
from tests.support.realistic import LIBFAKETIME


@pytest.fixture
def core(tmp_path: Path, clock: Clock) -> Archive:
    catalog = SqliteCatalog(tmp_path / "catalog.sqlite3")
    catalog.migrate()
    return Archive(catalog, LocalStorage(tmp_path / "files"), clock=clock)


def test_a_clock_set_back_a_month_publishes_nothing(core: Archive, clock: Clock, tmp_path: Path) -> None:
    first = core.publish([pdf_bytes("first")], filename="brochure.pdf", visibility="public").version
    clock.advance(days=-30)
    with pytest.raises(ClockBehind, match="set the clock right"):
        core.publish([pdf_bytes("second")], filename="brochure.pdf")
    assert [v.id for v in core.versions()] == [first.id]
    assert sorted(p.name for p in (tmp_path / "files").rglob("*") if p.is_file()) == sorted(
        [Path(first.storage_key).name]
    )
    with pytest.raises(ClockBehind):
        core.withdraw(first.slug)


def test_a_clock_a_little_behind_is_moved_up_and_shortens_no_retention(core: Archive, clock: Clock) -> None:
    first = core.publish([pdf_bytes("first")], filename="brochure.pdf", visibility="public").version
    clock.advance(seconds=-(CLOCK_TOLERANCE.total_seconds() - 60))
    second = core.publish([pdf_bytes("second")], filename="brochure.pdf").version
    assert second.published_at == first.published_at  # moved up to the newest recorded moment
    assert second.retain_until >= first.retain_until
    core.verify_audit()


def test_no_version_is_retained_for_less_than_one_before_it(tmp_path: Path, clock: Clock) -> None:
    catalog = SqliteCatalog(tmp_path / "catalog.sqlite3")
    catalog.migrate()
    long = Archive(catalog, LocalStorage(tmp_path / "files"), retention_days=400, clock=clock)
    kept = long.publish([pdf_bytes("long")], filename="long.pdf").version
    clock.advance(days=1)
    short = Archive(catalog, LocalStorage(tmp_path / "files"), retention_days=183, clock=clock)
    later = short.publish([pdf_bytes("later")], filename="later.pdf").version
    assert later.retain_until >= kept.retain_until


def test_pligt_add_with_the_clock_set_back_is_one_line_and_exit_7(instance: Instance, tmp_path: Path) -> None:
    build_archive(instance.settings).publish([pdf_bytes("today")], filename="today.pdf")
    upload = tmp_path / "brochure.pdf"
    upload.write_bytes(pdf_bytes("a month ago"))
    env = {**os.environ, "LD_PRELOAD": LIBFAKETIME, "FAKETIME": "-30d", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    result = subprocess.run(
        [PLIGT, "add", str(upload), "--instance", str(instance.path)], capture_output=True, text=True, env=env
    )
    assert result.returncode == 7, result.stderr
    assert result.stderr.startswith("pligt: error: ") and "the system clock says" in result.stderr
    assert result.stderr.count("\n") == 1
    assert [v.filename for v in build_archive(instance.settings).versions()] == ["today.pdf"]


def test_audit_verify_refuses_entries_that_go_back_in_time(core: Archive, tmp_path: Path) -> None:
    core.publish([pdf_bytes("first")], filename="brochure.pdf")
    [entry] = list(core.catalog.audit_entries())
    earlier = (core.clock() - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # A second entry, correctly chained, but dated a month before the first (as an older Pligt would have written).
    digest = entry_hash(2, entry.hash, earlier, "version.withdrawn", {"slug": "brochure"}, None)
    with sqlite3.connect(tmp_path / "catalog.sqlite3") as db:
        db.execute(
            "INSERT INTO audit_log (seq, at, action, data, prev_hash, hash) VALUES (2, ?, ?, ?, ?, ?)",
            (earlier, "version.withdrawn", '{"slug":"brochure"}', entry.hash, digest),
        )
    with pytest.raises(AuditBroken, match="entry 2: dated .* before the entry before it"):
        core.verify_audit()
