"""The deposit crawler's budget, as NetarchiveSuite's default harvest counts it, and when to warn.

The figures, read from the source (see ``../shared/CRAWLER.md``):

- ``fetchHttp.timeoutSeconds=1200`` in NetarchiveSuite's default crawl template
  (``deploy/distribution/src/main/resources/order_templates_dist/default_orderxml.xml``):
  Heritrix gives one fetch at most 20 minutes, then drops it; the file is not harvested.
- ``disposition.maxPerHostBandwidthUsageKbSec=500`` in the same template, which Heritrix
  counts as ``500 * 1.024`` bytes a millisecond (``DispositionProcessor.politenessDelayFor``):
  512,000 bytes a second. Heritrix keeps to it by pausing *after* a fetch, not by slowing
  the transfer, so a fetch runs as fast as the network allows; at the 500 KiB/s a harvest
  is planned on, a file of more than 1200 s x 512,000 B/s = 614,400,000 bytes cannot
  arrive in time. That is the per-file budget: on a slower link it is less.
- ``settings.harvester.datamodel.domain.defaultMaxbytes=1000000000`` in NetarchiveSuite's
  harvester settings (``harvester/harvester-core/src/main/resources/dk/netarkivet/harvester/
  settings.xml``): a domain's default configuration, written into the job as
  ``quotaenforcer.groupMaxAllKb``. A job stops fetching from the domain after 1 GB, every
  byte counted (pages, files, the 401 answers), and every site under the same registered
  domain shares it. That is the per-site budget.

A harvest that runs into either is cut short, without an error anyone sees:
the owner should tell the institution, which can raise the domain's budget or
fetch the file another way. :func:`budget_warnings` decides, without I/O; the
publish path, ``pligt check`` and the access page ask it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: ``fetchHttp.timeoutSeconds``: the longest one fetch may take.
FETCH_TIMEOUT_SECONDS = 1200
#: ``disposition.maxPerHostBandwidthUsageKbSec`` = 500, in bytes a second (Heritrix's KB is 1,024 bytes).
HOST_BYTES_PER_SECOND = 500 * 1024
#: A file larger than this cannot be fetched whole in :data:`FETCH_TIMEOUT_SECONDS` at 500 KiB/s.
FILE_BUDGET_BYTES = FETCH_TIMEOUT_SECONDS * HOST_BYTES_PER_SECOND
#: ``defaultMaxbytes``: what one job fetches from a domain at most.
SITE_BUDGET_BYTES = 1_000_000_000

#: A file the crawler cannot fetch whole in time.
FILE_TOO_LARGE = "file"
#: A site whose retained versions add up to more than a job fetches from a domain.
SITE_TOO_LARGE = "site"


@dataclass(frozen=True)
class CrawlBudget:
    """What a default harvest job fetches: per file, and per site (domain)."""

    file_bytes: int = FILE_BUDGET_BYTES
    site_bytes: int = SITE_BUDGET_BYTES


@dataclass(frozen=True)
class BudgetWarning:
    """One way a default harvest would be cut short."""

    #: :data:`FILE_TOO_LARGE` or :data:`SITE_TOO_LARGE`.
    kind: str
    #: The file's size, or the site's retained bytes.
    size: int
    #: The budget it exceeds.
    budget: int
    #: The file (for :data:`FILE_TOO_LARGE`).
    name: str | None = None

    def text(self) -> str:
        """Say it in a sentence (the CLI and the API; the pages word it themselves)."""
        if self.kind == FILE_TOO_LARGE:
            return (
                f"{self.name} is {megabytes(self.size)}: larger than the deposit crawler's per-file budget of "
                f"{megabytes(self.budget)} (what arrives in {FETCH_TIMEOUT_SECONDS} s at "
                f"{HOST_BYTES_PER_SECOND // 1024} KiB/s in NetarchiveSuite's default harvest), so a harvest "
                "may not get it whole; consider "
                "splitting it, or tell the deposit institution"
            )
        return (
            f"the retained versions add up to {megabytes(self.size)}: more than the deposit crawler's budget of "
            f"{megabytes(self.budget)} per domain and job (NetarchiveSuite's default; the pages, and other sites on "
            "the same domain, count too), so a harvest will be cut short; tell the deposit institution, which "
            "can raise the domain's budget"
        )

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "name": self.name, "size": self.size, "budget": self.budget, "text": self.text()}


def budget_warnings(files: Iterable[tuple[str, int]], site_bytes: int, budget: CrawlBudget) -> list[BudgetWarning]:
    """Warn of each file larger than the per-file budget, then of a site larger than the per-site budget.

    :param files: the files to judge one by one: (name, size).
    :param site_bytes: the bytes of every retained version the crawler would fetch.
    """
    warnings = [
        BudgetWarning(FILE_TOO_LARGE, size, budget.file_bytes, name) for name, size in files if size > budget.file_bytes
    ]
    if site_bytes > budget.site_bytes:
        warnings.append(BudgetWarning(SITE_TOO_LARGE, site_bytes, budget.site_bytes))
    return warnings


def megabytes(size: int) -> str:
    """Say a size as the crawl settings count it (decimal megabytes), or exactly below one."""
    return f"{size / 1e6:,.0f} MB" if size >= 1_000_000 else f"{size:,} bytes"
