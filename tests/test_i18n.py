"""Danish and English: Danish by default for a Danish publisher, the browser's choice, a switch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask.testing import FlaskClient

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "pligt/web/translations/da/LC_MESSAGES/messages.po"


def test_danish_is_the_default(client: FlaskClient) -> None:
    page = client.get("/", headers={"Accept-Language": ""})
    assert '<html lang="da">' in page.text
    assert "offentliggjort materiale" in page.text
    assert "Accept-Language" in page.headers["Vary"]


def test_the_browser_chooses(client: FlaskClient) -> None:
    assert "published material" in client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"}).text
    assert "offentliggjort materiale" in client.get("/", headers={"Accept-Language": "da,en;q=0.5"}).text
    assert "offentliggjort materiale" in client.get("/", headers={"Accept-Language": "fr"}).text


def test_the_switch_is_remembered(client: FlaskClient) -> None:
    switched = client.get("/access/?lang=da", headers={"Accept-Language": "en"})
    assert "Anmod om adgang" in switched.text
    assert "pligt_lang=da" in switched.headers["Set-Cookie"]
    assert "Anmod om adgang" in client.get("/access/", headers={"Accept-Language": "en"}).text
    assert "Request access" in client.get("/access/?lang=en").text
    assert "Anmod om adgang" not in client.get("/access/").text


def test_an_unknown_language_is_ignored(client: FlaskClient) -> None:
    page = client.get("/?lang=xx", headers={"Accept-Language": "en"})
    assert "published material" in page.text
    assert "pligt_lang" not in page.headers.get("Set-Cookie", "")


def test_form_labels_and_console_are_translated(client: FlaskClient) -> None:
    form = client.get("/access/?lang=da").text
    assert "Kontaktperson" in form and "Retsgrundlag" in form
    login = client.get("/admin/login?lang=da").text
    assert "Log ind" in login and "Adgangskode" in login


def test_every_message_has_a_compiled_danish_translation(tmp_path: Path) -> None:
    """Fails when user-facing text changed without `scripts/update-translations`."""
    template = tmp_path / "messages.pot"
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
            str(template),
            "--no-location",
            "--omit-header",
            str(ROOT),
        ],
        check=True,
    )
    with template.open("rb") as f:
        wanted = {_key(m.id) for m in read_po(f) if m.id}
    with PO.open("rb") as f:
        po = {_key(m.id): _key(m.string) for m in read_po(f) if m.id}
    with PO.with_suffix(".mo").open("rb") as f:
        mo = {_key(m.id): _key(m.string) for m in read_mo(f) if m.id}
    assert wanted - set(po) == set()
    assert [m for m, s in po.items() if not s] == []
    assert mo == po


def _key(value: object) -> object:
    """Plural messages come as lists or tuples; make them comparable."""
    return tuple(value) if isinstance(value, list | tuple) else value


def test_the_switch_is_a_form_that_keeps_the_page_and_its_query(client: FlaskClient) -> None:
    page = client.get("/admin/login?lang=da&next=%2Fadmin%2Fupload", headers={"Accept-Language": "da"})
    assert '<form class="lang" method="get" action="">' in page.text
    assert '<input type="hidden" name="next" value="/admin/upload">' in page.text
    assert '<button type="submit" name="lang" value="en" lang="en" aria-pressed="false">English</button>' in page.text
    assert "?lang=" not in page.text  # no links a crawler would follow once per language
