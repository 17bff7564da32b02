"""Signed checkpoints: C2SP ``tlog-checkpoint`` bodies in C2SP ``signed-note`` envelopes, Ed25519.

A checkpoint says "the log named ORIGIN had SIZE entries with root ROOT", and
the instance's key signs it, so that anyone holding the public key can check
it without the instance, with any signed-note verifier (Go's
``golang.org/x/mod/sumdb/note`` reads these keys and notes as they are)::

    deposit.example.dk
    42
    <base64 root>

    — deposit.example.dk <base64(key hash || signature)>

The key hash is the first four bytes of SHA-256(name || 0x0A || 0x01 || public
key); the verifier key is ``name+hex(key hash)+base64(0x01 || public key)``;
the private key file holds ``PRIVATE+KEY+name+hex(key hash)+base64(0x01 || seed)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.hazmat.primitives.serialization import PublicFormat

from pligt.core.errors import ConfigurationError
from pligt.core.errors import InvalidProof
from pligt.core.private import write_private

_ED25519 = b"\x01"  # the signed-note algorithm byte of Ed25519
_DASH = "\u2014"  # the em dash that starts a signature line


def key_hash(name: str, public: bytes) -> bytes:
    """Return the 4-byte key hash a signature line starts with."""
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public).digest()[:4]


def check_name(name: str) -> str:
    """Return ``name`` if a signed note can carry it (no spaces, no ``+``, not empty).

    :raises ConfigurationError: otherwise.
    """
    if not name or any(c.isspace() or c == "+" for c in name) or not name.isprintable():
        raise ConfigurationError(f"{name!r} cannot name a checkpoint key: no spaces, no '+', not empty")
    return name


@dataclass(frozen=True)
class Signer:
    """The instance's checkpoint key: its name (the log's origin) and Ed25519 private key."""

    name: str
    private: Ed25519PrivateKey

    @property
    def public(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def verifier_key(self) -> str:
        """The public key to publish: ``name+hex(key hash)+base64(0x01 || public key)``."""
        return f"{self.name}+{key_hash(self.name, self.public).hex()}+{_b64(_ED25519 + self.public)}"

    def sign(self, text: str) -> str:
        """Return ``text`` (which must end in a newline) as a signed note."""
        if not text.endswith("\n") or "\n\n" in text:
            raise ValueError("a note's text ends in a newline and has no blank line")
        signature = self.private.sign(text.encode())
        return f"{text}\n{_DASH} {self.name} {_b64(key_hash(self.name, self.public) + signature)}\n"

    def private_text(self) -> str:
        seed = self.private.private_bytes_raw()
        return f"PRIVATE+KEY+{self.name}+{key_hash(self.name, self.public).hex()}+{_b64(_ED25519 + seed)}\n"


def new_signer(name: str) -> Signer:
    """Make a new key named ``name``."""
    return Signer(check_name(name), Ed25519PrivateKey.generate())


def write_signer(signer: Signer, path: Path) -> None:
    """Write the private key to a new file only its owner can read (never replaces one)."""
    write_private(path, signer.private_text().encode("ascii"))


def read_signer(path: Path) -> Signer:
    """Read a private key file.

    :raises ConfigurationError: naming the file, when it is not a key.
    """
    try:
        text = path.read_text(encoding="ascii").strip()
        prefix, kind, name, hash_hex, key = text.split("+", 4)  # base64 may hold "+" too
        raw = base64.b64decode(key, validate=True)
        if (prefix, kind) != ("PRIVATE", "KEY") or raw[:1] != _ED25519 or len(raw) != 33:
            raise ValueError("not an Ed25519 signed-note private key")
        signer = Signer(check_name(name), Ed25519PrivateKey.from_private_bytes(raw[1:]))
    except (OSError, UnicodeError, ValueError, binascii.Error) as e:
        raise ConfigurationError(f"{path} is not a checkpoint key: {e}") from e
    if key_hash(signer.name, signer.public).hex() != hash_hex:
        raise ConfigurationError(f"{path} is not a checkpoint key: its key hash does not match")
    return signer


@dataclass(frozen=True)
class Verifier:
    """A published verifier key, parsed."""

    name: str
    hash: bytes
    public: Ed25519PublicKey

    def verify(self, note: str) -> str:
        """Return the text of ``note`` if it carries a valid signature by this key.

        :raises InvalidProof: naming what is wrong.
        """
        text, signatures = split_note(note)
        mine = [s for n, s in signatures if n == self.name and s[:4] == self.hash]
        if not mine:
            raise InvalidProof(f"the checkpoint carries no signature by the key {self.name}")
        for signature in mine:
            try:
                self.public.verify(signature[4:], text.encode())
            except InvalidSignature:
                continue
            return text
        raise InvalidProof(f"the checkpoint's signature by {self.name} does not verify: it was altered")


def parse_verifier(key: str) -> Verifier:
    """Parse ``name+hex(key hash)+base64(0x01 || public key)``.

    :raises InvalidProof: if it is no Ed25519 verifier key.
    """
    try:
        name, hash_hex, encoded = key.strip().split("+", 2)
        raw = base64.b64decode(encoded, validate=True)
        if raw[:1] != _ED25519 or len(raw) != 33:
            raise ValueError("not an Ed25519 key")
        if key_hash(name, raw[1:]).hex() != hash_hex:
            raise ValueError("its key hash does not match the key")
        return Verifier(name, bytes.fromhex(hash_hex), Ed25519PublicKey.from_public_bytes(raw[1:]))
    except (ValueError, binascii.Error) as e:
        raise InvalidProof(f"not a checkpoint verifier key: {e}") from e


def split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """Split a signed note into its text and its (name, key hash + signature) lines.

    :raises InvalidProof: if it is not a signed note.
    """
    text, sep, rest = note.rpartition("\n\n")
    if not sep or not rest.endswith("\n"):
        raise InvalidProof("not a signed note: no blank line before the signatures")
    signatures = []
    for line in rest[:-1].split("\n"):
        dash, _, tail = line.partition(" ")
        name, _, encoded = tail.partition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as e:
            raise InvalidProof(f"not a signed note: a signature line is not base64 ({e})") from e
        if dash != _DASH or not name or len(raw) < 5:
            raise InvalidProof(f"not a signed note: {line!r} is no signature line")
        signatures.append((name, raw))
    return text + "\n", signatures


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint's text says."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{_b64(self.root)}\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Read a checkpoint's text (origin, size, base64 root, optional extension lines).

    :raises InvalidProof: if it is not a checkpoint.
    """
    lines = text.split("\n")
    try:
        origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True)
    except (IndexError, ValueError, binascii.Error) as e:
        raise InvalidProof(f"not a checkpoint: {e}") from e
    if not origin or size < 0 or len(root) != 32 or not str(size) == lines[1]:
        raise InvalidProof("not a checkpoint: origin, size and a 32-byte root hash are needed")
    return Checkpoint(origin, size, root)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
