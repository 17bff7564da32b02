"""The owner's console and the public pages in a real browser: headless Chromium driven by
selenium against a real `pligt serve`.

The owner's browser speaks Danish (the default for a Danish publisher), the deposit
institution's staff browse in English in a second, separate browser session. On a failure
each test saves a screenshot of its browsers into tests/artifacts/.

Every test also reads the browser's console: a Content-Security-Policy violation, a script
error, a warning of Chromium's about a form, or a stylesheet, script or icon that did not
load fails it. axe-core (tests/axe, installed by scripts/test from its package-lock.json)
checks every page and state in Danish and English for WCAG 2.1 A and AA.
"""

from __future__ import annotations

import base64
import gettext
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

import pligt.web
from pligt.core import Archive
from pligt.core.models import PUBLIC
from pligt.core.models import Version
from pligt.core.models import utcnow
from pligt.instance import build_archive
from pligt.instance import init_instance
from pligt.settings import Settings
from pligt.settings import load_settings
from tests.support.access import REQUEST_FIELDS
from tests.support.access import issue_credential
from tests.support.data import pdf_bytes
from tests.support.data import zip_bytes
from tests.support.servers import start_server
from tests.support.servers import stop_server
from tests.support.slow_proxy import SlowProxy

ARTIFACTS = Path(__file__).parent / "artifacts"
#: axe-core, as scripts/test installs it (npm ci in tests/axe, the version its package-lock.json pins).
AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
#: The rules axe runs: WCAG 2.0 and 2.1, levels A and AA.
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

#: Debian's Chromium must run like this here: no sandbox as root, and no calls home.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)

#: The Danish catalogue the server uses: the tests expect its words on the Danish pages.
DANISH = gettext.translation("messages", Path(pligt.web.__file__).parent / "translations", languages=["da"])


def da(message: str, **values: object) -> str:
    text = DANISH.gettext(message)
    return text % values if values else text


# -- the server and the browsers ------------------------------------------------------------------


@dataclass
class Site:
    url: str
    password: str
    settings: Settings
    #: The instance's archive, opened beside the server: the facts the pages must show.
    archive: Archive
    #: A version published seven months ago: its retention is over, it may be withdrawn.
    old: Version
    #: A released crawler credential (username, password), for the protected index.
    crawler: tuple[str, str]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("browser")
    settings = load_settings(root / "instance", env={})
    owner = init_instance(settings)
    # The instance's first version, published seven months ago (the catalog has nothing later yet).
    past = utcnow() - timedelta(days=212)
    earlier = build_archive(settings, lambda: past)
    old = earlier.publish([pdf_bytes("Sommertilbud 2025")], filename="Sommertilbud 2025.pdf", visibility=PUBLIC).version
    earlier.catalog.close()
    server = start_server(settings.instance, root / "server.log")
    archive = build_archive(settings)
    credential, password = issue_credential(archive)
    try:
        yield Site(server.url, owner.password, settings, archive, old, (credential.username, password))
    finally:
        archive.catalog.close()
        stop_server(server)


