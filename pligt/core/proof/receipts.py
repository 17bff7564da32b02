"""Receipts: one JSON file proving a version's publication and its deposit, checkable offline.

A receipt holds the version's publication entry and every entry recording
what the deposit institution's crawler did with it, each with its inclusion
proof in a signed, time-stamped checkpoint, and the instance's public key;
:mod:`pligt.core.proof.receipt_check` checks it with nothing of Pligt.

The crawler's fetches are download records, written in batches off the
download path (:mod:`pligt.core.downloads.recorder`) and not audit entries. So that they
are provable, :func:`record_harvest` sums them up into ``pligt.harvest``
entries (per access request and version: the first fetch, the first whole
download, the latest revisit after it, else the latest 304 (a client that named it),
with how each is attributed), appending one only when the evidence changed.
A 304 on its own proves nothing held: the client named the version (an ETag
from a HEAD, or any date at or after Last-Modified will do) and took no byte.
``pligt audit stamp`` (cron) and every receipt run it; the download path is
untouched.
"""

from __future__ import annotations

import base64
from typing import Any

from cryptography import x509

from pligt.core.deposits import Archive
from pligt.core.errors import NotFound
from pligt.core.models import Evidence
from pligt.core.models import StoredCheckpoint
from pligt.core.models import Version
from pligt.core.models import to_text
from pligt.core.proof.audit import AuditEntry
from pligt.core.proof.checkpoints import leaves
from pligt.core.proof.logged import HARVEST_ACTION
from pligt.core.proof.merkle import inclusion_proof
from pligt.core.proof.receipt_check import FORMAT

PUBLISHED_ACTION = "version.published"


def _evidence(evidence: Evidence | None) -> dict[str, Any] | None:
    if evidence is None:
        return None
    return {
        "at": to_text(evidence.at),
        "via": evidence.via,
        "credential": evidence.credential_id,
        "crawler": evidence.crawler,
    }


def record_harvest(archive: Archive) -> int:
    """Append a ``pligt.harvest`` entry for each request and version whose evidence changed; return how many."""
    rows = archive.harvest(personal=False)  # the recorder's queue flushed first; no institution needed
    latest: dict[tuple[int, str, int], dict[str, Any]] = {}
    for entry in archive.catalog.audit_entries_of(HARVEST_ACTION):  # not every entry's sealed fields opened
        d = entry.data
        latest[(d["request"], d["slug"], d["version"])] = d
    added = 0
    now = archive.now()
    with archive.catalog.transaction():
        for row in rows:
            if row.fetched is None and row.complete is None and row.not_modified is None:
                continue
            v = row.version
            data = {
                "request": row.request_id,
                "slug": v.slug,
                "version": v.number,
                "sha256": v.sha256,
                "fetched": _evidence(row.fetched),
                "complete": _evidence(row.complete),
                "revisit": _evidence(row.revisit),  # only after a whole download
            }
            if row.not_modified is not None and row.revisit is None:
                # Only when it says more than "revisit": entries of versions without one stay as they were.
                data["not_modified"] = _evidence(row.not_modified)
            if latest.get((row.request_id, v.slug, v.number)) != data:
                archive.catalog.append_audit(HARVEST_ACTION, data, None, now)
                added += 1
    if added:
        archive.changed()
    return added


def make_receipt(archive: Archive, slug: str, number: int) -> dict[str, Any]:
    """Build the receipt of version ``number`` of ``slug`` (recording the harvest and checkpointing first).

    :raises NotFound: no such version, or no checkpoint key (an archive without an instance).
    """
    version = next((v for v in archive.item_versions(slug) if v.number == number), None)
    if version is None:
        raise NotFound(f"no version {number} of {slug!r}")
    signer = archive.checkpoints.signer
    if signer is None:
        raise NotFound("this archive has no checkpoint key: receipts come from an instance")
    record_harvest(archive)
    archive.checkpoints.write()
    archive.checkpoints.wait()
    archive.checkpoints.stamp_pending()
    entries = list(archive.catalog.audit_entries())
    mine = [e for e in entries if _about(e, version)]
    if not any(e.action == PUBLISHED_ACTION for e in mine):
        raise NotFound(f"{slug} version {number} has no publication entry in the audit log")
    checkpoint = _checkpoint_for(archive, max(e.seq for e in mine))
    hashes = leaves(entries)[: checkpoint.size]
    return {
        "format": FORMAT,
        "made_at": to_text(archive.now()),
        "version": _version(version),
        "entries": [_entry(e) for e in mine],
        "proofs": [
            {
                "seq": e.seq,
                "tree_size": checkpoint.size,
                "path": [_b64(p) for p in inclusion_proof(hashes, e.seq - 1)],
            }
            for e in mine
        ],
        "checkpoint": {
            "note": checkpoint.note,
            "stamp": _b64(checkpoint.stamp) if checkpoint.stamp else None,
            "stamp_chain": checkpoint.stamp_chain,
            "stamped_at": to_text(checkpoint.stamped_at),
            "stamp_ca": _cas(checkpoint.stamp_chain or ""),
        },
        "public_key": signer.verifier_key,
        "does_not_prove": "that the last bytes sent reached the crawler, or what it did with them; only what "
        "this server recorded, signed and had time-stamped",
    }


def _about(entry: AuditEntry, version: Version) -> bool:
    data = entry.data
    if entry.action == PUBLISHED_ACTION:
        return data.get("slug") == version.slug and data.get("version") == version.number
    return entry.action == HARVEST_ACTION and data.get("slug") == version.slug and data.get("version") == version.number


def _checkpoint_for(archive: Archive, seq: int) -> StoredCheckpoint:
    """The newest time-stamped checkpoint covering entry ``seq``; else the newest one."""
    kept = [c for c in archive.catalog.checkpoints() if c.size >= seq]
    if not kept:
        raise NotFound("no checkpoint covers the entries yet")
    return next((c for c in reversed(kept) if c.stamp is not None), kept[-1])


def _version(v: Version) -> dict[str, Any]:
    return {
        "slug": v.slug,
        "version": v.number,
        "filename": v.filename,
        "size": v.size,
        "sha256": v.sha256,
        "sha1": v.sha1,
        "visibility": v.visibility,
        "published_at": to_text(v.published_at),
        "retain_until": to_text(v.retain_until),
        "withdrawn_at": to_text(v.withdrawn_at),
    }


def _entry(e: AuditEntry) -> dict[str, Any]:
    return {"seq": e.seq, "at": e.at, "action": e.action, "data": e.data, "personal_digest": e.personal_digest}


def _cas(chain_pem: str) -> list[str]:
    """The subjects of the CAs (self-signed certificates) a stamp's chain ends in: whom it chains to."""
    certs = x509.load_pem_x509_certificates(chain_pem.encode()) if chain_pem.strip() else []
    return [c.subject.rfc4514_string() for c in certs if c.issuer == c.subject]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
