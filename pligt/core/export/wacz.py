"""Handing the collection over as one WACZ 1.1.1 package, which replay tools (pywb, ReplayWeb.page) open as it is.

The package is a ZIP holding ``archive/data.warc.gz`` (pligt/core/export/warc.py: every
retained version and the index pages, with the headers Pligt serves),
``indexes/index.cdx`` (a CDXJ line per response record, keyed by SURT as
pywb looks it up, with its offset and length in the WARC), ``pages/pages.jsonl``
(the index pages and the versions, the places a reader starts from), any proof
files handed in (``proof/…``: the signed checkpoint and its time stamp), and
``datapackage.json``, which lists every file with its size and SHA-256.

Written here with warcio and zipfile rather than with py-wacz: py-wacz indexes
a finished WARC by reading it again and needs frictionless and its ~30
dependencies for the datapackage; here the WARC streams into the ZIP (stored,
not compressed, so replay tools can read a record at its offset) while the
index is noted, and memory stays flat whatever the versions' sizes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import surt

from pligt.core.catalog import Catalog
from pligt.core.errors import InvalidInput
from pligt.core.export.warc import Entry
from pligt.core.export.warc import Exported
from pligt.core.export.warc import Headers
from pligt.core.export.warc import Page
from pligt.core.export.warc import warc_date
from pligt.core.export.warc import write_records
from pligt.core.models import Version
from pligt.core.storage import Storage

WACZ_VERSION = "1.1.1"
WARC_PATH = "archive/data.warc.gz"
INDEX_PATH = "indexes/index.cdx"
PAGES_PATH = "pages/pages.jsonl"
PROOF_FOLDER = "proof/"
#: A proof file's name: one path segment a ZIP tool and every file system take as it is.
_PROOF_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_proofs(proofs: Sequence[tuple[str, bytes]]) -> None:
    """Refuse proof files whose names are not plain, distinct file names.

    :raises InvalidInput: naming the first bad name.
    """
    seen: set[str] = set()
    for name, _ in proofs:
        if not _PROOF_NAME.fullmatch(name):
            raise InvalidInput(f"a proof file's name must be letters, digits, '.', '_' or '-': {name!r}")
        if name in seen:
            raise InvalidInput(f"two proof files are named {name!r}")
        seen.add(name)


def cdxj_line(entry: Entry, filename: str) -> str:
    """Return the CDXJ index line of one response record in ``filename`` (pywb's and py-wacz's fields)."""
    fields = {
        "url": entry.url,
        "mime": entry.mime,
        "status": entry.status,
        "digest": entry.digest,
        "length": str(entry.length),
        "offset": str(entry.offset),
        "filename": filename,
    }
    stamp = "".join(c for c in warc_date(entry.date) if c.isdigit())
    return f"{surt.surt(entry.url)} {stamp} {json.dumps(fields, ensure_ascii=False)}\n"


def pages_jsonl(entries: Iterable[Entry]) -> bytes:
    """Return the package's page list: a header line, then each entry that has a title."""
    lines: list[dict[str, str | None]] = [{"format": "json-pages-1.0", "id": "pages", "title": "All Pages"}]
    for number, entry in enumerate(e for e in entries if e.title is not None):
        lines.append({"id": f"page-{number + 1}", "url": entry.url, "ts": warc_date(entry.date), "title": entry.title})
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode("utf-8")


def _resource(path: str, data_hash: str, size: int) -> dict[str, object]:
    return {"name": path.rpartition("/")[2], "path": path, "hash": f"sha256:{data_hash}", "bytes": size}


def export_wacz(
    catalog: Catalog,
    storage: Storage,
    path: Path,
    *,
    base_url: str,
    software: str,
    title: str,
    created: datetime,
    url_of: Callable[[Version], str],
    headers_of: Callable[[Version], Headers],
    pages: Iterable[Page] = (),
    proofs: Sequence[tuple[str, bytes]] = (),
    progress: Callable[[int], None] | None = None,
) -> Exported:
    """Write every retained version, ``pages`` and ``proofs`` to the WACZ package ``path``.

    :param proofs: files (name, bytes) to hand over with the collection, under
        ``proof/`` and listed in ``datapackage.json`` with their hashes.
    :raises InvalidInput: a proof file's name is not a plain file name (nothing is written).
    :raises StorageError: a version's bytes are missing or not what was published (nothing is left).

    The file appears only when complete (written beside it, then renamed).
    """
    check_proofs(proofs)
    partial = path.with_name(path.name + ".partial")
    resources: list[dict[str, object]] = []
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as package:

            def add(member: str, data: bytes) -> None:
                package.writestr(member, data)
                resources.append(_resource(member, hashlib.sha256(data).hexdigest(), len(data)))

            member = zipfile.ZipInfo(WARC_PATH, date_time=created.timetuple()[:6])
            with package.open(member, "w", force_zip64=True) as warc:
                exported, tally = write_records(
                    warc,  # type: ignore[arg-type]  # a ZIP member written to is a binary file
                    catalog,
                    storage,
                    filename=WARC_PATH.rpartition("/")[2],
                    base_url=base_url,
                    software=software,
                    url_of=url_of,
                    headers_of=headers_of,
                    pages=pages,
                    progress=progress,
                )
            resources.append(_resource(WARC_PATH, tally.sha256.hexdigest(), tally.written))
            filename = WARC_PATH.rpartition("/")[2]
            index = sorted(cdxj_line(entry, filename) for entry in exported.entries)
            add(INDEX_PATH, "".join(index).encode("utf-8"))
            add(PAGES_PATH, pages_jsonl(exported.entries))
            for name, data in proofs:
                add(PROOF_FOLDER + name, data)
            described = {
                "profile": "data-package",
                "wacz_version": WACZ_VERSION,
                "title": title,
                "description": "Every retained version of a Pligt legal-deposit archive, and its index pages",
                "created": warc_date(created),
                "modified": warc_date(created),
                "software": software,
                "mainPageUrl": base_url.rstrip("/") + "/",
                "resources": resources,
            }
            datapackage = json.dumps(described, indent=2, ensure_ascii=False).encode("utf-8")
            package.writestr("datapackage.json", datapackage)
            digest = {"path": "datapackage.json", "hash": f"sha256:{hashlib.sha256(datapackage).hexdigest()}"}
            package.writestr("datapackage-digest.json", json.dumps(digest, indent=2).encode("utf-8"))
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return exported
