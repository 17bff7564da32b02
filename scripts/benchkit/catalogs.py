"""SQLite beside PostgreSQL: the download and the Heritrix pattern on the two catalogs, interleaved.

``scripts/bench --catalogs`` (``python -m benchkit.catalogs``). A table of
``scripts/bench`` and one of ``scripts/bench --catalog postgresql`` are taken
minutes apart, and on a machine that others load, the load moves more than the
catalog does. Here two instances with the same protected small files, one per
catalog, are served at once (``pligt serve`` defaults, PostgreSQL in a
throw-away cluster on loopback with fsync and synchronous commits on, as SQLite
syncs each commit), and each round loads one, then the other (the
order alternating), with wrk: the deposit crawler's pattern (HTTP/1.0, a
connection per request, credentials up front) over every URL, and a 401-then-200
per URL. The table gives the medians over the
rounds and PostgreSQL's figure as a share of SQLite's (the issue's target:
within 10 %).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.support.postgres import start_cluster

from .common import log
from .dataset import make_instance
from .dataset import write_small
from .patterns import Target
from .patterns import check
from .patterns import small_paths
from .patterns import validators
from .patterns import write_script
from .patterns import wrk_pattern
from .servers import clean_env
from .servers import start_pligt

PATTERNS = {
    "crawler": "deposit crawler: HTTP/1.0, credentials up front (req/s)",
    "heritrix-close": "401 then 200 per URL, HTTP/1.0 (req/s)",
}


def main(argv: list[str] | None = None) -> int:
    """Measure; print the table."""
    parser = argparse.ArgumentParser(prog="scripts/bench --catalogs", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=200, help="protected 4 KiB files per instance")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=4, help="per wrk run")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pligt-bench-catalogs-"))
    stack: list[Callable[[], None]] = []
    try:
        cluster = start_cluster(durable=True)
        stack.append(cluster.remove)
        env = clean_env(0)
        write_small(work / "www", args.items)
        targets: dict[str, tuple[Target, tuple[str, str]]] = {}
        for name, catalog in (("sqlite", None), ("postgresql", cluster.new_database())):
            instance = make_instance(work / name, env, args.items, catalog)
            server = start_pligt(instance.path, env, work / f"{name}.log")
            stack.append(server.stop)
            target = Target(name, server.base, small_paths("", args.items, pligt=True), [], [])
            validators(target, instance.crawler, revisit=False)
            targets[name] = (target, instance.crawler)
        figures: dict[tuple[str, str], list[float]] = {}
        for n in range(args.rounds):
            order = list(targets) if n % 2 == 0 else list(reversed(targets))
            for pattern in PATTERNS:
                for name in order:
                    target, auth = targets[name]
                    result = wrk_pattern(write_script(work, target, pattern, auth), target.base, args.seconds)
                    problem = check(result, pattern)
                    if problem:
                        log(f"{name} {pattern}: {problem}")
                    figures.setdefault((pattern, name), []).append(result.requests_per_s)
                    log(f"round {n + 1}: {name} {pattern} {result.requests_per_s:,.0f} req/s")
        print(table(figures, args))
        return 0
    finally:
        for stop in reversed(stack):
            stop()
        shutil.rmtree(work, ignore_errors=True)


def table(figures: dict[tuple[str, str], list[float]], args: argparse.Namespace) -> str:
    """The medians per pattern and catalog, and PostgreSQL's as a share of SQLite's."""
    lines = [
        f"SQLite beside PostgreSQL: {args.items} protected 4 KiB files, wrk -t2 -c16, {args.rounds} rounds "
        f"of {args.seconds} s each, interleaved (medians; every round's figure in brackets)",
        "",
        f"{'metric':48}  {'SQLite':>8}  {'PostgreSQL':>10}  {'PG ÷ SQLite':>11}",
    ]
    for pattern, label in PATTERNS.items():
        sqlite, postgres = figures[(pattern, "sqlite")], figures[(pattern, "postgresql")]
        a, b = statistics.median(sqlite), statistics.median(postgres)
        lines.append(f"{label:48}  {a:>8,.0f}  {b:>10,.0f}  {b / a:>10.2f}×")
        rounds = "  ".join("[" + ", ".join(f"{x:,.0f}" for x in found) + "]" for found in (sqlite, postgres))
        lines.append(f"{'':48}  {rounds}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
