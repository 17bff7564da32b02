"""The core's refusals worded in the reader's language.

The core raises its errors with the facts as attributes (what the bytes are,
what the name promises, the retention date, the limit) and an English message
for the CLI and the logs. Pages and the console say the same here, through
Babel, in Danish or English; an error without a ``key`` keeps its message.
"""

from __future__ import annotations

from flask_babel import format_decimal
from flask_babel import gettext

from archive.errors import ArchiveError
from archive.errors import ContentRefused
from archive.errors import RetentionActive
from archive.errors import TooLarge


def _(message: str, **values: object) -> str:
    """Translate ``message`` (flask_babel has no types: this says it gives text)."""
    return str(gettext(message, **values))


def worded(error: ArchiveError) -> str:
    """Return what ``error`` says, in the language of the current request."""
    if isinstance(error, ContentRefused):
        return _content_refused(error)
    if isinstance(error, TooLarge):
        if error.size is None:
            return _("The upload is larger than the limit of %(limit)s bytes.", limit=format_decimal(error.limit))
        return _(
            "The upload of %(size)s bytes is larger than the limit of %(limit)s bytes.",
            size=format_decimal(error.size),
            limit=format_decimal(error.limit),
        )
    if isinstance(error, RetentionActive):
        until = f"{error.retain_until:%Y-%m-%d %H:%M} UTC"
        if error.number is None:
            return _(
                "%(slug)s is retained until %(date)s and cannot be withdrawn before then.", slug=error.slug, date=until
            )
        return _(
            "%(slug)s version %(number)d is retained until %(date)s and cannot be withdrawn before then.",
            slug=error.slug,
            number=error.number,
            date=until,
        )
    return error.message


def _content_refused(error: ContentRefused) -> str:
    facts = {"file": error.filename, "found": error.found, "mime": error.mime, "extension": error.extension}
    if error.key == ContentRefused.EMPTY:
        return _("%(file)s: the file is empty.", file=error.filename)
    if error.key == ContentRefused.EXECUTABLE:
        return _("%(file)s: the bytes are an executable program: %(found)s (%(mime)s).", **facts)
    if error.key == ContentRefused.NOT_PROMISED:
        return _(
            "%(file)s: the bytes are %(found)s (%(mime)s), not what .%(extension)s promises (%(expected)s).",
            **facts,
            expected=", ".join(error.expected),
        )
    if error.key == ContentRefused.NOT_TEXT:
        return _("%(file)s: the bytes are %(found)s (%(mime)s), not text as .%(extension)s promises.", **facts)
    return error.message
