"""The crawl budget, as the deposit crawler counts it (issue 21, part 6).

A file a default harvest cannot fetch whole in 20 minutes at 500 KiB/s, and a
site whose retained versions add up to more than a default job fetches from one
domain, are warned of when published (CLI, API, console), by `pligt check`, and
on the access page the institution's staff read. The figures live in one place,
pligt/core/crawl_budget.py; the tests use small budgets through the settings.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from flask.testing import FlaskClient

from pligt.core.crawl_budget import FILE_BUDGET_BYTES
from pligt.core.crawl_budget import FILE_TOO_LARGE
from pligt.core.crawl_budget import SITE_BUDGET_BYTES
from pligt.core.crawl_budget import SITE_TOO_LARGE
from pligt.core.crawl_budget import BudgetWarning
from pligt.core.crawl_budget import CrawlBudget
from pligt.core.crawl_budget import budget_warnings
from pligt.settings import load_settings
from pligt.web.services import pligt
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.app import make_app
from tests.support.cli import run_cli
from tests.support.data import pdf_bytes

BIG = pdf_bytes("stor", pad=3000)  # a little over 3,000 bytes
SMALL = pdf_bytes("lille")
#: Budgets that make BIG too large for one fetch, and BIG plus SMALL too much for one job.
LIMITS = {"PLIGT_FETCH_BUDGET_BYTES": "2000", "PLIGT_SITE_BUDGET_BYTES": str(len(BIG) + len(SMALL) - 1)}


def with_limits(instance: Instance, clock: Clock, limits: dict[str, str]) -> FlaskClient:
    return make_app(load_settings(instance.path, env=limits), clock).test_client()


def publish_cli(instance: Instance, tmp_path: Path, data: bytes, name: str, env: dict[str, str]) -> list[str]:
    """Publish a file with `pligt add`; return the warnings it printed."""
    path = tmp_path / name
    path.write_bytes(data)
    result = run_cli("add", str(path), "--public", "--instance", str(instance.path), env=env)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("pligt: warning: ")]


def check(instance: Instance, env: dict[str, str]) -> tuple[str, dict[str, object]]:
    text = run_cli("check", "--instance", str(instance.path), env=env)
    assert text.returncode == 0, text.stdout + text.stderr  # a warning, not a failure
    as_json = run_cli("check", "--json", "--instance", str(instance.path), env=env)
    assert as_json.returncode == 0, as_json.stderr
    return text.stdout, json.loads(as_json.stdout)


# -- the decision, and its figures ----------------------------------------------------------


def test_the_budgets_are_netarchivesuites_defaults() -> None:
    # fetchHttp.timeoutSeconds=1200 at disposition.maxPerHostBandwidthUsageKbSec=500 (Heritrix's KB: 1,024
    # bytes), and defaultMaxbytes=1000000000 per domain.
    assert FILE_BUDGET_BYTES == 1200 * 500 * 1024 == 614_400_000
    assert SITE_BUDGET_BYTES == 1_000_000_000
    assert CrawlBudget() == CrawlBudget(FILE_BUDGET_BYTES, SITE_BUDGET_BYTES)


def test_the_decision_warns_above_each_budget_and_not_at_it() -> None:
    budget = CrawlBudget(file_bytes=100, site_bytes=250)
    assert budget_warnings([("a", 100), ("b", 100)], 200, budget) == []
    assert budget_warnings([("a", 100)], 250, budget) == []  # at the budget: it still fits
    assert budget_warnings([("a", 101), ("b", 50)], 251, budget) == [
        BudgetWarning(FILE_TOO_LARGE, 101, 100, "a"),
        BudgetWarning(SITE_TOO_LARGE, 251, 250),
    ]
    file_text, site_text = (
        w.text() for w in budget_warnings([("kursus.mp4", 700_000_000)], 1_500_000_000, CrawlBudget())
    )
    assert file_text.startswith("kursus.mp4 is 700 MB: larger than the deposit crawler's per-file budget of 614 MB")
    assert "1200 s at 500 KiB/s" in file_text
    assert site_text.startswith("the retained versions add up to 1,500 MB: more than the deposit crawler's budget")
    assert "1,000 MB per domain and job" in site_text


# -- when published -------------------------------------------------------------------------


def test_the_cli_warns_when_publishing_beyond_a_budget(instance: Instance, tmp_path: Path) -> None:
    assert publish_cli(instance, tmp_path, SMALL, "lille.pdf", LIMITS) == []  # below both
    warnings = publish_cli(instance, tmp_path, BIG, "stor.pdf", LIMITS)
    assert len(warnings) == 2
    assert "stor.pdf is 3," in warnings[0] and "per-file budget of 2,000 bytes" in warnings[0]
    assert f"add up to {len(BIG) + len(SMALL):,} bytes" in warnings[1] and "per domain and job" in warnings[1]


def test_the_api_warns_when_publishing_beyond_the_site_budget(instance: Instance, clock: Clock) -> None:
    client = with_limits(instance, clock, {"PLIGT_SITE_BUDGET_BYTES": str(len(BIG) + len(SMALL) - 1)})
    first = client.post("/api/items", query_string={"filename": "stor.pdf"}, data=BIG, auth=instance.owner_auth)
    assert (first.status_code, first.get_json()["warnings"]) == (201, [])
    second = client.post("/api/items", query_string={"filename": "lille.pdf"}, data=SMALL, auth=instance.owner_auth)
    assert second.status_code == 201
    [warning] = second.get_json()["warnings"]
    assert warning.startswith(f"the retained versions add up to {len(BIG) + len(SMALL):,} bytes")


def test_the_console_shows_the_warnings_of_an_upload(instance: Instance, clock: Clock) -> None:
    client = with_limits(instance, clock, LIMITS)
    login = client.get("/admin/login?lang=en").text
    token = re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', login)
    assert token
    signed_in = client.post("/admin/login", data={"password": instance.owner.password, "csrf_token": token.group(1)})
    assert signed_in.status_code == 302
    form = client.get("/admin/upload").text
    token = re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', form)
    assert token
    page = client.post(
        "/admin/upload",
        data={"csrf_token": token.group(1), "visibility": "protected", "files": (io.BytesIO(BIG), "stor.pdf")},
        content_type="multipart/form-data",
    )
    assert page.status_code == 200, page.text
    # The console words it in the page's language, sizes as the page shows them.
    assert "stor.pdf is 3.1 kB" in page.text and "per-file budget of 2.0 kB" in page.text


# -- pligt check ------------------------------------------------------------------------------


def test_check_warns_of_each_file_and_of_the_site(instance: Instance, tmp_path: Path) -> None:
    publish_cli(instance, tmp_path, BIG, "stor.pdf", {})
    publish_cli(instance, tmp_path, SMALL, "lille.pdf", {})

    text, facts = check(instance, {})  # the default budgets: nothing near them
    assert "crawl budget: ok (no file over 614,400,000 bytes, the site under 1,000,000,000)" in text
    assert facts["crawl_budget"] == []

    text, facts = check(instance, LIMITS)
    assert "crawl budget: warning" in text
    lines = [line for line in text.splitlines() if line.startswith("  warning: ")]
    assert len(lines) == 2
    assert "stor v1 (stor.pdf) is 3," in lines[0]
    assert f"add up to {len(BIG) + len(SMALL):,} bytes" in lines[1]
    budget = facts["crawl_budget"]
    assert isinstance(budget, list)
    assert [(w["kind"], w["name"], w["size"], w["budget"]) for w in budget] == [
        ("file", "stor v1 (stor.pdf)", len(BIG), 2000),
        ("site", None, len(BIG) + len(SMALL), len(BIG) + len(SMALL) - 1),
    ]


def test_a_withdrawn_version_does_not_count(instance: Instance, clock: Clock) -> None:
    app = make_app(instance.settings, clock)
    with app.app_context():
        archive = pligt().archive
    archive.publish([BIG], filename="stor.pdf", visibility="public")
    archive.publish([SMALL], filename="lille.pdf", visibility="public")
    clock.advance(days=200)  # past its six months
    archive.withdraw("stor", 1)
    archive.checkpoints.wait()

    _, facts = check(instance, LIMITS)
    assert facts["crawl_budget"] == []  # a withdrawn version answers 410: no harvest fetches it


# -- the access page ------------------------------------------------------------------------


def test_the_access_page_tells_the_institution_before_a_harvest(instance: Instance, clock: Clock) -> None:
    client = with_limits(instance, clock, LIMITS)
    quiet = client.get("/access/?lang=en").text
    assert "Before a harvest" not in quiet
    for name, data in (("stor.pdf", BIG), ("lille.pdf", SMALL)):
        assert (
            client.post("/api/items", query_string={"filename": name}, data=data, auth=instance.owner_auth).status_code
            == 201
        )

    page = client.get("/access/?lang=en").text
    assert "Before a harvest" in page
    assert "One file here is 3," in page and "(2,000 bytes, what arrives in 20 minutes at 500 KiB/s)" in page
    assert f"The material here adds up to {len(BIG) + len(SMALL):,} bytes" in page
    assert "stor.pdf" not in page  # counts and sizes only: a protected file's name is not for a public page
    danish = client.get("/access/?lang=da").text
    assert "Før en høstning" in danish and "Materialet her fylder i alt" in danish


def test_the_access_page_is_quiet_below_the_budgets(instance: Instance, clock: Clock) -> None:
    client = with_limits(instance, clock, {})
    for name, data in (("stor.pdf", BIG), ("lille.pdf", SMALL)):
        assert (
            client.post("/api/items", query_string={"filename": name}, data=data, auth=instance.owner_auth).status_code
            == 201
        )
    assert "Before a harvest" not in client.get("/access/?lang=en").text
