"""Content type from the bytes, not the name (libmagic through python-magic).

An upload whose bytes contradict its extension is refused: a crawler and a
reader must get what the name promises, and an executable dressed as a
brochure must never be published.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

import magic

from pligt.core.errors import ContentRefused

#: How many leading bytes are shown to libmagic; enough for ZIP-based formats.
SNIFF_BYTES = 64 * 1024

_EXECUTABLES = {
    "application/x-executable",
    "application/x-pie-executable",
    "application/x-sharedlib",
    "application/x-object",
    "application/x-mach-binary",
    "application/x-dosexec",
    "application/vnd.microsoft.portable-executable",
    "application/x-msdownload",
    "application/x-elf",
}

_ZIP = "application/zip"
_OLE = {"application/x-ole-storage", "application/CDFV2", "application/vnd.ms-office"}
_OOXML = "application/vnd.openxmlformats-officedocument."
_ODF = "application/vnd.oasis.opendocument."

#: What the bytes of a file with a given extension may be. Extensions not
#: listed are accepted with whatever type the bytes have (executables aside).
_EXPECTED: dict[str, set[str]] = {
    "pdf": {"application/pdf"},
    "zip": {_ZIP},
    "epub": {"application/epub+zip", _ZIP},
    "docx": {_OOXML + "wordprocessingml.document", _ZIP},
    "xlsx": {_OOXML + "spreadsheetml.sheet", _ZIP},
    "pptx": {_OOXML + "presentationml.presentation", _ZIP},
    "odt": {_ODF + "text", _ZIP},
    "ods": {_ODF + "spreadsheet", _ZIP},
    "odp": {_ODF + "presentation", _ZIP},
    "doc": {"application/msword", *_OLE},
    "xls": {"application/vnd.ms-excel", *_OLE},
    "ppt": {"application/vnd.ms-powerpoint", *_OLE},
    "rtf": {"text/rtf", "application/rtf"},
    "jpg": {"image/jpeg"},
    "jpeg": {"image/jpeg"},
    "png": {"image/png"},
    "gif": {"image/gif"},
    "webp": {"image/webp"},
    "tif": {"image/tiff"},
    "tiff": {"image/tiff"},
    "svg": {"image/svg+xml"},
    "mp3": {"audio/mpeg"},
    "mp4": {"video/mp4"},
    "m4a": {"audio/x-m4a", "audio/mp4", "video/mp4"},
    "wav": {"audio/x-wav", "audio/wav"},
    "html": {"text/html"},
    "htm": {"text/html"},
    "xml": {"text/xml", "application/xml"},
    "json": {"application/json", "text/plain"},
    "gz": {"application/gzip", "application/x-gzip"},
    "tgz": {"application/gzip", "application/x-gzip"},
}
#: Extensions for plain text: any text/* type is fine, binary is not.
_TEXT_EXTENSIONS = {"txt", "md", "csv", "tsv", "text", "rst"}


@dataclass(frozen=True)
class Detected:
    """What libmagic says the bytes are."""

    mime: str
    description: str
    content_type: str


def detect(head: bytes) -> Detected:
    """Describe ``head`` (the file's first bytes) by content."""
    mime = magic.from_buffer(head, mime=True)
    description = magic.from_buffer(head)
    content_type = mime
    if mime.startswith("text/"):
        encoding = magic.Magic(mime_encoding=True).from_buffer(head)
        # Only the head was seen: an ASCII head may precede UTF-8 further on.
        if encoding in ("us-ascii", "utf-8"):
            content_type = f"{mime}; charset=utf-8"
        elif encoding not in ("binary", "unknown-8bit"):
            content_type = f"{mime}; charset={encoding}"
    return Detected(mime=mime, description=description, content_type=content_type)


def check_content(filename: str, head: bytes) -> Detected:
    """Return the detected type, or raise :class:`ContentRefused` with what the bytes are."""
    if not head:
        raise ContentRefused(ContentRefused.EMPTY, filename)
    found = detect(head)
    if found.mime in _EXECUTABLES:
        raise ContentRefused(ContentRefused.EXECUTABLE, filename, found=found.description, mime=found.mime)
    extension = PurePosixPath(filename).suffix.lower().lstrip(".")
    expected = _EXPECTED.get(extension)
    if expected is not None and found.mime not in expected:
        raise ContentRefused(
            ContentRefused.NOT_PROMISED,
            filename,
            found=found.description,
            mime=found.mime,
            extension=extension,
            expected=expected,
        )
    if extension in _TEXT_EXTENSIONS and not found.mime.startswith("text/"):
        raise ContentRefused(
            ContentRefused.NOT_TEXT, filename, found=found.description, mime=found.mime, extension=extension
        )
    return found
