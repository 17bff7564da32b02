"""The owner's console and the public pages in a real browser: headless Chromium driven by
selenium against a real `pligt serve`.

The owner's browser speaks Danish (the default for a Danish publisher), the deposit
institution's staff browse in English in a second, separate browser session. On a failure
each test saves a screenshot of its browsers into tests/artifacts/.
"""

from __future__ import annotations

import gettext
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

import deposit.web
from archive import Archive
from archive.models import utcnow
from deposit.instance import build_archive
from deposit.settings import Settings
from deposit.settings import load_settings
from tests.support.access import REQUEST_FIELDS
from tests.support.cli import invoke
from tests.support.data import pdf_bytes
from tests.support.data import zip_bytes
from tests.support.servers import start_server
from tests.support.servers import stop_server

ARTIFACTS = Path(__file__).parent / "artifacts"

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
DANISH = gettext.translation("messages", Path(deposit.web.__file__).parent / "translations", languages=["da"])


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


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("browser")
    instance = root / "instance"
    initialised = invoke("init", "--json", "--instance", str(instance))
    assert initialised.exit_code == 0, initialised.stderr
    settings = load_settings(instance, env={})
    server = start_server(instance, root / "server.log")
    archive = build_archive(settings)
    try:
        yield Site(server.url, json.loads(initialised.stdout)["password"], settings, archive)
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
    # The driver's path is given: selenium-manager must never try to download one.
    os.environ["SE_OFFLINE"] = "true"
    try:
        browser = webdriver.Chrome(service=Service(_executable("chromedriver")), options=options)
    except WebDriverException as e:
        pytest.fail(f"Chromium did not start through chromedriver: {e.msg}", pytrace=False)
    browser.set_page_load_timeout(20)
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
    """Start a test signed out and without a language cookie; on failure save a screenshot."""
    browser.get(site.url + "/healthz")
    browser.delete_all_cookies()
    yield browser
    report = getattr(request.node, "rep_call", None)
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


def wait(browser: WebDriver, timeout: float = 10) -> WebDriverWait:
    return WebDriverWait(browser, timeout)


def find(browser: WebDriver, css: str) -> WebElement:
    return browser.find_element(By.CSS_SELECTOR, css)


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


def labels_missing(browser: WebDriver) -> list[str]:
    """Every form control a person can use that has neither a label nor an aria-label."""
    return browser.execute_script(
        """
        return Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
          .filter(e => !(e.labels && e.labels.length > 0) && !e.getAttribute('aria-label')
                       && !e.getAttribute('aria-labelledby'))
          .map(e => e.outerHTML);
        """
    )


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
    assert "ok" in ok.get_attribute("class").split()
    assert ok.text.startswith(da("Published") + " " + good.name)
    assert "(application/pdf)" in ok.text
    assert f"{da('retained until')} {retained}" in ok.text
    refused = find(owner, f'#upload-results li[data-filename="{bad.name}"]')
    assert "error" in refused.get_attribute("class").split()
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
    reason = find(owner, "#" + withdraw.get_attribute("aria-describedby"))
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
    refused = requests.get(site.url + "/protected/", auth=(username, password), timeout=10)
    assert refused.status_code == 401

    # The audit page: the head hash, and "verify now" says the log is intact.
    click_and_load(owner, find(owner, "nav.admin a[href$='/admin/audit']"))
    count, head = site.archive.verify_audit()
    assert find(owner, "#head").text == head
    click_and_load(owner, find(owner, "#verify"))
    result = find(owner, "#verify-result")
    assert "ok" in result.get_attribute("class").split()
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
    console = [r for r in reached if isinstance(r, str) and "/admin/" in r]
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
