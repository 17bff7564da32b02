"""Check a Pligt receipt offline, with nothing of Pligt: ``python receipt_check.py RECEIPT.json``.

This file stands alone on purpose: it imports only the standard library,
``cryptography`` and ``rfc3161-client``, so that the Royal Library, Datatilsynet
or a court can copy it (or run ``pligt verify-proof``) and check a receipt
without the instance, its catalog or the rest of Pligt.

A receipt (``pligt proof SLUG --version N``) holds a version's publication
entry and the entries recording the deposit institution's fetches and
revisits, each with its Merkle inclusion proof (RFC 6962/9162), the signed
checkpoint (C2SP signed note, Ed25519) they are proven against, its RFC 3161
time stamp with the TSA's certificates, and the instance's public key. Each
fact is printed on a line of its own, saying whether it holds.

Pin what you trust: ``--key`` the public key the publisher published (else the
receipt's own is used, and the output says so), ``--tsa-ca`` the TSA's CA
certificate (else the one in the receipt), ``--file`` the bytes you hold.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rfc3161_client import VerificationError
from rfc3161_client import VerifierBuilder
from rfc3161_client import decode_timestamp_response

FORMAT = "pligt-receipt/1"


class Unreadable(Exception):
    """The receipt is not one: it cannot be checked at all."""


@dataclass
class Findings:
    """One line per fact: what holds and what does not."""

    lines: list[tuple[bool, str]] = field(default_factory=list)

    def add(self, holds: bool, fact: str) -> bool:
        self.lines.append((holds, fact))
        return holds

    @property
    def ok(self) -> bool:
        return all(holds for holds, _ in self.lines)

    def text(self) -> str:
        return "".join(f"{'holds' if holds else 'DOES NOT HOLD'}: {fact}\n" for holds, fact in self.lines)


# -- RFC 6962 / 9162 -----------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def included(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: is ``leaf`` leaf ``index`` of the tree of ``size`` with ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and hmac.compare_digest(r, root)


def entry_bytes(entry: dict[str, Any]) -> bytes:
    """The bytes an audit entry's leaf hashes (Pligt's pligt/core/proof/audit.py ``leaf_bytes``)."""
    body = {k: entry.get(k) for k in ("seq", "at", "action", "data", "personal_digest")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# -- C2SP signed notes and checkpoints ---------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes


def check_note(note: str, key: str) -> tuple[str, str]:
    """Return (the key's name, the note's text) if ``key`` signed ``note``; raise ValueError saying why not."""
    name, hash_hex, encoded = key.strip().split("+", 2)
    raw = base64.b64decode(encoded, validate=True)
    if raw[:1] != b"\x01" or len(raw) != 33:
        raise ValueError("the public key is not an Ed25519 signed-note key")
    key_hash = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if key_hash.hex() != hash_hex:
        raise ValueError("the public key's hash does not match the key")
    text, sep, signatures = note.rpartition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise ValueError("the checkpoint is not a signed note")
    public = Ed25519PublicKey.from_public_bytes(raw[1:])
    for line in signatures[:-1].split("\n"):
        dash, _, rest = line.partition(" ")
        signer, _, b64 = rest.partition(" ")
        signature = base64.b64decode(b64, validate=True)
        if dash != "\u2014" or signer != name or signature[:4] != key_hash:
            continue
        try:
            public.verify(signature[4:], (text + "\n").encode())
        except InvalidSignature:
            raise ValueError(f"the checkpoint's signature by {name} does not verify: it was altered") from None
        return name, text + "\n"
    raise ValueError(f"the checkpoint carries no signature by the key {name}")


def parse_checkpoint(text: str) -> Checkpoint:
    lines = text.split("\n")
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32 or str(int(lines[1])) != lines[1]:
        raise ValueError("the checkpoint's size or root is malformed")
    return Checkpoint(lines[0], int(lines[1]), root)


# -- RFC 3161 ------------------------------------------------------------------------------


def check_stamp(reply: bytes, data: bytes, chain_pem: str, pinned_pem: str | None) -> tuple[str, str]:
    """Return (the time, the CA) a TSA's stamp of ``data`` vouches for; raise ValueError saying why not."""
    certs = x509.load_pem_x509_certificates(chain_pem.encode()) if chain_pem.strip() else []
    roots = (
        x509.load_pem_x509_certificates(pinned_pem.encode())
        if pinned_pem
        else [c for c in certs if c.issuer == c.subject]
    )
    if not roots:
        raise ValueError("no CA certificate to check the time stamp against")
    response = decode_timestamp_response(reply)
    verifier = VerifierBuilder(roots=roots, intermediates=[c for c in certs if c.issuer != c.subject]).build()
    try:
        verifier.verify_message(response, data)
    except VerificationError as e:
        raise ValueError(f"the time stamp does not verify: {e}") from e
    at = response.tst_info.gen_time.strftime("%Y-%m-%d %H:%M:%S UTC")
    ca = ", ".join(
        f"{c.subject.rfc4514_string()} (SHA-256 {c.fingerprint(hashes.SHA256()).hex()[:16]}…)" for c in roots
    )
    return at, ca


