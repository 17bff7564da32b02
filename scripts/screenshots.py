"""Screenshots of the owner's console and the public pages, in Danish and English.

Makes a throw-away instance with realistic demo content (a small Danish consultancy's
brochures and course material, public and protected, some with several versions; one
access request released and harvested, one pending), serves it with `pligt serve`, and
saves PNG screenshots taken by headless Chromium into docs/screenshots/ (or the folder
given as the first argument). Run it with scripts/screenshots.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from datetime import datetime
from datetime import timedelta
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from pligt.core.models import PROTECTED
from pligt.core.models import PUBLIC
from pligt.core.models import utcnow
from pligt.instance import build_archive
from pligt.settings import load_settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for tests.support
from tests.support.net import ServerDidNotStart
from tests.support.net import free_port
from tests.support.net import start_process
from tests.support.slow_proxy import SlowProxy

ROOT = Path(__file__).resolve().parent.parent
PLIGT = str(Path(sys.executable).with_name("pligt"))
WIDTH, HEIGHT = 1280, 900
SITE_NAME = "Lundgaard Rådgivning"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    f"--window-size={WIDTH},{HEIGHT}",
)


# -- demo files -----------------------------------------------------------------------------------


def pdf(title: str, pages: int = 1) -> bytes:
    """A small well-formed PDF; ``pages`` pads it so the sizes differ."""
    body = f"%PDF-1.4\n1 0 obj\n<< /Title ({title}) >>\nendobj\n".encode()
    return body + b"%" + b"x" * (pages * 48_000) + b"\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


def png(width: int = 64, height: int = 64) -> bytes:
    """A small real PNG (a blue square with a lighter band)."""
    rows = b"".join(
        b"\x00" + (bytes((40, 90, 170)) if y % 16 < 12 else bytes((120, 160, 220))) * width for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def zip_named_pdf() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("prisliste.xlsx", "not really a spreadsheet")
    return buffer.getvalue()


PARTICIPANTS = "navn;virksomhed;e-mail\n" + "".join(f"Deltager {n};Firma {n} ApS;\n" for n in range(1, 30))
ANSWERS = "Facitliste til øvelserne i kursusmappen.\n" + "Opgave {n}: se afsnit {n}.2.\n" * 40

#: (days ago, filename, title, slug, visibility, bytes); a repeated slug is a new version.
DEMO: list[tuple[int, str, str, str | None, str, bytes]] = [
    (232, "Kursuskatalog efterår 2025.pdf", "Kursuskatalog efterår 2025", None, PUBLIC, pdf("Kursuskatalog", 6)),
    (221, "Sommertilbud 2025.pdf", "Sommertilbud 2025", None, PUBLIC, pdf("Sommertilbud", 1)),
    (171, "Brochure 2026.pdf", "Brochure 2026", None, PUBLIC, pdf("Brochure", 3)),
    (
        162,
        "Projektledelse for begyndere.pdf",
        "Kursusmappe: Projektledelse for begyndere",
        None,
        PROTECTED,
        pdf("Projektledelse", 24),
    ),
    (150, "Årsberetning 2025.pdf", "Årsberetning 2025", None, PUBLIC, pdf("Årsberetning", 9)),
    (133, "Nyhedsbrev januar 2026.pdf", "Nyhedsbrev januar 2026", None, PUBLIC, pdf("Nyhedsbrev januar", 2)),
    (121, "Facitliste.txt", "Facitliste til øvelserne", None, PROTECTED, ANSWERS.encode()),
    (104, "Nyhedsbrev februar 2026.pdf", "Nyhedsbrev februar 2026", None, PUBLIC, pdf("Nyhedsbrev februar", 2)),
    (96, "Brochure 2026 rettet.pdf", "Brochure 2026", "brochure-2026", PUBLIC, pdf("Brochure v2", 3)),
    (
        88,
        "Forandringsledelse i praksis.pdf",
        "Kursusmappe: Forandringsledelse i praksis",
        None,
        PROTECTED,
        pdf("Forandringsledelse", 31),
    ),
    (75, "Logo og designmanual.png", "Logo og designmanual", None, PUBLIC, png()),
    (61, "Deltagerliste skabelon.csv", "Skabelon til deltagerliste", None, PROTECTED, PARTICIPANTS.encode()),
    (
        40,
        "Workshop GDPR slides.pdf",
        "Slides: Workshop om GDPR for små virksomheder",
        "workshop-gdpr",
        PROTECTED,
        pdf("GDPR", 18),
    ),
    (33, "Tjekliste persondata.pdf", "Tjekliste for persondata", None, PROTECTED, pdf("Tjekliste", 1)),
    (
        19,
        "Workshop GDPR slides v2.pdf",
        "Slides: Workshop om GDPR for små virksomheder",
        "workshop-gdpr",
        PROTECTED,
        pdf("GDPR v2", 19),
    ),
    (12, "Brochure 2026 forår.pdf", "Brochure 2026", "brochure-2026", PUBLIC, pdf("Brochure v3", 4)),
    (5, "Prisliste 2026.pdf", "Prisliste 2026", None, PUBLIC, pdf("Prisliste", 1)),
]


class DemoClock:
    """The archive's clock, set back in time while the demo history is written."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


