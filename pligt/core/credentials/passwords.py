"""Slow password hashes (scrypt) and the random secrets the archive hands out."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

from pligt.core.errors import InvalidInput

# scrypt n=2**15, r=8, p=1: ~32 MiB and ~100 ms per check on a small server;
# slow enough to make a stolen catalog expensive to attack.
_N, _R, _P = 2**15, 8, 1
_MAXMEM = 64 * 1024 * 1024


def hash_password(password: str, *, n: int = _N) -> str:
    """Return a self-describing scrypt hash of ``password``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=_R, p=_P, maxmem=_MAXMEM)
    return "$".join(["scrypt", str(n), str(_R), str(_P), _b64(salt), _b64(digest)])


def verify_password(stored: str, password: str) -> bool:
    """Tell whether ``password`` matches ``stored``, in constant time."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest)
        actual = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.urlsafe_b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@functools.cache
def dummy_hash() -> str:
    """Return a hash to check unknown users against, so they cost as much time as known ones."""
    return hash_password(secrets.token_urlsafe(16))


#: The shortest owner password a person may choose (a made one has 27 characters, 160 bits).
OWNER_PASSWORD_MIN = 12


def check_chosen_password(password: str) -> str:
    """Return a password the owner typed, if it is long enough and printable.

    :raises InvalidInput: saying what is wrong with it (never the password itself).
    """
    if len(password) < OWNER_PASSWORD_MIN:
        raise InvalidInput(f"the password is shorter than {OWNER_PASSWORD_MIN} characters")
    if not password.isprintable() or password != password.strip():
        raise InvalidInput("the password has control characters or spaces at its ends")
    return password


def new_password() -> str:
    """Return a random ASCII password of 160 bits (URL-safe, no padding)."""
    return secrets.token_urlsafe(20)


def new_username(prefix: str) -> str:
    """Return a random ASCII username such as ``crawler-3fa9c2d1``."""
    return f"{prefix}-{secrets.token_hex(4)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")
