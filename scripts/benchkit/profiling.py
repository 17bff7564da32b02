"""``--profile``: py-spy on both Pligt workers while wrk (or the owner's uploads) load a hot path."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from . import ROOT
from .common import Failed
from .common import MiB
from .common import log
from .dataset import Instance
from .dataset import make_instance
from .dataset import write_random
from .measure import curl_upload
from .measure import wrk
from .servers import Pligt
from .servers import clean_env
from .servers import start_pligt
from .servers import worker_pids

PY_SPY = Path(sys.executable).with_name("py-spy")
#: Frames every request passes through on its way in (threads, gunicorn's pool, Flask's dispatch,
#: the login decorator): left out of "total", where they would fill the list at 90-100 % each.
_OUTER = (
    "threading.py:",
    "concurrent/futures/thread.py:",
    "gunicorn/workers/gthread.py:ThreadWorker.handle",
    "flask/app.py:Flask.__call__",
    "flask/app.py:Flask.wsgi_app",
    "flask/app.py:Flask.full_dispatch_request",
    "flask/app.py:Flask.dispatch_request",
    "flask_httpauth.py:HTTPAuth.login_required.",
)
#: The two passes per target: every active (non-idle) thread, and only the GIL's holder.
_MODES: tuple[tuple[str, list[str]], ...] = (("active", []), ("gil", ["--gil"]))


@dataclass
class Target:
    """A hot path to profile: its name, URL and wrk's connections."""

    name: str
    url: str
    connections: int


@dataclass
class Profiled:
    """What the profile of one target needs: the server, the instance, its folder and the seconds."""

    server: Pligt
    instance: Instance
    work: Path
    out: Path
    seconds: int
    upload_source: Path


def profile(index_items: int, work: Path, out: Path, seconds: int, stack: list[Callable[[], None]]) -> None:
    """py-spy on both workers while wrk loads the 4 KiB download, then the protected index, then uploads.

    Two passes per target: every active (non-idle) thread, which shows where
    requests spend their time, waiting on SQLite included; and ``--gil``, only
    the thread holding the GIL, which shows what the Python CPU goes to.
    """
    if not PY_SPY.exists():
        raise Failed(f"{PY_SPY} is missing: {sys.executable} -m pip install py-spy")
    env = clean_env(0)
    log(f"making an instance with {index_items:,} protected items")
    instance = make_instance(work / "index", env, index_items)
    server = start_pligt(instance.path, env, work / "pligt.log")
    stack.append(server.stop)
    out.mkdir(parents=True, exist_ok=True)
    source = work / "upload.bin"
    write_random(source, 256 * MiB)
    run = Profiled(server, instance, work, out, seconds, source)
    for target in (
        Target("download", f"{server.base}/files/f00000/v1/f00000.txt", 16),
        Target("index", f"{server.base}/protected/", 4),
        Target("upload", f"{server.base}/api/items?visibility=protected&filename=", 1),
    ):
        settle(server.pid)  # requests queued by the last target's wrk must not leak into this profile
        if target.name != "upload":
            wrk(target.url, instance.crawler, 2, target.connections)  # warm-up, the slow hash in both workers
        for mode, flags in _MODES:
            profile_pass(run, target, mode, flags)


def profile_pass(run: Profiled, target: Target, mode: str, flags: list[str]) -> None:
    """One py-spy pass over both workers under load; save the merged stacks and print the top frames."""
    pids = worker_pids(run.server.pid)
    parts = [run.work / f"{target.name}-{mode}-{pid}.txt" for pid in pids]
    spies = [
        subprocess.Popen(
            [str(PY_SPY), "record", "--pid", str(pid), "--duration", str(run.seconds), "--rate", "200"]
            + ["--format", "raw", "--output", str(part), "--nonblocking", *flags],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for pid, part in zip(pids, parts, strict=True)
    ]
    settle(run.server.pid)
    log(f"profiling {target.name} ({mode}) for {run.seconds} s: py-spy on workers {pids}")
    figure = load(run, target, mode, spies)
    for spy in spies:
        _, err = spy.communicate(timeout=60)
        if spy.returncode != 0:
            raise Failed(f"py-spy failed: {err}")
    merged = merge(parts)
    saved = run.out / f"{target.name}-{mode}.collapsed.txt"
    saved.write_text("".join(f"{frames} {count}\n" for frames, count in sorted(merged.items())))
    print(
        f"\n== {target.name} ({mode} threads{', GIL holder only' if mode == 'gil' else ''}): {target.url} "
        f"under {figure}; stacks in {saved} ({saved.stat().st_size / 1024:,.0f} KiB)"
    )
    print_top(merged)


def load(run: Profiled, target: Target, mode: str, spies: list[subprocess.Popen[str]]) -> str:
    """Load the target while py-spy records; return what the load achieved, in words."""
    if target.name != "upload":
        result = wrk(target.url, run.instance.crawler, run.seconds + 2, target.connections)
        return f"wrk -t2 -c{target.connections}: {result.requests_per_s:,.1f} req/s, p99 {result.p99_ms:.1f} ms"
    # 256 MiB uploads one after the other, through the owner API, until py-spy is done.
    uploads, began = 0, time.monotonic()
    while any(spy.poll() is None for spy in spies) and time.monotonic() - began < run.seconds + 30:
        curl_upload(f"{target.url}u{mode}{uploads}.bin", run.instance.owner, run.upload_source, run.work)
        uploads += 1
    return f"{uploads * 256 / (time.monotonic() - began):,.0f} MiB/s over {uploads} uploads of 256 MiB"


def merge(parts: list[Path]) -> Counter[str]:
    """The raw stacks of several py-spy outputs, counted together."""
    merged: Counter[str] = Counter()
    for part in parts:
        for line in part.read_text().splitlines():
            frames, _, count = line.rpartition(" ")
            if frames:
                merged[frames] += int(count)
    return merged


def settle(pid: int, limit: float = 60) -> None:
    """Wait (at most ``limit`` seconds) until the server's workers are idle: under 10 % CPU over half a second."""
    deadline = time.monotonic() + limit
    processes = [psutil.Process(p) for p in worker_pids(pid)]
    while time.monotonic() < deadline:
        for process in processes:
            process.cpu_percent()
        time.sleep(0.5)
        if sum(process.cpu_percent() for process in processes) < 10:
            return


def parse_frame(frame: str) -> tuple[str, str]:
    """``func (path/file.py:123)`` as (``file.py:func``, ``file.py:123 func``), paths shortened."""
    match = re.match(r"^(.*) \((.*?)(?::(\d+))?\)$", frame)
    if not match:
        return frame, frame
    func, path, line = match.groups()
    for marker in ("site-packages/", f"{ROOT}/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{func}", f"{path}:{line} {func}"


def print_top(stacks: Counter[str], n: int = 10) -> None:
    """Print the top ``n`` frames by own time, by own time per line, and by total time."""
    total = sum(stacks.values())
    own: Counter[str] = Counter()
    own_lines: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line, count in stacks.items():
        frames = [parse_frame(f) for f in line.split(";")]
        own[frames[-1][0]] += count
        own_lines[frames[-1][1]] += count
        for function in {f[0] for f in frames}:
            if not function.startswith(_OUTER):
                inclusive[function] += count
    print(f"{total:,} samples, both workers")
    titles = ("own time", "own time, by line", "total time (below gunicorn's handle and Flask's dispatch)")
    for title, counter in zip(titles, (own, own_lines, inclusive), strict=True):
        print(f"-- top {n} by {title}")
        for frame, count in counter.most_common(n):
            print(f"  {100 * count / total:5.1f}%  {frame}")
