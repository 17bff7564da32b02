"""The core's refusals worded in the reader's language.

The core raises its errors with the facts as attributes (what the bytes are,
what the name promises, the retention date, the limit) and an English message
for the CLI and the logs. Pages and the console say the same here, through
Babel, in Danish or English; an error without a ``key`` keeps its message.
"""

from __future__ import annotations

from collections.abc import Callable

from flask_babel import format_decimal
from flask_babel import gettext

from pligt.core.errors import ArchiveError
from pligt.core.errors import ContentRefused
from pligt.core.errors import LockedOut
from pligt.core.errors import NameRefused
from pligt.core.errors import RetentionActive
from pligt.core.errors import TooLarge


def _(message: str, **values: object) -> str:
    """Translate ``message`` (flask_babel has no types: this says it gives text)."""
    return str(gettext(message, **values))


def worded(error: ArchiveError) -> str:
    """Return what ``error`` says, in the language of the current request."""
    keyed = _KEYED.get(error.key or "")
    if keyed is not None:
        return keyed(error.facts)
    if isinstance(error, ContentRefused):
        return _content_refused(error)
    if isinstance(error, LockedOut):
        return _("Too many failed attempts; try again in %(seconds)d seconds.", seconds=error.retry_after)
    if isinstance(error, NameRefused):
        return _name_refused(error)
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


Facts = dict[str, object]

#: Refusals raised with :func:`pligt.core.errors.keyed`, by key: what a page says of them.
_KEYED: dict[str, Callable[[Facts], str]] = {
    "requests.pending": lambda f: _(
        "%(count)s requests already wait for the owner's decision; please try again later.", count=f["count"]
    ),
    "index.page": lambda f: _("The index has %(pages)s pages; there is no such page.", pages=f["pages"]),
    "release.unknown": lambda f: _("This release link is not valid."),
    "release.spent": lambda f: _("These credentials were already released on %(at)s.", at=f["at"]),
    "release.spent_now": lambda f: _("These credentials were already released."),
    "release.expired": lambda f: _("This release link expired on %(at)s; ask the owner for a new one.", at=f["at"]),
    "release.revoked": lambda f: _("These credentials were revoked or replaced; ask the owner."),
    "request.unknown": lambda f: _("There is no access request #%(request)s.", request=f["request"]),
    "request.decided": lambda f: _("Request #%(request)s was decided already.", request=f["request"]),
    "credential.unknown": lambda f: _("There is no credential #%(credential)s.", credential=f["credential"]),
    "credential.revoked": lambda f: _(
        "Credential #%(credential)s was already revoked on %(at)s.", credential=f["credential"], at=f["at"]
    ),
    "credential.valid_days": lambda f: _("A credential is valid for 1 to 3660 days."),
    "denial.reason": lambda f: _("A denial needs a reason of 1 to 1000 characters."),
    "item.unknown": lambda f: _("Nothing is published as %(slug)s.", slug=f["slug"]),
    "item.visibility": lambda f: (
        _("%(slug)s is public: a new version cannot make it protected.", slug=f["slug"])
        if f["visibility"] == "public"
        else _("%(slug)s is protected: a new version cannot make it public.", slug=f["slug"])
    ),
    "version.unknown": lambda f: _("%(slug)s has no version %(number)s.", slug=f["slug"], number=f["number"]),
    "version.named": lambda f: _(
        "%(slug)s version %(number)s is called %(name)s.", slug=f["slug"], number=f["number"], name=f["name"]
    ),
    "version.already_withdrawn": lambda f: _(
        "%(slug)s version %(number)s was already withdrawn.", slug=f["slug"], number=f["number"]
    ),
    "version.gone": lambda f: _(
        "%(slug)s version %(number)s was withdrawn on %(date)s.", slug=f["slug"], number=f["number"], date=f["date"]
    ),
    "version.gone_after_retention": lambda f: _(
        "%(slug)s version %(number)s was withdrawn on %(date)s, after its retention ended.",
        slug=f["slug"],
        number=f["number"],
        date=f["date"],
    ),
}


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


def _name_refused(error: NameRefused) -> str:
    facts = error.facts
    if error.key == "slug.invalid":
        return _(
            "The slug %(slug)s is not usable: use 1-%(limit)s lower-case letters a-z, digits and single hyphens, "
            "starting and ending with a letter or digit.",
            slug=repr(facts["slug"]),
            limit=facts["limit"],
        )
    wordings = {
        "slug.underivable": lambda: _("No slug can be made from %(text)s: give one.", text=repr(facts["text"])),
        "filename.empty": lambda: _("The file has no name."),
        "filename.dot": lambda: _("The file name %(name)s must not start with a dot.", name=repr(facts["name"])),
        "filename.forbidden": lambda: _(
            "The file name %(name)s contains characters it may not: %(characters)s.",
            name=repr(facts["name"]),
            characters=facts["characters"],
        ),
        "filename.control": lambda: _("The file name %(name)s contains control characters.", name=repr(facts["name"])),
        "filename.space": lambda: _(
            "The file name %(name)s must not start or end with white space.", name=repr(facts["name"])
        ),
        "filename.long": lambda: _("The file name is longer than %(limit)s bytes.", limit=facts["limit"]),
        "title.empty": lambda: _("The title is empty."),
        "title.long": lambda: _("The title is longer than %(limit)s characters.", limit=facts["limit"]),
        "title.control": lambda: _("The title contains control characters."),
        "title.invisible": lambda: _(
            "The title contains invisible characters (%(characters)s).", characters=facts["characters"]
        ),
    }
    wording = wordings.get(error.key or "")
    return wording() if wording is not None else error.message
