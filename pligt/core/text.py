"""What text a person enters may hold: no control characters, and no invisible ones; what an email address is.

Control characters (Cc) break lines and logs; format characters (Cf: the
right-to-left override U+202E, zero-width spaces and joiners, soft hyphens)
are invisible, and make a name read differently from what it is (an
institution that reads "Det Kgl. Bibliotek" but is not, a title whose file
type appears reversed).
"""

from __future__ import annotations

import re
import unicodedata

#: An email address as a person types one (the request form's contact, an erasure's subject):
#: a local part, one @, and a domain with a top-level name of letters.
EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)


def hidden_characters(text: str, allowed: str = "") -> list[str]:
    """Return the control and invisible characters in ``text`` (as ``U+XXXX``), but those in ``allowed``."""
    return [f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in ("Cc", "Cf") and c not in allowed]
