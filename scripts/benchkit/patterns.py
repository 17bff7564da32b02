"""Crawler request patterns under wrk, on Pligt, nginx and copyparty.

The deposit crawler (Heritrix under NetarchiveSuite, read from its source: ../shared/CRAWLER.md)
pays one 401 per server and job, then sends its credential up front with every request, each
``GET … HTTP/1.0`` with ``Connection: close`` on a new TCP connection, and never revisits with
conditional requests. wrk's Lua hooks make each pattern: ``request()`` builds the next request,
``response()`` sees its status. The scripts are written into the run's folder, one per server
and pattern:

- ``crawler``: the deposit crawler's real pattern: HTTP/1.0, ``Connection: close`` (a TCP
  connection per request), credentials up front, every answer a ``200`` — the one with a target;
- ``heritrix-close``: every URL first without credentials, in HTTP/1.0 with a connection per
  request; each ``401`` queues that URL again with them, sent before any new URL (Heritrix with
  Digest, or another client that never sends credentials ahead). Requests per second count both
  the 401 and the 200 (URLs per second are half);
- ``revisit``: credentials and each URL's own ``If-None-Match`` and ``If-Modified-Since`` (read
  from a first authenticated pass), every answer a ``304`` (wget, httrack, browsers; never
  Netarkivet).

Each script counts the statuses it saw and prints them in ``done()``; a pattern whose answers are
not what it should get is noted under the table. copyparty (PyPI ``copyparty`` 1.20.x, hash-locked in
``requirements/tools/copyparty.txt``) goes into a virtual environment of its own in the run's
folder, never into Pligt's; it answers an anonymous GET with a challenge only for a User-Agent
matching ``--dav-ua1``, so every pattern sends one that does (``heritrix``), and it has no ETag, so
it has no revisit figure.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.net import ServerDidNotStart
from tests.support.net import free_port
from tests.support.net import start_process
from tests.support.net import stop_process
from tests.support.tools import tool_venv

from .common import Failed
from .common import log
from .common import run
from .dataset import small_name
from .measure import Wrk
from .measure import basic
from .measure import parse_wrk

#: Matches copyparty's --dav-ua1 (and not its --ua-nodav, which takes every "Mozilla/…").
USER_AGENT = "heritrix/3.4.0 (pligt benchmark; +http://netarkivet.dk/webcrawler/)"
ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
PATTERNS = ("crawler", "heritrix-close", "revisit")
#: What each pattern's answers must be.
EXPECTED = {"crawler": {200}, "heritrix-close": {401, 200}, "revisit": {304}}

_LUA = r"""
-- Written by scripts/benchkit/patterns.py: pattern "%(pattern)s" on %(server)s.
local mode = "%(pattern)s"
local paths = { %(paths)s }
local tags = { %(tags)s }
local dates = { %(dates)s }
local auth = "%(auth)s"
local common = "User-Agent: %(user_agent)s\r\nAccept: %(accept)s\r\n"
local version, connection = "HTTP/1.1", ""
if mode == "heritrix-close" or mode == "crawler" then version, connection = "HTTP/1.0", "Connection: close\r\n" end
local plain, authed = {}, {}
local n = 0
local waiting, w_head, w_tail = {}, 1, 0  -- URLs asked without credentials, not yet answered
local retry, r_head, r_tail = {}, 1, 0    -- URLs answered 401, to ask again with credentials
counts = {}
unchallenged = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local host = "Host: " .. wrk.headers["Host"] .. "\r\n"
  for i, path in ipairs(paths) do
    local head = "GET " .. path .. " " .. version .. "\r\n" .. host .. common .. connection
    plain[i] = head .. "\r\n"
    local extra = "Authorization: " .. auth .. "\r\n"
    if mode == "revisit" then
      extra = extra .. "If-None-Match: " .. tags[i] .. "\r\nIf-Modified-Since: " .. dates[i] .. "\r\n"
    end
    authed[i] = head .. extra .. "\r\n"
  end
end

local function after401()
  return mode == "heritrix-close"
end

function request()
  if after401() and r_tail >= r_head then
    local i = retry[r_head]
    retry[r_head] = nil
    r_head = r_head + 1
    return authed[i]
  end
  n = n %% #paths + 1
  if after401() then
    w_tail = w_tail + 1
    waiting[w_tail] = n
    return plain[n]
  end
  return authed[n]
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if status == 401 then
    local realm = false
    for name, value in pairs(headers) do
      if string.lower(name) == "www-authenticate" and string.find(value, 'realm="', 1, true) then realm = true end
    end
    if not realm then unchallenged = unchallenged + 1 end
    if after401() and w_tail >= w_head then
      local i = waiting[w_head]
      waiting[w_head] = nil
      w_head = w_head + 1
      r_tail = r_tail + 1
      retry[r_tail] = i
    end
  end
end

