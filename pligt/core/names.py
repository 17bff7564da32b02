"""Slugs and file names: what may appear in a stable URL."""

from __future__ import annotations

import re
import unicodedata

from pligt.core.errors import NameRefused
from pligt.core.text import hidden_characters

SLUG_MAX = 80
FILENAME_MAX_BYTES = 200

_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?")
_TRANSLITERATE = str.maketrans({"æ": "ae", "ø": "oe", "å": "aa", "Æ": "Ae", "Ø": "Oe", "Å": "Aa", "ß": "ss"})
# A name is published as the desktop named it (``Prisliste #2 (100%).pdf``, ``Q&A?.pdf``):
# URLs percent-encode it (pligt/links.py), Content-Disposition carries it as UTF-8
# (pligt/web/disposition.py). Only the path separators are refused, since no URL
# segment or file name can hold them as what they are.
_FILENAME_FORBIDDEN = set("/\\")


def check_slug(slug: str) -> str:
    """Return ``slug`` if it is lower-case ASCII letters, digits and inner hyphens."""
    if not isinstance(slug, str) or not _SLUG.fullmatch(slug) or "--" in slug:
        raise NameRefused(
            "slug.invalid",
            f"invalid slug {slug!r}: use 1-{SLUG_MAX} lower-case letters a-z, digits "
            "and single hyphens, starting and ending with a letter or digit",
            slug=slug,
            limit=SLUG_MAX,
        )
    return slug


def slugify(text: str) -> str:
    """Derive a slug from a title or file name (Danish letters transliterated)."""
    ascii_text = unicodedata.normalize("NFKD", text.translate(_TRANSLITERATE)).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:SLUG_MAX].strip("-")
    if not slug:
        raise NameRefused("slug.underivable", f"cannot derive a slug from {text!r}: give one explicitly", text=text)
    return slug


def check_filename(name: str) -> str:
    """Return the NFC form of a file name fit for the last segment of a URL.

    Unicode letters (æ, ø, å) and URL-special characters (``# % ? &``) are
    welcome; path separators, a leading dot, control characters and white
    space around the name are refused with a reason.
    """
    if not isinstance(name, str) or not name.strip():
        raise NameRefused("filename.empty", "file name is empty")
    name = unicodedata.normalize("NFC", name)
    if name in (".", "..") or name.startswith("."):
        raise NameRefused("filename.dot", f"file name {name!r} must not start with a dot", name=name)
    bad = sorted({c for c in name if c in _FILENAME_FORBIDDEN})
    if bad:
        raise NameRefused(
            "filename.forbidden",
            f"file name {name!r} contains forbidden character(s): {' '.join(bad)}",
            name=name,
            characters=" ".join(bad),
        )
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        raise NameRefused("filename.control", f"file name {name!r} contains control characters", name=name)
    if name != name.strip():
        raise NameRefused("filename.space", f"file name {name!r} must not start or end with white space", name=name)
    if len(name.encode("utf-8")) > FILENAME_MAX_BYTES:
        raise NameRefused(
            "filename.long", f"file name is longer than {FILENAME_MAX_BYTES} bytes", limit=FILENAME_MAX_BYTES
        )
    return name


def check_title(title: str) -> str:
    """Return a trimmed title of at most 200 characters without control or invisible characters."""
    title = unicodedata.normalize("NFC", (title or "").strip())
    if not title:
        raise NameRefused("title.empty", "title is empty")
    if len(title) > 200:
        raise NameRefused("title.long", "title is longer than 200 characters", limit=200)
    if any(unicodedata.category(c) == "Cc" for c in title):
        raise NameRefused("title.control", "title contains control characters")
    if invisible := hidden_characters(title):
        shown = ", ".join(dict.fromkeys(invisible))
        raise NameRefused("title.invisible", f"title contains invisible characters ({shown})", characters=shown)
    return title
