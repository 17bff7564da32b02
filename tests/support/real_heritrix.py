"""The deposit crawler itself: Heritrix 3 from Maven Central, one job run against a test server.

:func:`heritrix_home` brings the distribution (``org.archive.heritrix:heritrix:VERSION:zip:dist``)
with Maven into ``.cache/heritrix/`` of the checkout, once; Java is the machine's. :func:`launch`
writes a job folder from ``heritrix-job.cxml`` (NetarchiveSuite's settings, the seed, a pace, and
the ``HttpAuthenticationCredential`` bean exactly as Pligt handed it over) and starts
``bin/heritrix -r JOB`` in the foreground, which runs that one job and exits. :meth:`Job.wait`
reads what the crawler itself kept: every request and response record of its WARC files
(warcio) and every line of its ``crawl.log``.

Run as ``python -m tests.support.real_heritrix`` it only fetches the distribution (scripts/test
does, before pytest).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import zipfile
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator
from warcio.recordloader import ArcWarcRecord

from tests.support.net import free_port

#: 3.13.0 is the newest release on Maven Central (3.15.0, read for ../shared/CRAWLER.md, is not
#: published there) and the one NetarchiveSuite 8.1 pins.
VERSION = "3.13.0"
ARTIFACT = f"org.archive.heritrix:heritrix:{VERSION}:zip:dist"
ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "heritrix"
TEMPLATE = Path(__file__).with_name("heritrix-job.cxml")


class HeritrixUnavailable(RuntimeError):
    """Java, Maven or the distribution could not be had."""


class JobFailed(RuntimeError):
    """The job did not launch, or did not finish in its time."""


@dataclass(frozen=True)
class Pace:
    """The politeness of a job (DispositionProcessor): a delay after each fetch, a per-host bandwidth.

    The delay is clamp(``delay_factor`` x fetch time, ``min_delay_ms``, ``max_delay_ms``); the
    bandwidth cap (KB/s, 0: none) holds the host's next fetch back by size / cap. A
    ``Crawl-delay`` in robots.txt is honoured up to 300 s (the default, kept in both).
    """

    delay_factor: float
    min_delay_ms: int
    max_delay_ms: int
    kb_per_second: int

    def overrides(self) -> str:
        return "\n".join(
            [
                f"disposition.delayFactor={self.delay_factor}",
                f"disposition.minDelayMs={self.min_delay_ms}",
                f"disposition.maxDelayMs={self.max_delay_ms}",
                f"disposition.maxPerHostBandwidthUsageKbSec={self.kb_per_second}",
                # A retry after a lost connection waits 300 s at Netarkivet; a test would time out.
                "frontier.retryDelaySeconds=1",
            ]
        )


#: No waits: the test's own loopback server, a job of a few seconds.
FAST = Pace(0.0, 0, 0, 0)
#: NetarchiveSuite's default template: at most about 3.3 requests a second to one host.
NETARKIVET = Pace(1.0, 300, 1000, 500)


@dataclass(frozen=True)
class LogLine:
    """One line of ``crawl.log``: the final outcome of one URL."""

    status: int
    size: int
    url: str
    hops: str
    via: str
    mime: str
    #: When the fetch began, and how long it took (``20261208005138998+71``); none without a fetch.
    began: datetime | None
    duration_ms: int
    digest: str
    annotations: str


@dataclass(frozen=True)
class Exchange:
    """One request and its response, as the WARC's ``request`` and ``response`` records hold them."""

    url: str
    status: int
    request_line: str
    request_headers: dict[str, str]
    headers: dict[str, str]
    #: ``WARC-Payload-Digest``: ``sha1:`` + base32, as Heritrix computed it.
    digest: str
    #: The payload's own digests, computed here from the record.
    sha1: str
    sha256: str
    length: int
    payload: bytes

    def header(self, name: str) -> str | None:
        """A response header, its name in any case (a proxy may write ``Www-Authenticate``)."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    @property
    def authorization(self) -> str | None:
        return self.request_headers.get("Authorization")

    @property
    def path(self) -> str:
        return self.request_line.split(" ")[1]


@dataclass
class Harvest:
    """What a finished job left: its folder, its WARC exchanges in order, its crawl.log."""

    folder: Path
    seconds: float
    exchanges: list[Exchange] = field(default_factory=list)
    log: list[LogLine] = field(default_factory=list)

    def responses(self, url: str) -> list[Exchange]:
        """Every exchange for ``url``, in the order Heritrix wrote them (a 401, then its retry)."""
        return [e for e in self.exchanges if e.url == url]

    @property
    def web_log(self) -> list[LogLine]:
        """The crawl.log lines of HTTP(S) URLs (a name's DNS lookup has a line of its own first)."""
        return [line for line in self.log if line.url.startswith(("http://", "https://"))]

    def logged(self, url: str) -> LogLine:
        [line] = [line for line in self.log if line.url == url]
        return line


@dataclass
class Job:
    """A running ``bin/heritrix -r JOB``; :meth:`wait` for its :class:`Harvest`."""

    folder: Path
    process: subprocess.Popen[bytes]
    output: Path
    started: float
    timeout: float

    def wait(self) -> Harvest:
        """Wait for the job to finish and Heritrix to exit; read its WARCs and crawl.log.

        :raises JobFailed: if it does not exit in time, or exits without a finished crawl.
        """
        try:
            self.process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise JobFailed(f"Heritrix still running after {self.timeout:g} s:\n{self._tail()}") from None
        seconds = time.monotonic() - self.started
        launched = self.folder / "latest"
        if self.process.returncode != 0 or not (launched / "logs" / "crawl.log").exists():
            raise JobFailed(f"Heritrix exited with {self.process.returncode}:\n{self._tail()}")
        if "FINISHED" not in (self.folder / "job.log").read_text():
            raise JobFailed(f"the job did not finish:\n{self._tail()}")
        return Harvest(launched.resolve(), seconds, read_warcs(launched / "warcs"), read_crawl_log(launched))

    def wait_until_crawling(self, timeout: float = 120) -> None:
        """Return once the job has begun to crawl (its log says RUNNING), or it has exited."""
        deadline = time.monotonic() + timeout
        log = self.folder / "job.log"
        while time.monotonic() < deadline and self.process.poll() is None:
            if log.exists() and " RUNNING " in log.read_text():
                return
            time.sleep(0.1)

    def stop(self) -> None:
        """End the crawler (this process only): SIGTERM, then SIGKILL."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _tail(self) -> str:
        text = self.output.read_text(errors="replace") if self.output.exists() else ""
        return text[-4000:]


def heritrix_home(cache: Path = CACHE) -> Path:
    """Return the unpacked distribution, fetching it with Maven into ``cache`` the first time.

    ``PLIGT_HERITRIX_HOME`` names one unpacked elsewhere. The zip is unpacked into a
    temporary folder and renamed into place, so a half-unpacked tree is never used.

    :raises HeritrixUnavailable: without ``java`` or ``mvn``, or if Maven cannot fetch it.
    """
    given = os.environ.get("PLIGT_HERITRIX_HOME")
    home = Path(given) if given else cache / f"heritrix-{VERSION}"
    if (home / "bin" / "heritrix").exists():
        return home
    if given:
        raise HeritrixUnavailable(f"PLIGT_HERITRIX_HOME={given} holds no bin/heritrix")
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise HeritrixUnavailable(f"{tool} is not installed (scripts/test installs it)")
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / f"heritrix-{VERSION}-dist.zip"
    if not archive.exists():
        fetched = subprocess.run(
            ["mvn", "-q", "-B", "dependency:copy", f"-Dartifact={ARTIFACT}", f"-DoutputDirectory={cache}"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            cwd=cache,
        )
        if fetched.returncode != 0 or not archive.exists():
            raise HeritrixUnavailable(f"mvn could not fetch {ARTIFACT}:\n{fetched.stdout}{fetched.stderr}")
    unpacked = Path(tempfile.mkdtemp(dir=cache))
    with zipfile.ZipFile(archive) as z:
        z.extractall(unpacked)
    try:
        (unpacked / home.name).rename(home)
    except OSError:  # another run unpacked it meanwhile
        if not (home / "bin" / "heritrix").exists():
            raise
    shutil.rmtree(unpacked, ignore_errors=True)
    return home


def job_beans(seeds: list[str], credential_bean: str, pace: Pace, hosts: bool = False) -> str:
    """Return the job's ``crawler-beans.cxml``: the template with seeds, pace and the credential bean.

    With ``hosts``, a name DNS does not know is looked up by Java (in the job's hosts file).
    """
    overrides = pace.overrides() + ("\nfetchDns.acceptNonDnsResolves=true" if hosts else "")
    text = TEMPLATE.read_text()
    for token, value in (("@SEEDS@", "\n".join(seeds)), ("@OVERRIDES@", overrides)):
        text = text.replace(token, value)
    return text.replace("@CREDENTIAL@", credential_bean)


def launch(
    jobs: Path,
    name: str,
    seeds: list[str],
    credential_bean: str,
    pace: Pace,
    timeout: float = 300,
    hosts: dict[str, str] | None = None,
) -> Job:
    """Write job ``name`` under ``jobs`` and start Heritrix on it (``-r``: run it, then exit).

    The web console Heritrix insists on listens on a free loopback port, with a random
    operator password; nothing uses it. ``hosts`` (name: address) are resolved from a hosts
    file of the job's own (``jdk.net.hosts.file``), for a host name with a dot on loopback:
    Java sends no SNI for a name without one (``localhost``).
    """
    home = heritrix_home()
    folder = jobs / name
    folder.mkdir(parents=True)
    (folder / "crawler-beans.cxml").write_text(job_beans(seeds, credential_bean, pace, hosts=bool(hosts)))
    java = "-Xmx256m -XX:TieredStopAtLevel=1"
    if hosts:
        (folder / "hosts").write_text("".join(f"{address} {host}\n" for host, address in hosts.items()))
        java += f" -Djdk.net.hosts.file={folder / 'hosts'}"
    output = folder / "heritrix.out"
    operator = f"admin:{secrets.token_urlsafe(12)}"
    argv = ["bash", str(home / "bin" / "heritrix"), "-a", operator, "-b", "127.0.0.1", "-p", str(free_port())]
    env = {
        **os.environ,
        "FOREGROUND": "1",
        "HERITRIX_OUT": str(folder / "heritrix_out.log"),
        # A small heap, and the JIT's first tier only: a job of a few seconds starts faster.
        "JAVA_OPTS": java,
    }
    with output.open("wb") as out:
        process = subprocess.Popen(
            [*argv, "-j", str(jobs), "-r", name], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=home
        )
    return Job(folder, process, output, time.monotonic(), timeout)


def read_warcs(folder: Path) -> list[Exchange]:
    """Every request/response pair of the WARC files, in the order written (request after response)."""
    exchanges: list[Exchange] = []
    for path in sorted(folder.glob("*.warc*")):
        responses: dict[str, ArcWarcRecord] = {}
        payloads: dict[str, bytes] = {}
        with path.open("rb") as stream:
            for record in ArchiveIterator(stream):
                record_id = record.rec_headers.get_header("WARC-Record-ID")
                if record.http_headers is None:
                    continue
                if record.rec_type == "response":
                    responses[record_id] = record
                    payloads[record_id] = record.content_stream().read()
                elif record.rec_type == "request":
                    answered = record.rec_headers.get_header("WARC-Concurrent-To")
                    if answered in responses:
                        exchanges.append(_exchange(responses.pop(answered), payloads.pop(answered), record))
    return exchanges


def _exchange(response: ArcWarcRecord, payload: bytes, request: ArcWarcRecord) -> Exchange:
    assert response.http_headers is not None and request.http_headers is not None
    sha1 = "sha1:" + base64.b32encode(hashlib.sha1(payload).digest()).decode("ascii")  # noqa: S324 - the archive's digest
    return Exchange(
        url=response.rec_headers.get_header("WARC-Target-URI"),
        status=int(response.http_headers.get_statuscode()),
        request_line=f"{request.http_headers.protocol} {request.http_headers.statusline}",
        request_headers=dict(request.http_headers.headers),
        headers=dict(response.http_headers.headers),
        digest=response.rec_headers.get_header("WARC-Payload-Digest") or "",
        sha1=sha1,
        sha256=hashlib.sha256(payload).hexdigest(),
        length=len(payload),
        payload=payload,
    )


def read_crawl_log(launched: Path) -> list[LogLine]:
    """Parse ``logs/crawl.log``: one :class:`LogLine` per URL, in the order they finished."""
    lines = []
    for text in (launched / "logs" / "crawl.log").read_text().splitlines():
        fields = text.split()
        if len(fields) < 11:
            continue
        began, _, duration = fields[8].partition("+")  # "-" when nothing was fetched
        lines.append(
            LogLine(
                status=int(fields[1]),
                size=int(fields[2]) if fields[2] != "-" else 0,
                url=fields[3],
                hops=fields[4],
                via=fields[5],
                mime=fields[6],
                began=datetime.strptime(began, "%Y%m%d%H%M%S%f").replace(tzinfo=UTC) if began != "-" else None,
                duration_ms=int(duration or 0),
                digest=fields[9],
                annotations=fields[11] if len(fields) > 11 else "-",
            )
        )
    return lines


if __name__ == "__main__":
    print(heritrix_home())
