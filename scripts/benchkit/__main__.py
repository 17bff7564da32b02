"""``scripts/bench``: Pligt beside nginx, ``--profile``, or the medians of earlier runs (``--combine``)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from tests.support.net import ServerDidNotStart

from . import compare
from .common import Failed
from .common import MiB
from .plot import plot
from .profiling import profile
from .report import Results
from .report import combine
from .report import load_average
from .report import machine
from .report import report
from .report import to_json

#: The logs worth showing when a run fails.
_LOGS = ("pligt-main.log", "pligt-index.log", "nginx/error.log")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line of ``scripts/bench``."""
    parser = argparse.ArgumentParser(prog="scripts/bench", description=(compare.__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="about a minute: fewer items, shorter loads, no 1 GiB file"
    )
    parser.add_argument(
        "--catalog",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the instances' catalog: a SQLite file (default), or a database in a throw-away PostgreSQL cluster",
    )
    parser.add_argument("--tmpdir", type=Path, help="where the temporary folder goes (default: the system's)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (and say where it is)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--plot", type=Path, help="draw the ratios from --json's file into this PNG (needs matplotlib)")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="profile the hot paths with py-spy into DIR instead"
    )
    parser.add_argument("--profile-seconds", type=int, default=10)
    parser.add_argument(
        "--wait-idle",
        type=int,
        default=0,
        metavar="SECONDS",
        help="first wait up to this long for the 1-minute load average to fall below 0.5",
    )
    parser.add_argument(
        "--combine",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="print the medians of earlier runs' --json files (and write them to --json, draw --plot)",
    )
    return parser.parse_args(argv)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Save figures as --json does."""
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Run what the command line asks for; return the exit status."""
    args = parse_args(argv)
    if args.combine:
        data = combine([json.loads(p.read_text()) for p in args.combine])
        print(data["table"])
        if args.json:
            write_json(args.json, data)
        if args.plot:
            plot(data, args.plot)
        return 0
    if args.plot and args.json and args.json.is_file() and not args.profile:
        plot(json.loads(args.json.read_text()), args.plot)
        return 0

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    deadline = time.monotonic() + args.wait_idle
    while os.getloadavg()[0] >= 0.5 and time.monotonic() < deadline:
        time.sleep(5)
    plan = compare.Plan.make(args.quick, args.catalog)
    work = Path(tempfile.mkdtemp(prefix="pligt-bench-compare-", dir=args.tmpdir))
    results = Results(plan.quick, {**machine(), "catalog": plan.catalog})
    began = time.monotonic()
    if not run(args, plan, work, results):
        return 1
    if args.profile:
        return 0
    results.machine["load_end"] = load_average()
    print(report(results))
    print(f"\n(run took {time.monotonic() - began:.0f} s)")
    if args.json:
        write_json(args.json, to_json(results))
        if args.plot:
            plot(to_json(results), args.plot)
    return 0


def run(args: argparse.Namespace, plan: compare.Plan, work: Path, results: Results) -> bool:
    """The benchmark (or the profile) in ``work``; stop everything it started and remove ``work`` after.

    Returns whether it succeeded; says why not on stderr.
    """
    stack: list[Callable[[], None]] = []
    try:
        need = 3 * plan.upload_mib * MiB + 400 * MiB
        if shutil.disk_usage(work).free < need:
            raise Failed(f"{work} has too little free space; the benchmark needs about {need / MiB:,.0f} MiB")
        if args.profile:
            profile(plan.index_items, work, args.profile, args.profile_seconds, stack)
        else:
            compare.bench(plan, work, results, stack)
    except (Failed, ServerDidNotStart, requests.RequestException, subprocess.SubprocessError) as e:
        detail = getattr(e, "stderr", None) or ""
        print(f"bench: error: {e}\n{detail}", file=sys.stderr)
        for name in _LOGS:
            path = work / name
            if path.is_file():
                print(f"--- {name} (last lines) ---", file=sys.stderr)
                print("\n".join(path.read_text(errors="replace").splitlines()[-20:]), file=sys.stderr)
        return False
    finally:
        for stop in reversed(stack):
            try:
                stop()
            except Exception as e:  # clean up the rest all the same
                print(f"bench: while cleaning up: {e}", file=sys.stderr)
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return True


if __name__ == "__main__":
    sys.exit(main())