# -- the receipt ------------------------------------------------------------------------------


#: A 304 on its own: the client named the version (an ETag from a HEAD or an aborted GET will do,
#: and so will any date at or after Last-Modified, one in the future included) and took no byte.
_NAMED_WORDS = "was answered 304 Not Modified (it named this version; a 304 is not a download and proves nothing held)"


def _revisit_words(data: dict[str, Any]) -> str:
    """Word a recorded revisit: a revisit only after a whole download in the same entry.

    Entries written before that rule called every 304 a revisit; without a whole
    download before it, one says only what a 304 says.
    """
    complete, revisit = data.get("complete"), data.get("revisit")
    if complete and revisit and str(revisit.get("at")) >= str(complete.get("at")):
        return "revisited after fetching it whole (answered 304)"
    return _NAMED_WORDS


def check_receipt(
    receipt: dict[str, Any], *, key: str | None = None, tsa_ca_pem: str | None = None, file: Path | None = None
) -> Findings:
    """Check every fact of a receipt; return them, each holding or not.

    :raises Unreadable: when it is not a receipt at all.
    """
    if not isinstance(receipt, dict) or receipt.get("format") != FORMAT:
        raise Unreadable(f"not a Pligt receipt (format {FORMAT})")
    found = Findings()
    try:
        version, entries, proofs = receipt["version"], receipt["entries"], receipt["proofs"]
        checkpoint, public_key = receipt["checkpoint"], receipt["public_key"]
    except (KeyError, TypeError) as e:
        raise Unreadable(f"not a Pligt receipt: {e} is missing") from e
    cp = _check_signature(found, checkpoint, public_key, key)
    _check_time_stamp(found, checkpoint, tsa_ca_pem)
    proven = _proven_entries(found, entries, proofs, cp)
    _check_publication(found, proven, version)
    _check_harvests(found, proven, version)
    if file is not None:
        _check_file(found, file, version)
    return found


def _check_signature(
    found: Findings, checkpoint: dict[str, Any], public_key: str, key: str | None
) -> Checkpoint | None:
    """Record whether the checkpoint is signed by the instance's key; return it if so (else nothing is proven)."""
    given = key is None
    key = public_key if key is None else key
    whose = "the key in the receipt (pin the published one with --key)" if given else "the pinned key"
    if not given and key.strip() != str(public_key).strip():
        found.add(False, "the receipt's public key is the pinned one")
    try:
        name, text = check_note(checkpoint["note"], key)
        cp = parse_checkpoint(text)
    except (ValueError, IndexError, binascii.Error) as e:
        found.add(False, f"the checkpoint is signed by {whose}: {e}")
        return None
    found.add(True, f"the checkpoint of {cp.size} entries is signed by {name}, {whose}")
    found.add(cp.origin == name, f"the checkpoint names the log {cp.origin!r} its key is named for")
    return cp


def _check_time_stamp(found: Findings, checkpoint: dict[str, Any], tsa_ca_pem: str | None) -> None:
    """Record by when the checkpoint existed, as a TSA vouches (a receipt made too soon has no stamp yet)."""
    if not checkpoint.get("stamp"):
        found.add(False, "the checkpoint is time-stamped (this one was not yet: make the receipt again later)")
        return
    pinned = "pinned with --tsa-ca" if tsa_ca_pem else "as given in the receipt (pin it with --tsa-ca)"
    try:
        at, ca = check_stamp(
            base64.b64decode(checkpoint["stamp"]),
            checkpoint["note"].encode(),
            checkpoint.get("stamp_chain") or "",
            tsa_ca_pem,
        )
    except (ValueError, binascii.Error) as e:
        found.add(False, f"the checkpoint's time stamp: {e}")
        return
    found.add(True, f"the checkpoint existed by {at}: time-stamped by a TSA chaining to {ca}, {pinned}")