function done(summary, latency, requests)
  local total, missing = {}, 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("counts")) do total[status] = (total[status] or 0) + count end
    missing = missing + thread:get("unchallenged")
  end
  local parts = {}
  for status, count in pairs(total) do parts[#parts + 1] = status .. "=" .. count end
  io.write("STATUSES " .. table.concat(parts, " ") .. " unchallenged=" .. missing .. "\n")
end
"""


def _lua_strings(values: list[str]) -> str:
    return ", ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)


@dataclass
class Target:
    """One server's copy of the URL set: its base URL, paths and (for revisits) validators."""

    name: str
    base: str
    paths: list[str]
    etags: list[str]
    dates: list[str]


@dataclass
class PatternRun:
    """One wrk run of a pattern: wrk's figures and the statuses the script counted."""

    wrk: Wrk
    statuses: dict[int, int]
    unchallenged: int

    @property
    def requests_per_s(self) -> float:
        return self.wrk.requests_per_s


def validators(target: Target, auth: tuple[str, str], revisit: bool) -> None:
    """Fill in each path's ETag and Last-Modified from one authenticated GET (a first harvest)."""
    target.etags, target.dates = [], []
    with requests.Session() as session:
        session.headers["User-Agent"] = USER_AGENT
        session.auth = auth
        for path in target.paths:
            response = session.get(target.base + path, timeout=30)
            if response.status_code != 200:
                raise Failed(f"{target.name}: {path} answered {response.status_code} to the crawler's credentials")
            etag = response.headers.get("ETag", "")
            if revisit and not etag:
                raise Failed(f"{target.name}: {path} has no ETag")
            target.etags.append(etag)
            target.dates.append(response.headers.get("Last-Modified", ""))


def write_script(folder: Path, target: Target, pattern: str, auth: tuple[str, str]) -> Path:
    """The Lua script of one pattern against one server."""
    path = folder / f"{target.name}-{pattern}.lua"
    path.write_text(
        _LUA
        % {
            "pattern": pattern,
            "server": target.name,
            "paths": _lua_strings(target.paths),
            "tags": _lua_strings(target.etags),
            "dates": _lua_strings(target.dates),
            "auth": basic(auth),
            "user_agent": USER_AGENT,
            "accept": ACCEPT,
        }
    )
    return path


def wrk_pattern(script: Path, base: str, seconds: int, connections: int = 16, threads: int = 2) -> PatternRun:
    """Run wrk with a pattern's script; parse its report and the script's status counts."""
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "30s"]
    out = run([*args, "-s", str(script), f"{base}/"], timeout=seconds + 60).stdout
    match = re.search(r"^STATUSES (.*) unchallenged=(\d+)$", out, re.MULTILINE)
    if match is None:
        raise Failed(f"no status counts in wrk's output for {script.name}:\n{out}")
    statuses = {int(k): int(v) for k, v in (part.split("=") for part in match.group(1).split())}
    return PatternRun(parse_wrk(out), statuses, int(match.group(2)))


def check(run_: PatternRun, pattern: str, connections: int = 16) -> str | None:
    """Say what is wrong with a run's answers, if anything."""
    unexpected = {s: c for s, c in run_.statuses.items() if s not in EXPECTED[pattern]}
    problems = []
    if unexpected:
        problems.append(f"unexpected statuses {unexpected}")
    if run_.unchallenged:
        problems.append(f"{run_.unchallenged} answers 401 without a realm")
    if pattern.startswith("heritrix") and abs(run_.statuses.get(401, 0) - run_.statuses.get(200, 0)) > connections:
        problems.append(f"401s and 200s do not pair up: {run_.statuses}")
    if run_.wrk.errors:
        problems.append(f"{run_.wrk.errors} socket errors")
    return "; ".join(problems) or None


# -- copyparty -------------------------------------------------------------------------------


@dataclass
class Copyparty:
    process: subprocess.Popen[bytes]
    base: str

    def stop(self) -> None:
        stop_process(self.process, timeout=30)


def install_copyparty(folder: Path) -> Path | None:
    """copyparty in a virtual environment of its own under ``folder``; None (and a log line) if it fails."""
    venv = folder / "copyparty-venv"
    try:
        program = tool_venv("copyparty", venv) / "copyparty"  # requirements/tools/copyparty.txt, hashes checked
        version = run([str(program), "--version"], timeout=60).stdout.splitlines()[0]
    except (subprocess.SubprocessError, OSError, IndexError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        log(f"copyparty could not be installed, so it is left out: {detail.strip()[-500:]}")
        return None
    log(f"installed {version}")
    return program


def start_copyparty(program: Path, folder: Path, root: Path, auth: tuple[str, str]) -> Copyparty:
    """copyparty on a free loopback port: ``root`` at /harvest, readable by ``auth`` only.

    Two cores for downloads (``-j 2``, as Pligt and nginx have two workers), usernames checked
    (``--usernames``), challenges for the benchmark's User-Agent (``--dav-ua1 heritrix``).
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [str(program), "-i", "127.0.0.1", "-p", str(port), "-q", "-j", "2", "--usernames"]
    argv += ["--dav-ua1", "heritrix", "-a", f"{auth[0]}:{auth[1]}", "-v", f"{root}:/harvest:r,{auth[0]}"]
    argv += ["--no-robots", "--hist", str(folder / "hist")]
    try:
        process = start_process(argv, folder / "copyparty.log", f"{base}/", timeout=60)
    except ServerDidNotStart as e:
        raise Failed(f"copyparty did not start: {e}") from e
    return Copyparty(process, base)


def copyparty_server(
    work: Path, root: Path, auth: tuple[str, str], stack: list[Callable[[], None]]
) -> Copyparty | None:
    """Install and start copyparty for the patterns; None if it cannot be had."""
    program = install_copyparty(work)
    if program is None:
        return None
    folder = work / "copyparty"
    folder.mkdir()
    server = start_copyparty(program, folder, root, auth)
    stack.append(server.stop)
    log(f"copyparty on {server.base}")
    return server


def small_paths(prefix: str, count: int, pligt: bool) -> list[str]:
    """The paths of the benchmark's small files: Pligt's version URLs, or the files in a folder."""
    names = [small_name(i) for i in range(count)]
    if pligt:
        return [f"/files/{name.removesuffix('.txt')}/v1/{name}" for name in names]
    return [f"{prefix}/{name}" for name in names]
