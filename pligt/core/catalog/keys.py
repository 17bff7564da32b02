"""Crypto-shredding: each access request's personal fields sealed under a key of its own, kept apart.

An erasure cannot rewrite the backups, dumps and write-ahead logs that were
copied before it; it can make them unreadable. Every access request gets a
random 256-bit key (per request, not per person: a request is the unit the
retention schedule erases, and a per-person key would need a lasting
identifier of the person, itself personal data). The request's personal
fields, and those of its audit entries, are stored only as AES-GCM
ciphertext under that key. The keys live in a **key store** kept apart from
the catalog and from its backups: destroying a request's key makes every
copy of its fields, wherever it went, ciphertext without a key.

The key store is a SQLite file (``<instance>/personal_keys.sqlite3`` by
default, whatever the catalog), or a table in a PostgreSQL database of its
own (``key_store = "postgresql://…"``, for several machines sharing one
catalog). It never goes into the storage (S3 Object Lock and versioning would
keep a destroyed key). A destroyed key leaves a tombstone: its random id and
when, no personal data, so that a restore can say "erased since this backup".
"""

from __future__ import annotations

import abc
import base64
import binascii
import json
import os
from collections.abc import Collection
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pligt.core.errors import StorageError

#: The key store's file name in the instance folder (the default for every catalog).
KEY_STORE_FILE = "personal_keys.sqlite3"
#: What a sealed value starts with; a value without it is clear text (a catalog not yet upgraded).
SEALED_PREFIX = "pligt-sealed-v1:"
#: Keys fetched per statement (more are read in one scan).
KEY_BATCH = 500

#: The key store's tables (SQLite's types; PostgreSQL's key is BYTEA): the live keys, and a
#: tombstone (its random id, when) for each destroyed one.
KEY_STORE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS personal_keys (id TEXT PRIMARY KEY, key BLOB NOT NULL, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS destroyed_keys (id TEXT PRIMARY KEY, destroyed_at TEXT NOT NULL)",
)


def new_key() -> bytes:
    """Return a fresh 256-bit AES-GCM key."""
    return AESGCM.generate_key(256)


class KeyStore(abc.ABC):
    """Where the per-request keys live, apart from the catalog and its backups."""

    #: Where it is, for messages.
    label: str

    @abc.abstractmethod
    def create(self) -> tuple[str, bytes]:
        """Make and keep a new key; return its id and the key. :raises StorageError: if it cannot be kept."""

    @abc.abstractmethod
    def get(self, ids: Collection[str]) -> dict[str, bytes]:
        """Return the keys among ``ids`` that exist (a missing store: none)."""

    @abc.abstractmethod
    def destroy(self, ids: Collection[str]) -> None:
        """Destroy keys for good, leaving a tombstone for each. :raises StorageError: if they could not be."""

    @abc.abstractmethod
    def destroyed(self, ids: Collection[str]) -> set[str]:
        """Return the ids among ``ids`` whose keys were destroyed here."""

    @abc.abstractmethod
    def exists(self) -> bool:
        """Tell whether the store is there (False: lost, or never made)."""

    @abc.abstractmethod
    def export(self) -> tuple[list[tuple[str, bytes, str]], list[tuple[str, str]]]:
        """Return every live key (id, key, created) and every tombstone (id, destroyed) (for a key backup)."""

    @abc.abstractmethod
    def load(self, keys: list[tuple[str, bytes, str]], tombstones: list[tuple[str, str]]) -> None:
        """Take keys and tombstones from a key backup (a tombstoned id is never taken as a key)."""

    def close(self) -> None:  # noqa: B027 - most stores hold nothing open
        """Close connections (reopened when used again)."""


# -- sealing ---------------------------------------------------------------------------------


def _aad(key_id: str, context: str) -> bytes:
    return f"pligt personal data|{key_id}|{context}".encode()


def seal(key_id: str, key: bytes, context: str, value: Mapping[str, Any]) -> str:
    """Return ``value`` (JSON) sealed under a request's key, bound to ``context`` (where it is stored)."""
    nonce = os.urandom(12)
    plain = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    sealed = AESGCM(key).encrypt(nonce, plain, _aad(key_id, context))
    return f"{SEALED_PREFIX}{key_id}:{base64.b64encode(nonce + sealed).decode('ascii')}"


def is_sealed(text: str | None) -> bool:
    return text is not None and text.startswith(SEALED_PREFIX)


def sealed_key_id(text: str) -> str:
    """Return the id of the key a sealed value needs."""
    return text.removeprefix(SEALED_PREFIX).partition(":")[0]


def unseal(text: str, keys: Mapping[str, bytes], context: str) -> dict[str, Any] | None:
    """Return the value sealed in ``text``, or None when its key is not among ``keys`` (destroyed or lost).

    :raises StorageError: when the key is there but the value does not open (altered, or moved to another row).
    """
    key_id, _, body = text.removeprefix(SEALED_PREFIX).partition(":")
    key = keys.get(key_id)
    if key is None:
        return None
    try:
        raw = base64.b64decode(body, validate=True)
        plain = AESGCM(key).decrypt(raw[:12], raw[12:], _aad(key_id, context))
    except (InvalidTag, binascii.Error, ValueError) as e:
        raise StorageError(f"sealed personal data ({context}) does not open under its key: altered or moved") from e
    value: dict[str, Any] = json.loads(plain)
    return value
