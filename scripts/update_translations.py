"""Extract messages, fill the Danish catalogue from translations_da.DA, compile it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.messages.pofile import write_po

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from translations_da import DA  # noqa: E402

TEMPLATE = ROOT / "pligt/web/translations/messages.pot"
PO = ROOT / "pligt/web/translations/da/LC_MESSAGES/messages.po"


def main() -> int:
    subprocess.run(
        [
            str(Path(sys.executable).with_name("pybabel")),
            "-q",
            "extract",
            "-F",
            str(ROOT / "babel.cfg"),
            "-k",
            "_l",
            "-o",
            str(TEMPLATE),
            "--no-location",
            "--omit-header",
            "--no-wrap",
            str(ROOT),
        ],
        check=True,
    )
    with TEMPLATE.open("rb") as f:
        template = read_po(f)
    catalog = Catalog(locale="da", project="Pligt", fuzzy=False)
    missing = []
    for message in template:
        if not message.id:
            continue
        translation = DA.get(message.id)
        if translation is None:
            missing.append(message.id)
            continue
        catalog.add(message.id, translation)
    PO.parent.mkdir(parents=True, exist_ok=True)
    with PO.open("wb") as f:
        write_po(f, catalog, omit_header=False, no_location=True, width=0)
    with PO.with_suffix(".mo").open("wb") as f:
        write_mo(f, catalog)
    for message_id in missing:
        print(f"missing Danish translation: {message_id!r}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
