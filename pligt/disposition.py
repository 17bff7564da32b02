"""The ``Content-Disposition`` of a download: the file's own name, and an ASCII name for old clients.

One function for both download paths (Flask's, pligt/web/downloads.py, and
the fast path, pligt/web/fastpath.py) and the WARC export, so that the
header a crawler stores is the same whichever answered. RFC 6266: ``filename*=UTF-8''…`` carries the
name exactly as it was published (``Bog om Ærø.epub``, ``Q&A?.pdf``), and
``filename="…"`` an ASCII stand-in for clients that read only that one:
Danish letters spelled out as Danes do (Æ→AE, Ø→OE, Å→AA), other accents
stripped (é→e), anything else left out as ``_``, never silently dropped.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from urllib.parse import quote

#: Letters NFKD does not decompose, spelled out in ASCII.
_SPELLED_OUT = str.maketrans({"Æ": "AE", "Ø": "OE", "Å": "AA", "æ": "ae", "ø": "oe", "å": "aa", "ß": "ss"})
#: RFC 8187 attr-char: what ``filename*`` may carry unencoded.
_ATTR_CHARS = "!#$&+-.^_`|~"
#: RFC 9110 tchar: a value made only of these needs no quotes.
_TOKEN = re.compile(r"[!#$&'*+\-.^_`|~0-9A-Za-z]+")
#: What an old client could take for a percent-escape.
_ESCAPE_LIKE = re.compile(r"%(?=[0-9A-Fa-f]{2})")


def ascii_name(filename: str) -> str:
    """Return ``filename`` in printable ASCII: Danish letters spelled out, accents stripped, the rest ``_``."""
    spelled = unicodedata.normalize("NFKD", filename.translate(_SPELLED_OUT))
    kept = "".join(c for c in spelled if not unicodedata.combining(c))
    return "".join(c if " " <= c <= "~" else "_" for c in kept)


@functools.lru_cache(maxsize=4096)
def content_disposition(filename: str) -> str:
    """Return ``inline`` with the file's name: ``filename*`` (UTF-8) and an ASCII ``filename`` fallback.

    A plain ASCII name (nothing a client could misread) comes as ``filename``
    alone, as werkzeug writes it: ``inline; filename=brochure.pdf``.
    """
    # RFC 6266, appendix D: some clients decode %XX in filename; the name itself is in filename*.
    fallback = _ESCAPE_LIKE.sub("_", ascii_name(filename))
    # Clients differ over \" and \\ in a quoted string, and over % (above): those get filename* too.
    plain = fallback == filename and not any(c in filename for c in '%"\\')
    if plain:
        return f"inline; filename={filename if _TOKEN.fullmatch(filename) else _quoted(filename)}"
    return f"inline; filename={_quoted(fallback)}; filename*=UTF-8''{quote(filename, safe=_ATTR_CHARS)}"


def _quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