def _proven_entries(
    found: Findings, entries: list[Any], proofs: list[Any], cp: Checkpoint | None
) -> dict[Any, dict[str, Any]]:
    """Record which entries are in the log the checkpoint signed; return those, by sequence number.

    Only these are evidence: an entry without a valid proof could say anything.
    """
    by_seq = {}
    for entry, proof in zip(entries, proofs, strict=False):
        seq = entry.get("seq")
        try:
            path = [base64.b64decode(p, validate=True) for p in proof["path"]]
            ok = (
                cp is not None
                and proof.get("seq") == seq
                and included(int(seq) - 1, cp.size, leaf_hash(entry_bytes(entry)), path, cp.root)
            )
        except (ValueError, TypeError, KeyError, binascii.Error):
            ok = False
        found.add(bool(ok), f"audit entry {seq} ({entry.get('action')}, {entry.get('at')}) is in the signed log")
        if ok:
            by_seq[seq] = entry
    if len(proofs) != len(entries):
        found.add(False, "every entry has its inclusion proof")
    return by_seq


def _check_publication(found: Findings, proven: dict[Any, dict[str, Any]], version: dict[str, Any]) -> None:
    """Record whether a proven publication entry says what the receipt says of the version."""
    published = [e for e in proven.values() if e["action"] == "version.published"]
    label = f"{version.get('slug')} version {version.get('version')}"
    if not published:
        found.add(False, f"{label} was published (no proven publication entry)")
        return
    facts = published[0]["data"]
    same = all(facts.get(k) == version.get(k) for k in ("slug", "version", "filename", "size"))
    found.add(
        same,
        f"{label} ({version.get('filename')}, {version.get('size')} bytes) was published on {published[0]['at']}",
    )
    found.add(facts.get("sha256") == version.get("sha256"), f"its SHA-256 is {version.get('sha256')}")
    found.add(facts.get("sha1") == version.get("sha1"), f"its SHA-1 is {version.get('sha1')}")
    found.add(
        facts.get("retain_until") == version.get("retain_until"),
        f"it is retained (stays retrievable at its URL) until {version.get('retain_until')}",
    )


def _harvest_evidence(data: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """What a harvest entry may record of the deposit crawler, and how a finding words it."""
    return (
        ("complete", "fetched whole (every byte sent)"),
        ("revisit", _revisit_words(data)),
        ("not_modified", _NAMED_WORDS),
        ("fetched", "first fetched (in part or whole)"),
    )


def _check_harvests(found: Findings, proven: dict[Any, dict[str, Any]], version: dict[str, Any]) -> None:
    """Record each proven fetch of these very bytes by the deposit crawler, once."""
    for entry in proven.values():
        if entry["action"] != "deposit.harvest":
            continue
        data = entry["data"]
        if data.get("sha256") != version.get("sha256"):
            continue
        for kind, words in _harvest_evidence(data):
            evidence = data.get(kind)
            if not evidence:
                continue
            fact = (
                f"the deposit crawler of request {data.get('request')} {words} at {evidence['at']}, attributed by "
                f"{evidence['via']}"
            )
            if (True, fact) not in found.lines:  # a later entry repeats what an earlier one recorded
                found.add(True, fact)


def _check_file(found: Findings, file: Path, version: dict[str, Any]) -> None:
    """Record whether ``file`` holds the version's bytes, by both digests the two sides use."""
    sha256, sha1 = hashlib.sha256(), hashlib.sha1()  # noqa: S324 - the deposit institution's digest
    with file.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha256.update(chunk)
            sha1.update(chunk)
    held_sha1 = "sha1:" + base64.b32encode(sha1.digest()).decode("ascii")  # as Heritrix writes it
    found.add(
        sha256.hexdigest() == version.get("sha256") and held_sha1 == version.get("sha1"),
        f"{file} holds these very bytes (SHA-256 and SHA-1)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Check a receipt; print one line per fact; exit 0 if all hold, 1 if not, 2 if it cannot be read."""
    parser = argparse.ArgumentParser(description="Check a Pligt receipt offline.")
    parser.add_argument("receipt", type=Path)
    parser.add_argument("--key", help="the public key the publisher published (name+hash+key)")
    parser.add_argument("--tsa-ca", type=Path, help="the PEM certificate of the TSA's CA you trust")
    parser.add_argument("--file", type=Path, help="the file you hold, to compare with the version's digests")
    args = parser.parse_args(argv)
    try:
        receipt = json.loads(args.receipt.read_text(encoding="utf-8"))
        tsa_ca = args.tsa_ca.read_text(encoding="ascii") if args.tsa_ca else None
        found = check_receipt(receipt, key=args.key, tsa_ca_pem=tsa_ca, file=args.file)
    except (OSError, ValueError, Unreadable) as e:
        print(f"cannot check {args.receipt}: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(found.text())
    return 0 if found.ok else 1


if __name__ == "__main__":
    sys.exit(main())
