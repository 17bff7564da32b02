"""The tamper-evident audit log: an append-only hash chain.

Each entry's hash covers a domain prefix, its sequence number, the previous
entry's hash and the canonical JSON of its content, starting from a fixed
genesis. Personal fields (names, emails, messages) are not hashed themselves:
the chain covers an HMAC of them under a per-entry random key, and the purge
erases fields and key together. The chain still verifies after a purge, and
an erased email address cannot be guessed back from its digest. Fields and
HMAC key are stored sealed under the request's own key (pligt/core/catalog/keys.py):
once that key is destroyed, no copy of the log can show them or test a guess.

A chain shows tampering only against a head kept elsewhere: whoever can write
the database can recompute every hash. ``pligt audit head`` prints the head
to keep; ``pligt audit verify --head`` checks the log still contains it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pligt.core.errors import AuditBroken
from pligt.core.models import AccessRequest

#: The "previous hash" of the first entry.
GENESIS = hashlib.sha256(b"pligt audit log genesis").hexdigest()
_DOMAIN = b"pligt-audit-entry-v1\x00"


@dataclass(frozen=True)
class AuditEntry:
    """One stored entry. ``personal`` and ``personal_key`` are None once purged."""

    seq: int
    at: str
    action: str
    data: dict[str, Any]
    personal: dict[str, Any] | None
    personal_key: str | None
    personal_digest: str | None
    prev_hash: str
    hash: str
    #: True when the personal fields are there, sealed, but their key is not in the key store
    #: (destroyed by an erasure made after this copy, or the key store is lost).
    unreadable: bool = False
    #: True when the personal fields are sealed but their seal does not open here: they were altered,
    #: or the entry moved to another place in the log (a seal is bound to its sequence number).
    seal_broken: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "action": self.action,
            "data": self.data,
            "personal": self.personal,
            "hash": self.hash,
        }


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` the one way the chain hashes it."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def seal_personal(personal: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """Return a fresh per-entry key and the HMAC of ``personal`` under it."""
    if not personal:
        return None, None
    key = secrets.token_hex(32)
    return key, _personal_digest(key, personal)


def _personal_digest(key: str, personal: dict[str, Any]) -> str:
    return hmac.new(bytes.fromhex(key), canonical_json(personal), hashlib.sha256).hexdigest()


def entry_hash(
    seq: int, prev_hash: str, at: str, action: str, data: dict[str, Any], personal_digest: str | None
) -> str:
    """Return the hash that chains an entry to its predecessor."""
    body = canonical_json({"at": at, "action": action, "data": data, "personal_digest": personal_digest})
    return hashlib.sha256(_DOMAIN + seq.to_bytes(8, "big") + bytes.fromhex(prev_hash) + body).hexdigest()


def leaf_bytes(entry: AuditEntry) -> bytes:
    """Return the bytes an entry's leaf of the Merkle tree hashes (pligt/core/proof/merkle.py).

    What the chain hashes, with the sequence number: personal fields only by their
    keyed digest, so that erasing them leaves the tree as it was.
    """
    return canonical_json(
        {
            "seq": entry.seq,
            "at": entry.at,
            "action": entry.action,
            "data": entry.data,
            "personal_digest": entry.personal_digest,
        }
    )


def verify_chain(entries: Iterable[AuditEntry], head: str | None = None) -> tuple[int, str]:
    """Check every link of the chain; return the last sequence number and hash.

    :param head: a head hash kept earlier; the log must still contain it.
    :raises AuditBroken: naming the first entry that was altered, removed,
        reordered or inserted, or dated before its predecessor, or saying that
        the kept head is not in the log.
    """
    expected_seq, prev, prev_at = 1, GENESIS, ""
    head_seen = head is None or head == GENESIS
    for entry in entries:
        if entry.seq != expected_seq:
            missing = "missing" if entry.seq > expected_seq else "out of order"
            raise AuditBroken(expected_seq, f"{missing} (found entry {entry.seq} where {expected_seq} belongs)")
        if not hmac.compare_digest(entry.prev_hash, prev):
            raise AuditBroken(entry.seq, "does not link to the entry before it (removed, inserted or reordered)")
        actual = entry_hash(entry.seq, entry.prev_hash, entry.at, entry.action, entry.data, entry.personal_digest)
        if not hmac.compare_digest(actual, entry.hash):
            raise AuditBroken(entry.seq, "content altered (hash mismatch)")
        if entry.personal is not None and not _personal_intact(entry):
            raise AuditBroken(entry.seq, "personal fields altered (digest mismatch)")
        if entry.at < prev_at:  # appends keep time order (Catalog.append_audit); the texts sort as times
            raise AuditBroken(entry.seq, f"dated {entry.at}, before the entry before it ({prev_at}): out of time order")
        # Bytes: a kept head given by a person may be any text, ASCII or not.
        if head is not None and hmac.compare_digest(entry.hash.encode(), head.encode()):
            head_seen = True
        prev, prev_at = entry.hash, entry.at
        expected_seq += 1
    if not head_seen:
        raise AuditBroken(None, f"the kept head {head} is not in the log: it was rewritten or truncated")
    return expected_seq - 1, prev


def verify_seals(entries: Iterable[AuditEntry]) -> None:
    """Check that every entry's sealed personal fields open where they stand.

    Checked after the chain and the checkpoints, which name a moved, inserted or
    removed entry more precisely: a seal bound to its sequence number breaks too
    when its entry moves.

    :raises AuditBroken: naming the first entry whose seal does not open.
    """
    for entry in entries:
        if entry.seal_broken:
            raise AuditBroken(entry.seq, "personal fields altered (their seal does not open)")


def _personal_intact(entry: AuditEntry) -> bool:
    if entry.personal is None or entry.personal_key is None or entry.personal_digest is None:
        return False
    return hmac.compare_digest(_personal_digest(entry.personal_key, entry.personal), entry.personal_digest)


#: The entries that erase personal fields (a rectification erases the old values).
ERASING_ACTIONS = ("privacy.purged", "privacy.erased", "privacy.rectified")


def verify_erasures(entries: Iterable[AuditEntry], requests: Iterable[AccessRequest]) -> None:
    """Check that every erased personal field was erased by a recorded purge or erasure.

    The chain covers only keyed digests of personal fields, so that they can be
    erased and the chain still verify; without this check, fields nulled by hand
    would look like a purge.

    :raises AuditBroken: naming the entry, or the request, whose fields went unrecorded.
    """
    entries = list(entries)
    erased: set[int] = set()
    for entry in entries:
        if entry.action in ERASING_ACTIONS:
            erased.update(int(r) for r in entry.data.get("requests_erased", []))
            erased.update(int(r) for r in entry.data.get("requests_rectified", []))
    for entry in entries:
        request = entry.data.get("request")
        # A seal that does not open is no erasure: verify_seals names it, after the checkpoints.
        gone = entry.personal is None and entry.personal_digest is not None and not entry.unreadable
        if gone and not entry.seal_broken and request not in erased:
            raise AuditBroken(
                entry.seq, f"its personal fields are gone, but no purge or erasure names request {request}"
            )
    for r in requests:
        # Unreadable fields are sealed fields whose key is gone: destroyed by an erasure made after
        # this copy was taken, or a key store lost. Nothing was removed from the catalog itself.
        if r.contact_email is None and not r.unreadable and (r.purged_at is None or r.id not in erased):
            raise AuditBroken(None, f"request {r.id}'s personal fields are gone without a recorded purge or erasure")
