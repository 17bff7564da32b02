"""What sealing personal data costs (issue 23): approving, listing requests, the harvest report.

Builds an instance with 10,000 access requests (a few hundred approved, with
download records), then times each operation in this process (median of
several runs) and ``pligt requests --json`` as a process. Run it once with the
code before the change and once with it, and compare::

    git archive main | tar -x -C /tmp/pligt-before
    PYTHONPATH=/tmp/pligt-before .venv/bin/python scripts/privacy_cost.py build /tmp/before
    .venv/bin/python scripts/privacy_cost.py build /tmp/after
    # then in turn, several times (the machine's load moves both alike):
    PYTHONPATH=/tmp/pligt-before .venv/bin/python scripts/privacy_cost.py measure /tmp/before
    .venv/bin/python scripts/privacy_cost.py measure /tmp/after

(A measure approves 9 pending requests: each run measures other ones.)

Listing is measured twice: as the console, the API and ``pligt requests`` show it
(``list_requests_shown_s``: one page of the newest requests where the code pages,
every request where it does not), and every request with its fields opened
(``list_requests_all_s``, ``pligt requests --all``).

A measurement, not a test: the machine's other load moves the figures.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pligt
from pligt.instance import init_instance
from pligt.instance import open_instance
from pligt.settings import load_settings

REQUESTS = 10_000
APPROVED = 200
VERSIONS = 10
DOWNLOADS = 4_000


def median_seconds(run: Callable[[], object], times: int) -> float:
    spent = []
    for _ in range(times):
        start = time.perf_counter()
        run()
        spent.append(time.perf_counter() - start)
    return statistics.median(spent)


def build(folder: Path) -> None:
    settings = load_settings(folder, env={})
    init_instance(settings)
    _, archive = open_instance(folder)
    archive.access.max_pending = REQUESTS + 100
    for n in range(VERSIONS):
        archive.publish([f"%PDF-1.4 materiale {n}\n".encode()], filename=f"m{n}.pdf", visibility="protected")
    fields = {
        "institution": "Det Kgl. Bibliotek",
        "legal_basis": "",
        "message": "Vi anmoder om adgang til beskyttet materiale til pligtaflevering.",
    }
    with archive.catalog.transaction():  # one commit for the catalog (the filing itself is not measured)
        ids = [
            archive.access.file({**fields, "contact_name": f"Person {n}", "contact_email": f"person{n}@kb.dk"}).id
            for n in range(REQUESTS)
        ]
    versions = archive.versions()
    credentials = [archive.access.approve(i).credential for i in ids[:APPROVED]]
    now = archive.clock()
    rows = [
        (
            credentials[n % APPROVED].id,
            versions[n % VERSIONS].id,
            200,
            30,
            True,
            now - timedelta(minutes=n),
            "credential",
            None,
        )
        for n in range(DOWNLOADS)
    ]
    archive.catalog.record_downloads(rows)
    archive.catalog.close()


def measure(folder: Path) -> dict[str, float]:
    _, archive = open_instance(folder)
    pending = iter(r.id for r in archive.access.requests("pending"))
    paged = hasattr(archive.access, "page")  # code from before the pages lists every request
    shown = archive.access.page if paged else archive.access.requests
    figures = {
        "list_requests_shown_s": median_seconds(shown, 9),
        "list_requests_all_s": median_seconds(archive.access.requests, 9),
        "harvest_s": median_seconds(archive.harvest, 9),
        "approve_s": median_seconds(lambda: archive.access.approve(next(pending)), 9),
    }
    command = [str(Path(sys.executable).with_name("pligt")), "requests", "--json", "--instance", str(folder)]
    env = dict(os.environ)
    figures["pligt_requests_process_s"] = median_seconds(
        lambda: subprocess.run(command, check=True, capture_output=True, env=env), 5
    )
    every = command + (["--all"] if paged else [])
    figures["pligt_requests_all_process_s"] = median_seconds(
        lambda: subprocess.run(every, check=True, capture_output=True, env=env), 5
    )
    command = [str(Path(sys.executable).with_name("pligt")), "harvest", "--json", "--instance", str(folder)]
    figures["pligt_harvest_process_s"] = median_seconds(
        lambda: subprocess.run(command, check=True, capture_output=True, env=env), 5
    )
    archive.catalog.close()
    return figures


def main(argv: list[str]) -> None:
    """``build DIR`` and ``measure DIR`` apart (to measure two code bases in turn), or both in a temporary folder."""
    if len(argv) == 2 and argv[0] in ("build", "measure"):
        folder = Path(argv[1])
        if argv[0] == "build":
            started = time.perf_counter()
            build(folder)
            print(json.dumps({"built": str(folder), "build_s": round(time.perf_counter() - started, 1)}))
        else:
            code = str(Path(pligt.__file__).parent)
            print(json.dumps({"code": code, "requests": REQUESTS, **measure(folder)}, indent=1))
        return
    with tempfile.TemporaryDirectory(prefix="pligt-privacy-cost-") as temp:
        folder = Path(temp) / "instance"
        started = time.perf_counter()
        build(folder)
        built = time.perf_counter() - started
        figures = measure(folder)
    code = str(Path(pligt.__file__).parent)
    print(json.dumps({"code": code, "requests": REQUESTS, "build_s": round(built, 1), **figures}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
