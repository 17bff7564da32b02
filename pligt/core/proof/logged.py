"""Whole downloads the audit log remembers once their download records are gone.

Download records are purged after six months (:mod:`pligt.core.keeping.privacy`),
but ``pligt audit stamp`` and every receipt sum them up first into
``deposit.harvest`` audit entries (:mod:`pligt.core.proof.receipts`), which
stay. A whole download recorded there is still a recorded whole download: the
proof of deposit counts it, so that the institution's next visit, a 304 or
nothing at all, does not turn a version it holds into one it only named.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from pligt.core.models import ATTRIBUTIONS
from pligt.core.models import Evidence
from pligt.core.models import HarvestRow
from pligt.core.models import from_text
from pligt.core.proof.audit import AuditEntry

#: The audit action that sums up the deposit crawler's fetches of one version for one request.
HARVEST_ACTION = "deposit.harvest"

_Key = tuple[int, str, int, str]  # request, slug, version number, SHA-256


def with_logged_downloads(rows: list[HarvestRow], entries: Iterable[AuditEntry]) -> list[HarvestRow]:
    """Give each row the first whole download its request's ``deposit.harvest`` entries recorded, if better.

    Better: a row without a whole download, or one whose first is later or
    more weakly attributed. Only entries naming the version's own SHA-256 count.
    """
    logged: dict[_Key, Evidence] = {}
    for entry in entries:
        data = entry.data
        evidence = _evidence(data.get("complete"))
        if evidence is None:
            continue
        key: _Key = (data["request"], data["slug"], data["version"], data["sha256"])
        if key not in logged or _order(evidence) < _order(logged[key]):
            logged[key] = evidence
    if not logged:
        return rows
    return [
        _better(row, logged.get((row.request_id, row.version.slug, row.version.number, row.version.sha256)))
        for row in rows
    ]


def _better(row: HarvestRow, logged: Evidence | None) -> HarvestRow:
    if logged is None or (row.complete is not None and _order(row.complete) <= _order(logged)):
        return row
    fetched = row.fetched if row.fetched is not None and _order(row.fetched) <= _order(logged) else logged
    return replace(row, complete=logged, fetched=fetched)


def _evidence(data: object) -> Evidence | None:
    if not isinstance(data, dict) or data.get("via") not in ATTRIBUTIONS:
        return None
    at = from_text(data.get("at"))
    return None if at is None else Evidence(at, data["via"], data.get("credential"), data.get("crawler"))


def _order(evidence: Evidence) -> tuple[int, float]:
    """Strongest attribution first, then the earliest (as the catalog's summary orders them)."""
    return ATTRIBUTIONS.index(evidence.via), evidence.at.timestamp()