def fill(instance: Path) -> None:
    """Write the demo history into ``instance``, oldest first, as it would have happened."""
    today = utcnow()
    clock = DemoClock()
    archive = build_archive(load_settings(instance, env={}), clock)

    def at(days_ago: float) -> None:
        clock.now = today - timedelta(days=days_ago)

    events: list[tuple[float, Callable[[], None]]] = []
    for days_ago, filename, title, slug, visibility, data in DEMO:
        events.append(
            (days_ago, lambda f=filename, t=title, s=slug, v=visibility, d=data: _publish(archive, f, t, s, v, d))
        )
    released: dict[str, int] = {}

    def file_and_release() -> None:
        filed = archive.access.file(
            {
                "institution": "Det Kgl. Bibliotek",
                "contact_name": "Netarkivet, høstningsteamet",
                "contact_email": "netarkivet@kb.example.dk",
                "legal_basis": "",
                "message": "Vi anmoder om adgang til det beskyttede materiale på lundgaard-raadgivning.dk.",
            }
        )
        at(44.8)
        approval = archive.access.approve(filed.id, valid_days=365)
        at(44.1)
        archive.access.release(approval.release_token)
        released["credential"] = approval.credential.id

    def harvest() -> None:
        for version in archive.versions():
            credential = released["credential"] if version.visibility == PROTECTED else None
            archive.record_download(credential, version, 200, version.size)

    def renewal() -> None:
        archive.access.file(
            {
                "institution": "Det Kgl. Bibliotek",
                "contact_name": "Mette Holm, Netarkivet",
                "contact_email": "mette.holm@kb.example.dk",
                "legal_basis": "",
                "message": "Adgang til efterårets høstning; vores nuværende adgang udløber snart.",
            }
        )

    events += [
        (45, file_and_release),
        (42, harvest),
        (20, lambda: archive.withdraw("sommertilbud-2025")),
        (2, renewal),
    ]
    for days_ago, event in sorted(events, key=lambda e: -e[0]):
        at(days_ago)
        event()
    archive.catalog.close()


def _publish(archive, filename: str, title: str, slug: str | None, visibility: str, data: bytes) -> None:  # noqa: ANN001
    archive.publish([data], filename=filename, title=title, slug=slug, visibility=visibility)


# -- the server and the browser ---------------------------------------------------------------------


