"""Handing the collection over: every retained version as a WARC 1.1 ``response`` record.

The records carry each version at its public URL with the HTTP headers Pligt
serves it with, so the file reads like a harvest of this server; warcio
computes the payload and block digests from the bytes as they stream. The
payload digest is SHA-1 in base32 (``sha1:…``), as Heritrix writes it in its own
WARC and CDX files: it must equal the catalog's SHA-1 of the version, or the
export stops (the bytes are not what was published).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from email.utils import format_datetime
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from .catalog import Catalog
from .errors import StorageError
from .models import Version
from .storage import Storage


def export_warc(
    catalog: Catalog,
    storage: Storage,
    path: Path,
    base_url: str,
    software: str,
    path_of: Callable[[Version], str],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write every retained version to ``path`` (gzipped if it ends in .gz); return the count.

    Each record's URL is ``base_url`` and ``path_of(version)``: the service says
    where it serves a version; the core does not know URL paths.

    The file appears only when complete (written beside it, then renamed).
    """
    base_url = base_url.rstrip("/")
    partial = path.with_name(path.name + ".partial")
    count = 0
    try:
        with partial.open("wb") as out:
            writer = WARCWriter(out, gzip=path.name.endswith(".gz"), warc_version="1.1")
            writer.write_record(
                writer.create_warcinfo_record(
                    path.name,
                    {
                        "software": software,
                        "format": "WARC File Format 1.1",
                        "description": "Every retained version of a Pligt legal-deposit archive",
                        "isPartOf": base_url,
                    },
                )
            )
            for version in catalog.versions():
                http_headers = StatusAndHeaders(
                    "200 OK",
                    [
                        ("Content-Type", version.content_type),
                        ("Content-Length", str(version.size)),
                        ("Last-Modified", format_datetime(version.published_at, usegmt=True)),
                        ("ETag", f'"{version.sha256}"'),
                    ],
                    protocol="HTTP/1.1",
                )
                try:
                    stream = storage.open(version.storage_key)
                except FileNotFoundError as e:
                    raise StorageError(
                        f"the bytes of {version.slug} version {version.number} ({version.storage_key}) are missing; "
                        "run `pligt fixity`"
                    ) from e
                with stream:
                    record = writer.create_warc_record(
                        base_url + path_of(version),
                        "response",
                        payload=stream,
                        length=version.size,
                        http_headers=http_headers,
                        warc_headers_dict={"WARC-Date": version.published_at.strftime("%Y-%m-%dT%H:%M:%SZ")},
                    )
                    digest = record.rec_headers.get_header("WARC-Payload-Digest")
                    if version.sha1 is not None and digest != version.sha1:
                        raise StorageError(
                            f"the bytes of {version.slug} version {version.number} ({version.storage_key}) have "
                            f"SHA-1 {digest}, not the published {version.sha1}; run `pligt fixity`"
                        )
                    writer.write_record(record)
                count += 1
                if progress is not None:
                    progress(version.size)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return count
