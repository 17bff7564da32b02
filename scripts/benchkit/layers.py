"""Pligt's serving layers weighed: several source trees of Pligt beside nginx, interleaved.

``scripts/bench --layers NAME=TREE [NAME=TREE ...]`` (``python -m benchkit.layers``).
Each TREE is a checkout of Pligt (this one, or ``git worktree add`` of another
commit, or a copy with one layer switched off); each is served by ``pligt
serve`` with its defaults from this checkout's virtual environment, its own
``pligt`` package first on the path, over one instance of protected 4 KiB files.
nginx serves the same files. Each round loads every server in turn (the order
rotating), with wrk: the deposit crawler's pattern (HTTP/1.0, a connection per
request, credentials up front) and a 4 KiB download on kept-alive connections.
The table gives the medians over the rounds and each as a share of nginx's:
on a machine that others load, figures taken minutes apart differ more than
the layers do, so only figures taken side by side compare.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.net import free_port
from tests.support.net import start_process

from .common import Failed
from .common import log
from .dataset import make_instance
from .dataset import write_small
from .measure import wrk
from .patterns import Target
from .patterns import check
from .patterns import small_paths
from .patterns import validators
from .patterns import write_script
from .patterns import wrk_pattern
from .servers import DEFAULT_WORKERS
from .servers import Pligt
from .servers import clean_env
from .servers import start_nginx
from .servers import worker_pids

FIGURES = {
    "crawler": "deposit crawler: HTTP/1.0, credentials up front (req/s)",
    "keepalive": "4 KiB GET, credentials, kept-alive, wrk -c16 (req/s)",
}


def serve_tree(tree: Path, instance: Path, env: dict[str, str], log_file: Path) -> Pligt:
    """``pligt serve`` of the Pligt in ``tree`` (its package first on the path) on a free loopback port."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # -P: with -c, Python would put the working directory (this checkout) before PYTHONPATH, and
    # every tree would run this checkout's pligt.
    # It refuses to start if pligt still came from elsewhere.
    guard = f"import pathlib, pligt; assert pathlib.Path(pligt.__file__).is_relative_to({str(tree.resolve())!r})"
    argv = [sys.executable, "-P", "-c", f"{guard}; from pligt.cli import main; main()"]
    argv += ["serve", "--instance", str(instance), "--host", "127.0.0.1", "--port", str(port)]
    process = start_process(argv, log_file, f"{base}/healthz", env={**env, "PYTHONPATH": str(tree)})
    deadline = time.monotonic() + 30
    while len(worker_pids(process.pid)) < DEFAULT_WORKERS:
        if time.monotonic() > deadline:
            raise Failed(f"{tree}: pligt serve did not start its workers in 30 s")
        time.sleep(0.1)
    return Pligt(process, base)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench --layers", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("trees", nargs="+", metavar="NAME=TREE", help="a name for the table and a Pligt checkout")
    parser.add_argument("--items", type=int, default=200, help="protected 4 KiB files")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Measure; print the table."""
    args = parse_args(argv)
    trees = {name: Path(path).resolve() for name, _, path in (t.partition("=") for t in args.trees)}
    work = Path(tempfile.mkdtemp(prefix="pligt-bench-layers-"))
    stack: list[Callable[[], None]] = []
    try:
        env = clean_env(0)
        write_small(work / "www" / "harvest", args.items)
        instance = make_instance(work / "main", env, args.items)
        nginx = start_nginx(work / "nginx", work / "www", [instance.crawler])
        stack.append(nginx.stop)
        bases = {"nginx": (nginx.base, small_paths("/harvest", args.items, pligt=False))}
        for name, tree in trees.items():
            server = serve_tree(tree, instance.path, env, work / f"{name}.log")
            stack.append(server.stop)
            bases[name] = (server.base, small_paths("", args.items, pligt=True))
            log(f"{name}: {tree} on {server.base}")
        figures = measure(bases, instance.crawler, args, work)
        print(table(figures, args))
        return 0
    finally:
        for stop in reversed(stack):
            stop()
        shutil.rmtree(work, ignore_errors=True)


def measure(
    bases: dict[str, tuple[str, list[str]]], auth: tuple[str, str], args: argparse.Namespace, work: Path
) -> dict[tuple[str, str], list[float]]:
    """Every round: each server in turn (the order rotating), the crawler's pattern and the kept-alive GET."""
    figures: dict[tuple[str, str], list[float]] = {}
    targets = {}
    for name, (base, paths) in bases.items():
        target = Target(name, base, paths, [], [])
        validators(target, auth, revisit=False)
        targets[name] = target
    names = list(bases)
    for n in range(args.rounds):
        order = names[n % len(names) :] + names[: n % len(names)]
        for name in order:
            target = targets[name]
            script = write_script(work, target, "crawler", auth)
            result = wrk_pattern(script, target.base, args.seconds)
            problem = check(result, "crawler")
            if problem:
                log(f"{name} crawler: {problem}")
            figures.setdefault(("crawler", name), []).append(result.requests_per_s)
            kept = wrk(target.base + target.paths[0], auth, args.seconds, 16)
            figures.setdefault(("keepalive", name), []).append(kept.requests_per_s)
            log(f"round {n + 1}: {name} crawler {result.requests_per_s:,.0f}, kept-alive {kept.requests_per_s:,.0f}")
    return figures


def table(figures: dict[tuple[str, str], list[float]], args: argparse.Namespace) -> str:
    """Medians per figure and server, each as a share of nginx's."""
    names = sorted({name for _, name in figures}, key=lambda n: (n != "nginx", n))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"Pligt's layers beside nginx: {args.items} protected 4 KiB files, wrk -t2 -c16, {args.rounds} rounds "
        f"of {args.seconds} s, interleaved (medians; ÷ nginx in brackets); load average at the end {load}",
        "",
        f"{'metric':54}" + "".join(f"  {n:>16}" for n in names),
    ]
    for figure, label in FIGURES.items():
        reference = statistics.median(figures[(figure, "nginx")])
        cells = []
        for name in names:
            value = statistics.median(figures[(figure, name)])
            cells.append(f"{value:>8,.0f} ({value / reference:.2f}×)")
        lines.append(f"{label:54}" + "".join(f"  {c:>16}" for c in cells))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