def serve(instance: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    try:
        process = start_process(
            [PLIGT, "serve", "--instance", str(instance), "--port", str(port)], log, f"http://127.0.0.1:{port}/healthz"
        )
    except ServerDidNotStart as e:
        sys.exit(str(e))
    return process, f"http://127.0.0.1:{port}"


def browser(profile: Path, lang: str) -> WebDriver:
    """Headless Chromium in ``lang`` (its own widgets too, with Debian's chromium-l10n)."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        sys.exit("needs Debian's chromium and chromium-driver (scripts/screenshots installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--lang={lang}")
    options.add_experimental_option("prefs", {"intl.accept_languages": lang})
    os.environ["SE_OFFLINE"] = "true"
    # Chromium on Linux takes its own interface language from LANGUAGE, not from --lang.
    return webdriver.Chrome(service=Service(driver, env={**os.environ, "LANGUAGE": lang}), options=options)


def shoot(driver: WebDriver, path: Path, full_page: bool = True) -> None:
    """Save a PNG of the page, 1280 wide; as tall as the page when ``full_page``."""
    height = HEIGHT
    if full_page:
        height = max(HEIGHT, int(driver.execute_script("return document.documentElement.scrollHeight")))
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    if shutil.which("pngquant"):  # 256 colours: the same picture of text in a third of the bytes
        subprocess.run(
            ["pngquant", "--force", "--skip-if-larger", "--speed", "1", "--strip", "--output", str(path), str(path)],
            check=False,
        )
    print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {path.stat().st_size // 1024} KB")


def main() -> int:
    out = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pligt-screenshots-"))
    instance = work / "instance"
    made = subprocess.run([PLIGT, "init", "--json", "--instance", str(instance)], capture_output=True, text=True)
    if made.returncode != 0:
        sys.exit(made.stderr)
    password = json.loads(made.stdout)["password"]
    with (instance / "pligt.toml").open("a") as f:
        f.write(f'\nsite_name = "{SITE_NAME}"\n')
    fill(instance)
    for name, data in (("Nyhedsbrev marts 2026.pdf", pdf("Nyhedsbrev marts", 2)), ("Prisliste.pdf", zip_named_pdf())):
        (work / name).write_bytes(data)

    process, url = serve(instance, work / "server.log")
    try:
        for lang in ("da", "en"):
            driver = browser(work / f"profile-{lang}", lang)
            try:
                photograph(driver, url, password, lang, work, out)
            finally:
                driver.quit()
    finally:
        process.terminate()
        process.wait(timeout=15)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def photograph(driver: WebDriver, url: str, password: str, lang: str, work: Path, out: Path) -> None:
    """The public pages, then the console: upload, items, requests, audit; then sign out."""
    wait = WebDriverWait(driver, 15)
    driver.get(f"{url}/?lang={lang}")
    shoot(driver, out / f"public-index-{lang}.png")
    driver.get(f"{url}/access/")
    shoot(driver, out / f"public-access-{lang}.png")
    driver.get(f"{url}/admin/login")
    shoot(driver, out / f"console-login-{lang}.png", full_page=False)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "sign-in").click()
    wait.until(lambda d: d.current_url.rstrip("/").endswith("/admin"))

    driver.get(f"{url}/admin/upload")
    files = [str(work / "Nyhedsbrev marts 2026.pdf"), str(work / "Prisliste.pdf")]
    driver.find_element(By.ID, "files").send_keys("\n".join(files))
    driver.find_element(By.CSS_SELECTOR, "input[name=visibility][value=public]").click()
    driver.find_element(By.ID, "upload-button").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#upload-results li.ok, #upload-results li.error")) == 2)
    shoot(driver, out / f"console-upload-{lang}.png")
    upload_in_progress(driver, url, work, out / f"console-upload-progress-{lang}.png")

    driver.get(f"{url}/admin/")
    shoot(driver, out / f"console-items-{lang}.png")
    driver.get(f"{url}/admin/requests")
    shoot(driver, out / f"console-requests-{lang}.png")
    driver.get(f"{url}/admin/audit")
    driver.find_element(By.ID, "verify").click()
    wait.until(lambda d: d.find_elements(By.ID, "verify-result"))
    shoot(driver, out / f"console-audit-{lang}.png", full_page=False)
    driver.find_element(By.ID, "sign-out").click()
    wait.until(lambda d: "/admin/login" in d.current_url)


def upload_in_progress(driver: WebDriver, url: str, work: Path, path: Path) -> None:
    """The upload page mid-upload: one file published, the next one's progress bar part-way.

    The browser uploads through a proxy that passes its bytes at 2 MB/s (a
    modest uplink), so the bar is photographed moving. The console's cookie is
    the same on the proxy's port.
    """
    small, large = work / "Nyhedsbrev april 2026.pdf", work / "Kursusmappe Projektledelse 2026.pdf"
    small.write_bytes(pdf("Nyhedsbrev april", 2))
    large.write_bytes(pdf("Kursusmappe Projektledelse", 250))  # 12 MB
    port = int(url.rsplit(":", 1)[1])
    with SlowProxy(("127.0.0.1", port), rate=2_000_000) as proxy:
        driver.get(f"{proxy.url}/admin/upload")
        driver.find_element(By.ID, "files").send_keys(f"{small}\n{large}")
        driver.find_element(By.ID, "upload-button").click()
        part_way = (
            "const bar = document.querySelector('#upload-results progress');"
            "return document.querySelector('#upload-results li.ok') !== null && bar !== null"
            " && bar.value / bar.max >= 0.55 && bar.value / bar.max <= 0.8;"
        )
        WebDriverWait(driver, 30, poll_frequency=0.05).until(lambda d: d.execute_script(part_way))
        shoot(driver, path, full_page=False)
        WebDriverWait(driver, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#upload-results li.ok")) == 2)


if __name__ == "__main__":
    sys.exit(main())