def _executable(name: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if not found:
        pytest.fail(
            f"{name} is not installed: the browser tests need Debian's chromium and chromium-driver "
            "(scripts/test installs them; or: apt-get install chromium chromium-driver)",
            pytrace=False,
        )
    return found


def new_browser(language: str, profile: Path) -> WebDriver:
    """Start headless Chromium with a fresh profile, asking for pages in ``language``."""
    options = webdriver.ChromeOptions()
    options.binary_location = _executable("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--lang={language}")
    options.add_experimental_option("prefs", {"intl.accept_languages": language})
    # Everything the page's console says, Chromium's own verbose warnings ("[DOM] …") included.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver's path is given: selenium-manager must never try to download one.
    os.environ["SE_OFFLINE"] = "true"
    try:
        browser = webdriver.Chrome(service=Service(_executable("chromedriver")), options=options)
    except WebDriverException as e:
        pytest.fail(f"Chromium did not start through chromedriver: {e.msg}", pytrace=False)
    browser.set_page_load_timeout(20)
    browser.set_script_timeout(30)
    return browser


@pytest.fixture(scope="module")
def _owner_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    browser = new_browser("da", tmp_path_factory.mktemp("chromium-owner"))
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def _staff_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    browser = new_browser("en", tmp_path_factory.mktemp("chromium-staff"))
    yield browser
    browser.quit()


def _fresh(browser: WebDriver, site: Site, request: pytest.FixtureRequest, name: str) -> Iterator[WebDriver]:
    """Start a test signed out and without a language cookie; on failure save a screenshot.

    After the test, the browser's console must hold no problem (:func:`console_problems`).
    """
    browser.get(site.url + "/healthz")
    browser.delete_all_cookies()
    console_log(browser)  # what earlier tests left
    yield browser
    report = getattr(request.node, "rep_call", None)
    problems = console_problems(browser)
    if report is not None and report.passed and problems:
        pytest.fail(f"{name}'s browser console: " + json.dumps(problems, indent=1, ensure_ascii=False), pytrace=False)
    if report is None or report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        stem = ARTIFACTS / f"{request.node.name}-{name}"
        try:
            browser.save_screenshot(str(stem.with_suffix(".png")))
            stem.with_suffix(".html").write_text(browser.page_source)
        except WebDriverException as e:
            print(f"could not save a screenshot of {name}'s browser: {e.msg}")


@pytest.fixture
def owner(_owner_browser: WebDriver, site: Site, request: pytest.FixtureRequest) -> Iterator[WebDriver]:
    """The publisher's browser (Danish)."""
    yield from _fresh(_owner_browser, site, request, "owner")


@pytest.fixture
def staff(_staff_browser: WebDriver, site: Site, request: pytest.FixtureRequest) -> Iterator[WebDriver]:
    """The deposit institution's staff, in a second browser session (English)."""
    yield from _fresh(_staff_browser, site, request, "staff")


# -- helpers ------------------------------------------------------------------------------------------


def wait(browser: WebDriver, timeout: float = 10) -> WebDriverWait[WebDriver]:
    return WebDriverWait(browser, timeout)


def find(browser: WebDriver, css: str) -> WebElement:
    return browser.find_element(By.CSS_SELECTOR, css)


def classes(element: WebElement) -> list[str]:
    return (element.get_attribute("class") or "").split()


def click_and_load(browser: WebDriver, element: WebElement) -> None:
    """Click something that submits a form, and wait for the next page."""
    element.click()
    wait(browser).until(lambda b: _stale(element))
    wait(browser).until(lambda b: b.execute_script("return document.readyState") == "complete")


def _stale(element: WebElement) -> bool:
    try:
        element.is_enabled()
    except WebDriverException:
        return True
    return False


def sign_in(browser: WebDriver, site: Site) -> None:
    browser.get(site.url + "/admin/login")
    find(browser, "#password").send_keys(site.password)
    click_and_load(browser, find(browser, "#sign-in"))
    assert browser.current_url.rstrip("/").endswith("/admin"), browser.current_url


def console_log(browser: WebDriver) -> list[dict[str, Any]]:
    """The page's console entries since last asked (Chromium's log; selenium leaves it untyped)."""
    entries: list[dict[str, Any]] = browser.get_log("browser")  # type: ignore[no-untyped-call]
    return entries


def console_problems(browser: WebDriver) -> list[str]:
    """What the page's console said since last asked that is a problem.

    Problems: a Content-Security-Policy violation, a script error, anything at
    warning level or worse, Chromium's own advice on the page ("[DOM] Password
    forms should have (optionally hidden) username fields"), and a stylesheet,
    script or icon that did not load. A page that answers 4xx on purpose (a
    wrong password, a refused upload, a 404) is logged too, and is no problem.
    """
    problems = []
    for entry in console_log(browser):
        message = entry["message"]
        if entry["source"] == "network" and "Failed to load resource" in message:
            url = message.split(" ", 1)[0]
            if "/static/" in url or "/favicon.ico" in url:
                problems.append(message)
            continue
        if entry["level"] in ("SEVERE", "WARNING") or "Content Security Policy" in message or "[DOM]" in message:
            problems.append(f"{entry['level']} {entry['source']}: {message}")
    return problems


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE.is_file():
        pytest.fail(
            f"axe-core is not installed in {AXE.parent.parent.parent}: scripts/test installs it "
            "(or: npm ci --prefix tests/axe)",
            pytrace=False,
        )
    return AXE.read_text(encoding="utf-8")


def axe_violations(browser: WebDriver, axe_source: str) -> list[str]:
    """Run axe-core on the page as it is now; return its WCAG 2.1 A/AA violations, one line each.

    The script is given to the page through the driver, which the page's own
    Content-Security-Policy does not govern.
    """
    if not browser.execute_script("return typeof window.axe === 'object'"):
        browser.execute_script(axe_source)
    violations: list[str] = browser.execute_async_script(
        """
        const [tags, done] = arguments;
        axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']}).then(
          result => done(result.violations.map(v =>
            `${v.id} (${v.impact}): ${v.help}: ` + v.nodes.map(n => n.target.join(' ')).join(', '))),
          error => done([`axe-core failed: ${error}`]));
        """,
        WCAG_21_AA,
    )
    return violations


def press(browser: WebDriver, *keys: str) -> None:
    """Press keys on whatever has the focus, as a person at the keyboard does."""
    ActionChains(browser).send_keys(*keys).perform()


def tab_to(browser: WebDriver, css: str, presses: int = 60) -> WebElement:
    """Press TAB until the focus is on the element that ``css`` names; return it."""
    for _ in range(presses):
        press(browser, Keys.TAB)
        if browser.execute_script("return document.activeElement.matches(arguments[0])", css):
            return browser.switch_to.active_element
    raise AssertionError(f"{presses} presses of TAB never reached {css}")


def labels_missing(browser: WebDriver) -> list[str]:
    """Every form control a person can use that has neither a label nor an aria-label."""
    missing: list[str] = browser.execute_script(
        """
        return Array.from(document.querySelectorAll('input:not([type=hidden]):not([hidden]), select, textarea'))
          .filter(e => !(e.labels && e.labels.length > 0) && !e.getAttribute('aria-label')
                       && !e.getAttribute('aria-labelledby'))
          .map(e => e.outerHTML);
        """
    )
    return missing


#: WCAG 2.x contrast of every visible piece of text against its background (disabled controls
#: are exempt); 4.5:1 for normal text, 3:1 for large text.
CONTRAST_JS = """
function parse(s) {
  const m = s.match(/rgba?\\(([^)]+)\\)/);
  if (!m) return null;
  const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
  return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
}
function luminance(c) {
  const v = c.slice(0, 3).map(x => { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
  return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
}
function background(element) {
  const layers = [];
  for (let e = element; e; e = e.parentElement) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
  }
  let rgb = [255, 255, 255];
  for (let i = layers.length - 1; i >= 0; i--) {
    const c = layers[i];
    rgb = [0, 1, 2].map(k => c[k] * c[3] + rgb[k] * (1 - c[3]));
  }
  return rgb;
}
const low = [];
for (const element of document.querySelectorAll('body *')) {
  if (element.closest('[disabled], .visually-hidden, script, style')) continue;
  if (!Array.from(element.childNodes).some(n => n.nodeType === 3 && n.textContent.trim())) continue;
  const style = getComputedStyle(element);
  if (style.display === 'none' || style.visibility === 'hidden' || element.getClientRects().length === 0) continue;
  const back = background(element);
  const color = parse(style.color);
  let alpha = color[3];
  for (let e = element; e; e = e.parentElement) alpha *= parseFloat(getComputedStyle(e).opacity);
  const fore = [0, 1, 2].map(k => color[k] * alpha + back[k] * (1 - alpha));
  const [a, b] = [luminance(fore), luminance(back)];
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight, 10) >= 700;
  const needed = size >= 24 || (size >= 18.66 && bold) ? 3 : 4.5;
  if (ratio < needed) {
    low.push(element.tagName.toLowerCase() + ' "' + element.textContent.trim().slice(0, 40) + '": ' +
             style.color + ' on rgb(' + back.map(Math.round) + ') = ' + ratio.toFixed(2) + ':1');
  }
}
return low;
"""


# -- the tests --------------------------------------------------------------------------------------


def test_owner_console_from_upload_to_revoked_credential(
    owner: WebDriver, staff: WebDriver, site: Site, tmp_path: Path
) -> None:
    # Sign in: a wrong password is refused with a message, the right one opens the items page.
    owner.get(site.url + "/admin/")
    assert "/admin/login" in owner.current_url
    find(owner, "#password").send_keys("not the password")
    click_and_load(owner, find(owner, "#sign-in"))
    assert find(owner, "#password-error").text == da("Wrong password.")
    assert find(owner, "#password").get_attribute("aria-invalid") == "true"
    find(owner, "#password").send_keys(site.password)
    click_and_load(owner, find(owner, "#sign-in"))
    assert owner.current_url.rstrip("/").endswith("/admin")
    assert find(owner, "h1").text == da("Items and versions")

    # Upload two files through the file input: a real PDF, and a ZIP archive named .pdf.
    good = tmp_path / "Brochure forår 2026.pdf"
    good.write_bytes(pdf_bytes("Brochure forår 2026", pad=200_000))
    bad = tmp_path / "Prisliste 2026.pdf"
    bad.write_bytes(zip_bytes())
    click_and_load(owner, find(owner, "nav.admin a[href$='/admin/upload']"))
    find(owner, "#files").send_keys(f"{good}\n{bad}")
    find(owner, "input[name=visibility][value=public]").click()
    find(owner, "#upload-button").click()
    wait(owner, 20).until(
        lambda b: len(b.find_elements(By.CSS_SELECTOR, "#upload-results li.ok, #upload-results li.error")) == 2
    )
    assert not owner.find_elements(By.CSS_SELECTOR, "#upload-results progress")
    [published] = [v for v in site.archive.versions() if v.filename == good.name]
    retained = published.retain_until.strftime("%Y-%m-%d")
    ok = find(owner, f'#upload-results li[data-filename="{good.name}"]')
    assert "ok" in classes(ok)
    assert ok.text.startswith(da("Published") + " " + good.name)
    assert "(application/pdf)" in ok.text
    assert f"{da('retained until')} {retained}" in ok.text
    refused = find(owner, f'#upload-results li[data-filename="{bad.name}"]')
    assert "error" in classes(refused)
    assert refused.text.startswith(da("Refused") + ": ")
    assert "Zip archive" in refused.text
    assert not [v for v in site.archive.versions() if v.filename == bad.name]

    # The items page lists the new item with its retention date, days left, and a withdraw
    # button that is disabled with the reason.
    most = (published.retain_until - utcnow()).days  # the server counts whole days to the second
    click_and_load(owner, find(owner, "nav.admin a[href$='/admin/']"))
    least = (published.retain_until - utcnow()).days
    row = find(owner, f'#items tr[data-slug="{published.slug}"][data-version="{published.number}"]')
    date, left = row.find_element(By.CSS_SELECTOR, "td.retained").text.split("\n")
    assert date == retained
    assert left in [
        DANISH.ngettext("%(num)d day left", "%(num)d days left", days) % {"num": days} for days in {least, most}
    ]
    assert da("Public") in row.text
    assert da("not yet") in row.text
    withdraw = row.find_element(By.CSS_SELECTOR, "button")
    assert not withdraw.is_enabled()
    reason = find(owner, "#" + (withdraw.get_attribute("aria-describedby") or ""))
    assert reason.text == da(
        "Retained until %(date)s: material must stay online for at least six months.", date=retained
    )

    # In a second browser session, the deposit institution files a request through the public form.
    staff.get(site.url + "/access/")
    assert staff.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    find(staff, "#institution").send_keys("Det Kgl. Bibliotek")
    find(staff, "#contact_name").send_keys("Netarkivet Høstning")
    find(staff, "#contact_email").send_keys("netarkivet@kb.example.dk")
    find(staff, "#message").send_keys("Vi anmoder om adgang til det beskyttede materiale.")
    click_and_load(staff, find(staff, "form[action$='/access/'] button[type=submit]"))
    request_id = int(find(staff, "#request-id").text)
    assert find(staff, "#request-status").text == "pending"
    assert staff.title == f"Request received · {site.settings.site_name}"

    # The owner approves it; with no SMTP configured the page shows the single-use release link.
    click_and_load(owner, find(owner, "nav.admin a[href$='/admin/requests']"))
    row = find(owner, f'#requests tr[data-request="{request_id}"]')
    assert row.find_element(By.CSS_SELECTOR, "td.status").text == da("pending")
    assert "Det Kgl. Bibliotek" in row.text
    click_and_load(owner, row.find_element(By.CSS_SELECTOR, "button.approve"))
    link = find(owner, "#release-link").text
    assert link.startswith(site.url + "/access/release/"), link
    row = find(owner, f'#requests tr[data-request="{request_id}"]')
    assert row.find_element(By.CSS_SELECTOR, "td.status").text == da("approved, not yet released")

    # The staff follow the link, press the button, and read the credentials from the page.
    staff.get(link)
    click_and_load(staff, find(staff, "main form button[type=submit]"))
    username, password = find(staff, "#username").text, find(staff, "#password").text
    assert username and password
    assert find(staff, "#realm").text == site.settings.realm
    assert requests.get(site.url + "/protected/", auth=(username, password), timeout=10).status_code == 200

    # The owner sees it released, revokes the credential, and sees it marked revoked.
    owner.refresh()
    row = find(owner, f'#requests tr[data-request="{request_id}"]')
    assert row.find_element(By.CSS_SELECTOR, "td.status").text == da("released")
    [credential] = [c for c in site.archive.access.credentials() if c.username == username]
    row = find(owner, f'#credentials tr[data-credential="{credential.id}"]')
    assert row.find_element(By.CSS_SELECTOR, "td.state").text == da("active")
    click_and_load(owner, row.find_element(By.CSS_SELECTOR, "button.revoke"))
    [credential] = [c for c in site.archive.access.credentials() if c.username == username]
    assert credential.revoked_at is not None
    row = find(owner, f'#credentials tr[data-credential="{credential.id}"]')
    assert row.find_element(By.CSS_SELECTOR, "td.state").text == da(
        "revoked %(date)s", date=credential.revoked_at.strftime("%Y-%m-%d")
    )
    assert not row.find_elements(By.CSS_SELECTOR, "button.revoke")
    assert da("Revoked %(username)s.", username=username) in find(owner, ".flash").text
    answer = requests.get(site.url + "/protected/", auth=(username, password), timeout=10)
    assert answer.status_code == 401

    # The audit page: the head hash, and "verify now" says the log is intact.
    click_and_load(owner, find(owner, "nav.admin a[href$='/admin/audit']"))
    count, head = site.archive.verify_audit()
    assert find(owner, "#head").text == head
    click_and_load(owner, find(owner, "#verify"))
    result = find(owner, "#verify-result")
    assert "ok" in classes(result)
    assert result.text == da("The log is intact: %(count)d entries.", count=count)
    actions = [td.text for td in owner.find_elements(By.CSS_SELECTOR, "table tbody tr td:nth-child(3)")]
    for action in ("version.published", "request.filed", "request.approved", "credential.released"):
        assert action in actions

    # Sign out: the console is closed again.
    click_and_load(owner, find(owner, "#sign-out"))
    assert "/admin/login" in owner.current_url
    owner.get(site.url + "/admin/")
    assert "/admin/login" in owner.current_url
    assert find(owner, "h1").text == da("Sign in to the console")


def test_sign_in_with_the_keyboard_only(owner: WebDriver, site: Site) -> None:
    owner.get(site.url + "/admin/login")
    # The password field has the focus on arrival; TAB reaches the button, ENTER presses it.
    assert owner.switch_to.active_element.get_attribute("id") == "password"
    owner.switch_to.active_element.send_keys(site.password)
    owner.switch_to.active_element.send_keys(Keys.TAB)
    button = owner.switch_to.active_element
    assert button.get_attribute("id") == "sign-in"
    button.send_keys(Keys.ENTER)
    wait(owner).until(lambda b: b.current_url.rstrip("/").endswith("/admin"))
    # From the top of the console, TAB walks through the console's navigation in order.
    owner.find_element(By.TAG_NAME, "body").click()
    reached = []
    for _ in range(20):
        owner.switch_to.active_element.send_keys(Keys.TAB)
        active = owner.switch_to.active_element
        reached.append(active.get_attribute("id") or active.get_attribute("href") or active.tag_name)
        if active.get_attribute("id") == "sign-out":
            break
    # The console's pages (not a version's receipt, /admin/items/…/receipt, in the table).
    console = [r for r in reached if isinstance(r, str) and "/admin/" in r and "/admin/items/" not in r]
    assert [r.split("/admin/")[1] for r in console[:4]] == ["", "upload", "requests", "audit"], reached
    assert reached[-1] == "sign-out", reached
    # ENTER on the focused sign-out button signs out.
    owner.switch_to.active_element.send_keys(Keys.ENTER)
    wait(owner).until(lambda b: "/admin/login" in b.current_url)


def test_every_input_has_a_label(owner: WebDriver, staff: WebDriver, site: Site) -> None:
    site.archive.access.file({**REQUEST_FIELDS, "institution": "Labels Bibliotek"})  # the requests page has forms
    pages = {}
    owner.get(site.url + "/admin/login")
    pages["/admin/login"] = labels_missing(owner)
    sign_in(owner, site)
    for path in ("/admin/", "/admin/upload", "/admin/requests", "/admin/audit"):
        owner.get(site.url + path)
        pages[path] = labels_missing(owner)
        if path == "/admin/requests":
            assert owner.find_elements(By.CSS_SELECTOR, "#requests form.decide input[type=number]")
    for path in ("/", "/access/"):
        staff.get(site.url + path)
        pages[path] = labels_missing(staff)
    assert not any(pages.values()), json.dumps(pages, indent=1)


def test_text_has_enough_contrast(owner: WebDriver, site: Site) -> None:
    low = {}
    owner.get(site.url + "/admin/login?lang=en")
    low["/admin/login"] = owner.execute_script(CONTRAST_JS)
    sign_in(owner, site)
    for path in ("/admin/", "/admin/upload", "/admin/requests", "/admin/audit", "/", "/access/"):
        owner.get(site.url + path)
        low[path] = owner.execute_script(CONTRAST_JS)
    assert not any(low.values()), json.dumps(low, indent=1, ensure_ascii=False)


def test_language_switch(owner: WebDriver, staff: WebDriver, site: Site) -> None:
    # A Danish browser gets the Danish console.
    owner.get(site.url + "/admin/login")
    assert find(owner, "html").get_attribute("lang") == "da"
    assert find(owner, "#sign-in").text == "Log ind"
    # The switch on the page changes to English, and the choice is remembered.
    click_and_load(owner, find(owner, "header form.lang button[value=en]"))
    assert find(owner, "#sign-in").text == "Sign in"
    assert find(owner, "html").get_attribute("lang") == "en"
    owner.get(site.url + "/admin/login")
    assert find(owner, "#sign-in").text == "Sign in"
    owner.get(site.url + "/access/")
    assert find(owner, "h1").text == "Access for the legal-deposit institution"
    # ...and back to Danish.
    owner.get(site.url + "/admin/login?lang=da")
    assert find(owner, "#sign-in").text == "Log ind"
    # An English-speaking browser gets English without asking; ?lang=da gives it Danish.
    staff.get(site.url + "/admin/login")
    assert find(staff, "#sign-in").text == "Sign in"
    staff.get(site.url + "/admin/login?lang=da")
    assert find(staff, "#sign-in").text == "Log ind"


def test_a_progress_bar_moves_during_a_slow_upload(
    owner: WebDriver, site: Site, tmp_path: Path, axe_source: str
) -> None:
    """The console's script runs under the pages' CSP: each file's bar moves while its bytes go up.

    The upload goes through a proxy that passes the browser's bytes at 2 MB/s, so the
    bar is seen part-way. With the script blocked, the form posts the files as multipart
    and no bar ever appears: this test fails.
    """
    big = tmp_path / "Kursusmappe efterår 2026.pdf"
    big.write_bytes(pdf_bytes("Kursusmappe efterår 2026", pad=8_000_000))
    port = int(site.url.rsplit(":", 1)[1])
    with SlowProxy(("127.0.0.1", port)) as proxy:
        sign_in(owner, Site(proxy.url, site.password, site.settings, site.archive, site.old, site.crawler))
        owner.get(proxy.url + "/admin/upload")
        find(owner, "#files").send_keys(str(big))
        find(owner, "input[name=visibility][value=public]").click()
        proxy.rate = 2_000_000
        find(owner, "#upload-button").click()
        seen: list[tuple[float, int, int]] = []
        mid_upload: list[str] | None = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            bars = owner.execute_script(
                "return Array.from(document.querySelectorAll('#upload-results progress')).map(p => [p.value, p.max])"
            )
            if bars:
                [(value, maximum)] = bars
                seen.append((time.monotonic(), int(value), int(maximum)))
                if mid_upload is None and 0 < value < maximum:
                    mid_upload = axe_violations(owner, axe_source)  # the page with its bar, part-way
            if owner.find_elements(By.CSS_SELECTOR, "#upload-results li.ok, #upload-results li.error"):
                break
            time.sleep(0.05)
        assert seen, "no progress bar appeared: is the console's script blocked? " + json.dumps(
            console_problems(owner), ensure_ascii=False
        )
        part_way = sorted({value for _, value, maximum in seen if 0 < value < maximum})
        assert len(part_way) >= 2, f"the bar never moved part-way: {seen}"
        assert {maximum for _, _, maximum in seen} == {big.stat().st_size}
        assert [value for _, value, _ in seen] == sorted(value for _, value, _ in seen), "the bar went back"
        moving = [at for at, value, maximum in seen if 0 < value < maximum]
        assert moving[-1] - moving[0] > 0.5, f"the bar was part-way for less than half a second: {seen}"
        done = find(owner, f'#upload-results li[data-filename="{big.name}"]')
        assert "ok" in classes(done), done.text
        assert not owner.find_elements(By.CSS_SELECTOR, "#upload-results progress")
        assert mid_upload == [], json.dumps(mid_upload, indent=1)


def test_every_page_is_accessible_and_its_console_clean(
    owner: WebDriver, staff: WebDriver, site: Site, tmp_path: Path, axe_source: str
) -> None:
    """axe-core finds no WCAG 2.1 A/AA violation on any page, in any state, in Danish or English;
    and no page's console has a CSP violation or a script error."""
    found: dict[str, list[str]] = {}
    for browser, language in ((owner, "da"), (staff, "en")):
        found.update(_tour(browser, site, language, tmp_path, axe_source))
    assert not any(found.values()), json.dumps({k: v for k, v in found.items() if v}, indent=1, ensure_ascii=False)
    assert len(found) == 2 * 19, sorted(found)


def _tour(browser: WebDriver, site: Site, language: str, tmp_path: Path, axe_source: str) -> dict[str, list[str]]:
    """Visit every page and state in ``language``; return axe's violations and the console's problems per page."""
    found: dict[str, list[str]] = {}

    def check(name: str) -> None:
        assert find(browser, "html").get_attribute("lang") == language, name
        found[f"{language} {name}"] = axe_violations(browser, axe_source) + console_problems(browser)

    # The public site.
    browser.get(f"{site.url}/?lang={language}")
    check("front page")
    browser.execute_cdp_cmd("Network.enable", {})
    basic = base64.b64encode(":".join(site.crawler).encode()).decode()
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {basic}"}})
    try:
        browser.get(site.url + "/protected/")
        assert browser.find_elements(By.CSS_SELECTOR, "main a[href^='/files/']"), browser.page_source
        check("protected index")
    finally:
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
    browser.get(site.url + "/access/")
    check("access form")
    click_and_load(browser, find(browser, "form[action$='/access/'] button[type=submit]"))
    assert browser.find_elements(By.CSS_SELECTOR, "[aria-invalid=true]")
    check("access form with errors")
    filed = site.archive.access.file({**REQUEST_FIELDS, "institution": f"Tilgængelighed {language}"})
    approval = site.archive.access.approve(filed.id, valid_days=30)
    browser.get(f"{site.url}/access/release/{approval.release_token}")
    check("release page")
    click_and_load(browser, find(browser, "main form button[type=submit]"))
    assert find(browser, "#password").text
    check("release page, released")
    browser.get(f"{site.url}/access/release/{approval.release_token}")
    check("release page, spent")
    browser.get(site.url + "/no-such-page")
    check("404 page")

    # The console.
    browser.get(site.url + "/admin/login")
    username = find(browser, "input[autocomplete=username]")
    assert (username.get_attribute("value"), username.get_attribute("hidden")) == ("owner", "true")
    check("sign-in page")
    find(browser, "#password").send_keys("not the password")
    click_and_load(browser, find(browser, "#sign-in"))
    check("sign-in page, wrong password")
    sign_in(browser, site)
    check("items")
    browser.get(site.url + "/admin/?q=brochure&visibility=public&sort=retained&order=desc")
    check("items, filtered")
    browser.get(site.url + "/admin/upload")
    check("upload")
    good = tmp_path / f"Nyhedsbrev {language}.pdf"
    good.write_bytes(pdf_bytes(f"Nyhedsbrev {language}"))
    bad = tmp_path / f"Prisliste {language}.pdf"
    bad.write_bytes(zip_bytes())
    find(browser, "#files").send_keys(f"{good}\n{bad}")
    find(browser, "#upload-button").click()
    wait(browser, 20).until(
        lambda b: len(b.find_elements(By.CSS_SELECTOR, "#upload-results li.ok, #upload-results li.error")) == 2
    )
    check("upload, published and refused")
    site.archive.access.file({**REQUEST_FIELDS, "institution": f"Afventer {language}"})
    browser.get(site.url + "/admin/requests")
    assert browser.find_elements(By.CSS_SELECTOR, "#requests form.decide")
    check("requests")
    click_and_load(browser, browser.find_elements(By.CSS_SELECTOR, "#requests button.approve")[0])
    assert find(browser, "#release-link").text
    check("requests, approved")
    browser.get(site.url + "/admin/audit")
    check("audit log")
    click_and_load(browser, find(browser, "#verify"))
    assert find(browser, "#verify-result")
    check("audit log, verified")
    click_and_load(browser, find(browser, "#sign-out"))
    check("signed out")
    return found


def test_upload_approve_and_withdraw_with_the_keyboard_only(owner: WebDriver, site: Site, tmp_path: Path) -> None:
    sign_in(owner, site)

    # Upload: TAB to the file input (the file is chosen in the system's dialog; here the driver
    # types its path), on through title and slug to the access, the arrow keys choose public,
    # TAB to the button, ENTER.
    owner.get(site.url + "/admin/upload")
    chosen = tmp_path / "Tastatur.pdf"
    chosen.write_bytes(pdf_bytes("Tastatur"))
    owner.find_element(By.TAG_NAME, "body").click()
    tab_to(owner, "#files").send_keys(str(chosen))
    press(owner, Keys.TAB)
    press(owner, "Tastaturbrochure")  # the title
    tab_to(owner, "input[name=visibility]:checked")
    press(owner, Keys.ARROW_UP)
    assert find(owner, "input[name=visibility][value=public]").is_selected()
    tab_to(owner, "#upload-button")
    press(owner, Keys.ENTER)
    wait(owner, 20).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#upload-results li.ok"))
    [published] = [v for v in site.archive.versions() if v.filename == chosen.name]
    assert (published.title, published.visibility) == ("Tastaturbrochure", PUBLIC)

    # Approve: TAB to the request's button, ENTER; the release link is shown.
    filed = site.archive.access.file({**REQUEST_FIELDS, "institution": "Tastatur Bibliotek"})
    owner.get(site.url + "/admin/requests")
    owner.find_element(By.TAG_NAME, "body").click()
    tab_to(owner, f'tr[data-request="{filed.id}"] button.approve')
    press(owner, Keys.ENTER)
    wait(owner).until(lambda b: b.find_elements(By.ID, "release-link"))
    assert find(owner, f'#requests tr[data-request="{filed.id}"] td.status').text == da("approved, not yet released")

    # Withdraw: the version whose retention is over; TAB to its button, ENTER.
    old = site.old
    owner.get(site.url + "/admin/")
    owner.find_element(By.TAG_NAME, "body").click()
    tab_to(owner, f'tr[data-slug="{old.slug}"][data-version="{old.number}"] button:not([disabled])')
    press(owner, Keys.ENTER)
    wait(owner).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".flash"))
    assert find(owner, ".flash").text == da("Withdrew %(slug)s version %(number)d.", slug=old.slug, number=old.number)
    [gone] = [v for v in site.archive.versions(include_withdrawn=True) if v.id == old.id]
    assert gone.withdrawn


def test_the_favicon_is_a_static_file_browsers_keep(site: Site) -> None:
    icon = requests.get(site.url + "/favicon.ico", timeout=10)
    assert icon.status_code == 200
    assert icon.headers["Content-Type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert "public" in icon.headers["Cache-Control"] and "max-age=604800" in icon.headers["Cache-Control"]
    again = requests.get(site.url + "/favicon.ico", headers={"If-None-Match": icon.headers["ETag"]}, timeout=10)
    assert again.status_code == 304
