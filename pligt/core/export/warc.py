"""Handing the collection over: every retained version, and the pages that link them, as WARC 1.1 records.

Each version is a ``response`` record at its public URL with the HTTP headers
Pligt serves it with (the service builds them: the core knows no URLs or
headers), so the file reads like a harvest of this server; warcio computes the
payload and block digests from the bytes as they stream. The payload digest is
SHA-1 in base32 (``sha1:…``), as Heritrix writes it in its own WARC and CDX
files: it must equal the catalog's SHA-1 of the version, or the export stops
(the bytes are not what was published). The pages (the indexes, their
stylesheet) come as the service answered them, body and headers.

:func:`write_records` notes where each record lies in the file, which is what
a CDXJ index needs (pligt/core/export/wacz.py).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pligt.core.catalog import Catalog
from pligt.core.errors import StorageError
from pligt.core.models import Version
from pligt.core.storage import Storage

Headers = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Page:
    """One answer of the service other than a version (an index page, its stylesheet), captured whole."""

    url: str
    #: The status line's code and reason, e.g. ``200 OK``.
    status: str
    headers: Headers
    body: bytes
    #: When it was captured (the record's WARC-Date).
    captured_at: datetime
    #: A page a reader starts from (the WACZ lists it, with this title); None: a page requisite.
    title: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """Where one response record lies in the written file, and what an index says of it."""

    url: str
    date: datetime
    mime: str
    status: str
    #: The payload digest, ``sha1:`` and base32.
    digest: str
    offset: int
    length: int
    title: str | None


@dataclass
class Exported:
    """What an export wrote: how many versions and pages, and every response record's place."""

    versions: int = 0
    pages: int = 0
    entries: list[Entry] = field(default_factory=list)


class Tally:
    """A write-only file that counts and hashes what passes through it (offsets for the index, the file's hash)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.written = 0
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._out.write(data)
        self.written += len(data)
        self.sha256.update(data)
        return len(data)

    def flush(self) -> None:
        self._out.flush()


def warc_date(moment: datetime) -> str:
    """Return ``moment`` as a WARC-Date, in UTC to the second (as Heritrix writes it)."""
    return (moment.astimezone(UTC) if moment.tzinfo else moment).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Records:
    """Writes response records to a WARC and notes each one's place."""

    def __init__(self, tally: Tally, writer: WARCWriter) -> None:
        self.tally = tally
        self.writer = writer
        self.exported = Exported()

    def write(
        self,
        url: str,
        status: str,
        headers: Headers,
        payload: BinaryIO,
        length: int,
        date: datetime,
        title: str | None,
        check: Callable[[str], None] | None = None,
    ) -> None:
        """Write one response record; ``check`` sees its payload digest first and may refuse it."""
        record = self.writer.create_warc_record(
            url,
            "response",
            payload=payload,
            length=length,
            http_headers=StatusAndHeaders(status, list(headers), protocol="HTTP/1.1"),
            warc_headers_dict={"WARC-Date": warc_date(date)},
        )
        digest = str(record.rec_headers.get_header("WARC-Payload-Digest"))
        if check is not None:
            check(digest)
        start = self.tally.written
        self.writer.write_record(record)
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        mime = content_type.split(";")[0].strip()
        entry = Entry(url, date, mime, status.split()[0], digest, start, self.tally.written - start, title)
        self.exported.entries.append(entry)


def write_records(
    out: BinaryIO,
    catalog: Catalog,
    storage: Storage,
    *,
    filename: str,
    base_url: str,
    software: str,
    url_of: Callable[[Version], str],
    headers_of: Callable[[Version], Headers],
    pages: Iterable[Page] = (),
    progress: Callable[[int], None] | None = None,
    gzip: bool = True,
) -> tuple[Exported, Tally]:
    """Write a WARC 1.1 to ``out``: a warcinfo record, the pages, then every retained version.

    Versions stream from storage one at a time (warcio reads a seekable file
    twice, digests then record, and spools anything else to a temporary file),
    so memory stays flat whatever their size. A version is dated when it was
    published: from then on its URL answered these bytes.

    :param url_of: the absolute URL a version is served at.
    :param headers_of: the HTTP headers it is served with (a 200 of the whole file).
    :raises StorageError: a version's bytes are missing or are not what was published.
    :return: what was written, and the tally of the bytes (count, SHA-256).
    """
    tally = Tally(out)
    writer = WARCWriter(tally, gzip=gzip, warc_version="1.1")
    writer.write_record(
        writer.create_warcinfo_record(
            filename,
            {
                "software": software,
                "format": "WARC File Format 1.1",
                "description": "Every retained version of a Pligt legal-deposit archive, and its index pages",
                "isPartOf": base_url,
            },
        )
    )
    records = _Records(tally, writer)
    for page in pages:
        body = io.BytesIO(page.body)
        records.write(page.url, page.status, page.headers, body, len(page.body), page.captured_at, page.title)
        records.exported.pages += 1
    for version in catalog.versions():
        try:
            stream = storage.open(version.storage_key)
        except FileNotFoundError as e:
            raise StorageError(
                f"the bytes of {version.slug} version {version.number} ({version.storage_key}) are missing; "
                "run `pligt fixity`"
            ) from e
        with stream:
            records.write(
                url_of(version),
                "200 OK",
                headers_of(version),
                stream,
                version.size,
                version.published_at,
                f"{version.title} (v{version.number})",
                check=functools.partial(_check, version),
            )
        records.exported.versions += 1
        if progress is not None:
            progress(version.size)
    return records.exported, tally


def _check(version: Version, digest: str) -> None:
    if version.sha1 is not None and digest != version.sha1:
        raise StorageError(
            f"the bytes of {version.slug} version {version.number} ({version.storage_key}) have "
            f"SHA-1 {digest}, not the published {version.sha1}; run `pligt fixity`"
        )


def export_warc(
    catalog: Catalog,
    storage: Storage,
    path: Path,
    *,
    base_url: str,
    software: str,
    url_of: Callable[[Version], str],
    headers_of: Callable[[Version], Headers],
    pages: Iterable[Page] = (),
    progress: Callable[[int], None] | None = None,
) -> Exported:
    """Write every retained version and ``pages`` to the WARC ``path`` (gzipped if it ends in .gz).

    The file appears only when complete (written beside it, then renamed).
    """
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("wb") as out:
            exported, _ = write_records(
                out,
                catalog,
                storage,
                filename=path.name,
                base_url=base_url,
                software=software,
                url_of=url_of,
                headers_of=headers_of,
                pages=pages,
                progress=progress,
                gzip=path.name.endswith(".gz"),
            )
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return exported
