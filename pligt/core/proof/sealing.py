"""Sealing personal fields under a request's own key (AES-256-GCM), and opening them again.

The keys are kept in the catalog's key store (:mod:`pligt.core.catalog.keys`); here is only the
mathematics, beside the audit log's keyed digests of the same fields (:mod:`.audit`). A sealed
value names the id of its key and is bound to where it is stored (its ``context``): moved to
another row, it does not open.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pligt.core.errors import StorageError

#: What a sealed value starts with; a value without it is clear text (a catalog not yet upgraded).
SEALED_PREFIX = "pligt-sealed-v1:"


def new_key() -> bytes:
    """Return a fresh 256-bit AES-GCM key."""
    return AESGCM.generate_key(256)


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
    key_id, _, body = text[len(SEALED_PREFIX) :].partition(":")
    key = keys.get(key_id)
    if key is None:
        return None
    try:
        raw = binascii.a2b_base64(body, strict_mode=True)  # a listing opens thousands: the quickest strict decoder
        plain = AESGCM(key).decrypt(raw[:12], raw[12:], _aad(key_id, context))
    except (InvalidTag, binascii.Error, ValueError) as e:
        raise StorageError(f"sealed personal data ({context}) does not open under its key: altered or moved") from e
    value: dict[str, Any] = json.loads(plain)
    return value
