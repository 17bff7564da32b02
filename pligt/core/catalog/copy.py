"""Copy a whole catalog into another, of either engine, from one consistent snapshot, and verify the copy.

``pligt migrate-catalog`` moves an instance between SQLite and PostgreSQL with
it, and ``pligt backup`` of a PostgreSQL catalog writes its ``catalog.sqlite3``
with it. The target is written in one transaction: an interrupted copy leaves
it as it was (empty), so running the command again simply starts over; a
target that already holds this very copy (every count and the audit head
agree) is verified and left as it is; a target holding anything else is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

from pligt.core.catalog.base import TABLES
from pligt.core.catalog.base import Catalog
from pligt.core.errors import Conflict
from pligt.core.errors import IntegrityFailed
from pligt.core.proof.audit import verify_chain

#: Rows written per statement batch.
BATCH = 1000
#: Rows every migrated catalog has of its own (the counters), which a copy overwrites.
_OWN_ROWS = "meta"


@dataclass(frozen=True)
class CopySummary:
    """What a copy moved: rows per table, the audit log's length and head."""

    counts: dict[str, int]
    audit_entries: int
    audit_head: str
    #: False when the target held this copy already (nothing was written).
    copied: bool = True

    def to_dict(self) -> dict[str, object]:
        return {
            "rows": self.counts,
            "audit_entries": self.audit_entries,
            "audit_head": self.audit_head,
            "copied": self.copied,
        }


def copy_catalog(source: Catalog, target: Catalog) -> CopySummary:
    """Copy every row of ``source`` into ``target`` (migrated here if need be), then verify ``target``.

    :raises Conflict: if ``target`` holds rows of another catalog.
    :raises IntegrityFailed: if the copy's counts or audit log differ from the source's.
    """
    target.migrate()
    with source.snapshot():
        counts = {table: source.count_rows(table) for table, _ in TABLES}
        entries, head = verify_chain(source.audit_entries())
        present = {table: target.count_rows(table) for table, _ in TABLES if table != _OWN_ROWS}
        if any(present.values()):
            theirs = dict(present, meta=counts["meta"])
            if theirs == counts and verify_chain(target.audit_entries())[1] == head:
                verify_copy(target, counts, head)
                return CopySummary(counts, entries, head, copied=False)
            raise Conflict(
                f"the catalog {target.label} already holds another catalog "
                f"({', '.join(f'{n} {t}' for t, n in present.items() if n)}): copy into an empty one"
            )
        with target.transaction():
            for table, _ in TABLES:
                rows = source.rows(table)
                first = next(rows, None)
                if first is None:
                    continue
                columns = first.keys()
                target.insert_rows(table, columns, [[first[c] for c in columns]])
                while batch := [[row[c] for c in columns] for row in islice(rows, BATCH)]:
                    target.insert_rows(table, columns, batch)
            target.reset_keys()
    verify_copy(target, counts, head)
    return CopySummary(counts, entries, head)


def verify_copy(target: Catalog, counts: dict[str, int], head: str) -> None:
    """Check that ``target`` holds as many rows per table as counted, and an audit log that verifies to ``head``.

    :raises IntegrityFailed: naming the first difference.
    """
    for table, _ in TABLES:
        found = target.count_rows(table)
        if found != counts[table]:
            raise IntegrityFailed(f"the copy in {target.label} has {found} rows in {table}, the source {counts[table]}")
    _, copied_head = verify_chain(target.audit_entries())
    if copied_head != head:
        raise IntegrityFailed(f"the copy's audit log ends at {copied_head}, the source's at {head}")
