"""`scripts/serve`, `scripts/deploy` and `scripts/test` on a bare Debian 12 that has only `python3`: a
fresh clone, one command, and `/` answers (over HTTPS through Caddy, after `scripts/deploy`), or the
whole suite passes.

The machine is a minimal root made by `debootstrap` from the Debian mirror this
machine's apt uses (kept as a tarball under .cache/ so a second run is quick),
entered with `chroot` in a mount and PID namespace of its own, with /proc, a
/dev/shm and a read-only /sys of its own as a booted machine has them; it shares
this machine's network, so the server it starts on a loopback port is fetched
from here. It takes minutes (apt-get and pip inside; `scripts/test` much longer),
so it is slow; the normal suite holds it to every change of the set-up instead: a
digest of the set-up files must be the one these tests last passed with
(tests/bare_machine.stamp).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.caddy import local_caddyfile
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bare-debian"
TARBALL = CACHE / "bookworm-minbase-python3.tar"
LOGS = CACHE / "logs"
STAMP = Path(__file__).with_name("bare_machine.stamp")
RUN = "scripts/test -m slow tests/test_bare_machine.py"
#: The three slow tests below: the stamp is written once all three passed in one run.
TRIED = frozenset({"serve", "deploy", "test"})
#: What a bare machine with Python has: Debian's minimal base and python3, nothing else.
DEBOOTSTRAP = ["debootstrap", "--variant=minbase", "--include=python3", "bookworm"]
#: pip and apt-get inside, on a small machine: minutes, not seconds.
SERVE_TIMEOUT = 20 * 60


def setup_files(tree: Path) -> list[Path]:
    """The files whose change can break the two commands on a bare machine."""
    return [
        tree / "scripts/_setup.sh",
        tree / "scripts/serve",
        tree / "scripts/deploy",
        tree / "scripts/test",
        tree / "pyproject.toml",
        *sorted((tree / "requirements").glob("*.txt")),
        # What scripts/test installs from besides: the replay tools' lock and axe-core's.
        *sorted((tree / "requirements/tools").glob("*.txt")),
        tree / "tests/axe/package-lock.json",
    ]


def setup_digest(tree: Path = ROOT) -> str:
    """Return one SHA-256 over the set-up files' names and contents."""
    digest = hashlib.sha256()
    for path in setup_files(tree):
        digest.update(f"{path.relative_to(tree)}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_the_set_up_was_tried_on_a_bare_machine_since_it_last_changed() -> None:
    stamp = STAMP.read_text(encoding="ascii").strip() if STAMP.is_file() else "(none)"
    assert stamp == setup_digest(), (
        "scripts/_setup.sh, scripts/serve, scripts/deploy, scripts/test, pyproject.toml, requirements/*.txt, "
        "requirements/tools/*.txt or tests/axe/package-lock.json changed "
        f"since they were last tried on a bare Debian machine: commit, run `{RUN}` (as root, "
        f"some minutes), and commit the {STAMP.relative_to(ROOT)} it writes"
    )


def debian_mirror() -> str:
    """Return the Debian mirror this machine's apt uses (one-line or deb822 sources)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for uri in re.findall(r"^(?:deb\s+(?:\[[^]]*\]\s+)?|URIs:\s*)(\S+)", text, flags=re.M):
            if uri.rstrip("/").endswith("/debian"):
                return str(uri)
    return "http://deb.debian.org/debian"


def bare_root(into: Path) -> None:
    """Lay a bare Debian 12 root into ``into``: from the cached tarball, made by debootstrap if missing."""
    if not TARBALL.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        made = CACHE / "root.new"
        shutil.rmtree(made, ignore_errors=True)
        subprocess.run([*DEBOOTSTRAP, str(made), debian_mirror()], check=True, timeout=30 * 60)
        partial = TARBALL.with_suffix(".tar.new")
        subprocess.run(["tar", "--numeric-owner", "-C", str(made), "-cf", str(partial), "."], check=True)
        partial.replace(TARBALL)
        shutil.rmtree(made)
    into.mkdir()
    subprocess.run(["tar", "--numeric-owner", "-C", str(into), "-xf", str(TARBALL)], check=True)


class Machine:
    """A bare Debian root with a fresh clone of this repository in /srv/pligt, entered with chroot."""

    def __init__(self, path: Path) -> None:
        self.path = path
        bare_root(path)
        assert not (path / "usr/bin/gcc").exists()
        clone = path / "srv/pligt"
        subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(clone)], check=True)
        assert setup_digest(clone) == setup_digest(), f"commit the set-up files first: the clone has HEAD's ({RUN})"
        shutil.copy("/etc/resolv.conf", path / "etc/resolv.conf")  # pip and apt-get reach their registries
        _name_the_host(path)
        self.network = _network_trust(path)

    def start(self, script: str, log: Path) -> subprocess.Popen[bytes]:
        """Start ``script`` (bash) inside, as root, in mount and PID namespaces of its own.

        What a booted machine has mounted is mounted before chroot: the root on itself, so that
        / is a mount point inside (Java looks a path's file system up in /proc/self/mounts, and
        Heritrix's BDB JE fails to start its ``bdb`` bean without one); the namespace's own
        /proc, /dev/shm (Chromium's shared memory, PostgreSQL's), /dev/pts (the CLI's progress
        bar is tested on a pseudo-terminal) and a read-only /sys (Chromium reads the CPUs and
        memory there). They go with the namespace, so nothing stays mounted when the script ends.
        """
        argv = ["unshare", "--mount", "--pid", "--fork", "--kill-child", f"--mount-proc={self.path / 'proc'}"]
        argv += ["/bin/sh", "-c", _MOUNT_AND_CHROOT, "sh", str(self.path)]
        argv += ["/usr/bin/env", "-i", "PATH=" + _PATH, "HOME=/root", "LANG=C.UTF-8"]
        argv += [*self.network, "/bin/bash", "-c", script]
        with log.open("wb") as out:
            return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def boot(self, log: Path) -> Booted:
        """Boot the root: systemd as PID 1 of its own mount, PID, network, UTS and IPC namespaces.

        Its network has only its own loopback, so Caddy takes ports 80 and 443 there, as on
        a server, and nothing of this machine's; it has no way out (install before booting).
        """
        argv = ["unshare", "--mount", "--pid", "--net", "--uts", "--ipc", "--fork", "--kill-child"]
        argv += [f"--mount-proc={self.path / 'proc'}", "/bin/sh", "-c", _MOUNT_AND_BOOT, "sh", str(self.path)]
        argv += ["/usr/bin/env", "-i", "container=other", "PATH=" + _PATH, "LANG=C.UTF-8"]
        argv += ["/lib/systemd/systemd", "--show-status=false", "--log-target=journal-or-kmsg"]
        with log.open("wb") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return Booted(process)

    def run(self, script: str, log: Path, timeout: float = SERVE_TIMEOUT) -> str:
        """Run ``script`` inside to its end; return its output, or fail with it."""
        process = self.start(script, log)
        try:
            process.wait(timeout=timeout)
        finally:
            stop(process)
        output = log.read_text(errors="replace")
        assert process.returncode == 0, output
        return output


class Booted:
    """A booted bare machine: commands are run in it by entering its namespaces (nsenter)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.init = self._init()

    def _init(self) -> int:
        """Return the PID (here) of its systemd: unshare's one child."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = children.read_text().split() if children.exists() else []
            if found:
                return int(found[0])
            assert self.process.poll() is None, "the machine did not boot"
            time.sleep(0.2)
        raise AssertionError("no systemd in the booted machine")

    def run(self, script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``script`` (bash) in the booted machine as root; return what it did."""
        argv = ["nsenter", "-t", str(self.init), "-m", "-p", "-n", "-u", "-i", "-r", "-w"]
        argv += ["/usr/bin/env", "-i", "PATH=" + _PATH, "HOME=/root", "LANG=C.UTF-8", "/bin/bash", "-c", script]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    def ok(self, script: str, timeout: float = 120) -> str:
        """Run ``script`` in the booted machine; return its output, or fail with it."""
        done = self.run(script, timeout)
        assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def state(self) -> str:
        """Wait for the boot to finish; return the system's state (``running``: every unit started)."""
        deadline = time.monotonic() + 180
        while True:  # offline: systemd does not answer on its socket yet
            state = self.run("systemctl is-system-running --wait", timeout=180).stdout.strip()
            if state != "offline" or time.monotonic() > deadline:
                return state
            time.sleep(0.5)

    def halt(self) -> None:
        """Stop the machine: its PID 1 killed, the whole PID namespace goes with it."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Run by this machine's sh in the new mount namespace: $1 is the root, the rest the command inside.
_MOUNTS = (
    'root="$1"; shift; '
    'mount --rbind "$root" "$root" && '
    'mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$root/dev/shm" && '
    'mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$root/dev/pts" && '
    'mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys" && '
)
_MOUNT_AND_CHROOT = _MOUNTS + 'exec chroot "$root" "$@"'
#: And what systemd as PID 1 needs besides (as systemd-nspawn gives it): the cgroup tree and a /run.
_MOUNT_AND_BOOT = (
    _MOUNTS + 'mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$root/sys/fs/cgroup" && '
    'mount -t tmpfs -o nosuid,nodev,mode=0755 run "$root/run" && '
    'exec chroot "$root" "$@"'
)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop what runs inside: unshare takes its whole PID namespace with it (--kill-child)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


#: The slow tests that passed in this run: the stamp is written once all of them (TRIED) have.
_PASSED: set[str] = set()


def passed(test: str) -> None:
    """Note that one of the slow tests passed; write the stamp once every one of them has, in this run."""
    _PASSED.add(test)
    if _PASSED >= TRIED:  # the set-up held on a bare machine, every command of it
        STAMP.write_text(setup_digest() + "\n", encoding="ascii")


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap and chroot need root")
needs_debootstrap = pytest.mark.skipif(shutil.which("debootstrap") is None, reason="apt-get install debootstrap")


@contextlib.contextmanager
def new_machine() -> Iterator[Machine]:
    """A bare machine, with its logs beside it, removed after use.

    Under .cache/, not pytest's temporary folder: pytest keeps only its last
    few of those, and another run of pytest on this machine would delete a root
    still in use.
    """
    (CACHE / "machines").mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=CACHE / "machines"))
    try:
        yield Machine(folder / "machine")
    finally:
        LOGS.mkdir(exist_ok=True)  # the last run's logs, to read after it (how long the suite took inside)
        for log in folder.glob("*.log"):
            shutil.copy(log, LOGS / log.name)
        shutil.rmtree(folder)  # nothing is mounted in it: the mounts were the namespaces' own


@pytest.fixture(scope="module")
def machine() -> Iterator[Machine]:
    """One bare machine for scripts/serve and then scripts/deploy."""
    with new_machine() as made:
        yield made


@pytest.fixture
def fresh_machine() -> Iterator[Machine]:
    """A bare machine of its own: scripts/test must not find what scripts/deploy installed."""
    with new_machine() as made:
        yield made


@pytest.mark.server
@pytest.mark.slow
@needs_root
@needs_debootstrap
def test_scripts_serve_works_on_a_bare_debian_with_only_python3(machine: Machine) -> None:
    logs = machine.path.parent
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = logs / "serve.log"
    process = machine.start(f"cd /srv/pligt && scripts/serve --port {port} --base-url {url}", log)
    try:
        page = _first_answer(url + "/", process, log)
        assert page.status_code == 200, page.text
        assert "Pligt" in page.text
        assert "Owner password: " in log.read_text(errors="replace")
    finally:
        stop(process)
    passed("serve")


@pytest.mark.server
@pytest.mark.slow
@needs_root
@needs_debootstrap
def test_pligt_deploy_goes_live_on_a_bare_debian(machine: Machine) -> None:
    logs = machine.path.parent
    https_port, http_port, upstream = free_port(), free_port(), free_port()
    base = f"https://localhost:{https_port}"
    deploy = f"scripts/deploy --base-url {base} --port {upstream}"
    output = machine.run(
        "set -e; cd /srv/pligt\n"
        # Every Debian server has systemd; the bare root has only what debootstrap's minbase brings.
        "apt-get -o DPkg::Lock::Timeout=600 update -qq\n"
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null\n"
        f"{deploy}\n{deploy}\n"
        'out="$(systemd-analyze verify /etc/systemd/system/pligt*.service /etc/systemd/system/pligt*.timer 2>&1)"\n'
        'if [ -n "$out" ]; then echo "systemd-analyze verify: $out"; exit 1; fi\n'
        "pligt items\n",  # the wrapper, as the service user
        logs / "deploy.log",
    )
    assert output.count("Owner password: ") == 1
    assert "Kept the instance" in output
    root = machine.path
    for unit in ("multi-user.target.wants/pligt.service", "timers.target.wants/pligt-backup.timer"):
        assert (root / "etc/systemd/system" / unit).is_symlink(), unit
    uid = _uid(root, "pligt")
    state = root / "var/lib/pligt"
    assert (state.stat().st_uid, state.stat().st_mode & 0o777) == (uid, 0o700)
    catalog = state / "instance/catalog.sqlite3"
    assert (catalog.stat().st_uid, catalog.stat().st_mode & 0o777) == (uid, 0o600)

    # Start what systemd would start at boot: the service as its unit says, and Caddy (on test ports).
    service = _unit(root / "etc/systemd/system/pligt.service")
    env = " ".join(service["Environment"])
    pligt_log, caddy_log = logs / "pligt.log", logs / "caddy.log"
    pligt = machine.start(
        f"umask {service['UMask'][0]}; cd {service['WorkingDirectory'][0]}; "
        f"exec runuser -u {service['User'][0]} -- env {env} {service['ExecStart'][0]}",
        pligt_log,
    )
    caddyfile = local_caddyfile((root / "etc/caddy/Caddyfile").read_text(), http_port, Path("/tmp/caddy-data"))
    (root / "tmp/Caddyfile.test").write_text(caddyfile)
    caddy = machine.start("exec caddy run --adapter caddyfile --config /tmp/Caddyfile.test", caddy_log)
    try:
        ca = root / "tmp/caddy-data/pki/authorities/local/root.crt"
        page = _first_answer_over_https(base + "/", ca, [pligt, caddy], [pligt_log, caddy_log])
        assert page.status_code == 200, page.text
        assert f"{base}/access/" in page.text or 'href="/access/' in page.text
        plain = requests.get(f"http://localhost:{http_port}/", allow_redirects=False, timeout=30)
        assert (plain.status_code, plain.headers["Location"]) == (301, base + "/")
    finally:
        stop(caddy)
        stop(pligt)
    passed("deploy")


#: Fetch a URL in the booted machine, trusting Caddy's own CA (python3 is all the bare root has).
_FETCH = """
import ssl, sys, time, urllib.error, urllib.request
ca = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"
class Keep(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args): return None
deadline = time.monotonic() + 60
while True:
    try:
        trust = urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca))
        answer = urllib.request.build_opener(Keep, trust).open(sys.argv[1], timeout=10)
    except urllib.error.HTTPError as error:
        answer = error
    except (OSError, ssl.SSLError):
        answer = None
    if answer is not None and answer.status != 502 or time.monotonic() > deadline:
        break
    time.sleep(0.5)  # Caddy not up yet, or 502: pligt serve not yet
print(answer.status if answer else "no answer", answer.headers.get("Location", "") if answer else "")
"""


@pytest.mark.slow
@needs_root
@needs_debootstrap
def test_pligt_deploy_runs_live_under_systemd_on_a_booted_bare_debian(fresh_machine: Machine) -> None:
    """Installed in the root, booted with systemd as PID 1: the units start at boot, Caddy serves on 443.

    Then what only a running systemd does: a killed service is started again (Restart=on-failure),
    every timer waits with a next time and the job it starts succeeds, and a second
    ``scripts/deploy`` on the running machine reloads systemd and restarts the service.
    """
    logs = fresh_machine.path.parent
    fresh_machine.run(
        "set -e; cd /srv/pligt\n"
        "apt-get -o DPkg::Lock::Timeout=600 update -qq\n"
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd dbus >/dev/null\n"
        "scripts/deploy --base-url https://localhost\n",
        logs / "deploy.log",
    )
    (fresh_machine.path / "root/fetch.py").write_text(_FETCH)
    _missed(fresh_machine.path, "pligt-audit-stamp.timer")
    booted = fresh_machine.boot(logs / "boot.log")
    try:
        state = booted.state()
        assert state == "running", booted.run("systemctl --failed --no-pager; journalctl -b --no-pager").stdout
        assert booted.ok("python3 /root/fetch.py https://localhost/").split() == ["200"]
        assert booted.ok("python3 /root/fetch.py http://localhost/").split() == ["301", "https://localhost/"]

        first = booted.ok("systemctl show -P MainPID pligt.service").strip()
        booted.ok(f"kill -KILL {first}")
        assert _restarted(booted, first) == "1"
        assert booted.ok("python3 /root/fetch.py https://localhost/").split() == ["200"]

        # The run missed while the machine was off (Persistent=true) is made up at boot, by systemd.
        assert _fired(booted, "pligt-audit-stamp") == "success"
        timers = sorted(p.name for p in (fresh_machine.path / "etc/systemd/system/timers.target.wants").glob("pligt*"))
        assert len(timers) >= 4, timers
        for timer in timers:
            shown = booted.ok(f"systemctl show -p ActiveState -p NextElapseUSecRealtime {timer}")
            assert "ActiveState=active" in shown and "NextElapseUSecRealtime=\n" not in shown + "\n", shown
            job = timer.removesuffix(".timer") + ".service"
            ran = booted.run(f"systemctl start {job}; systemctl show -P Result {job}", timeout=300)
            assert ran.stdout.strip() == "success", booted.run(f"journalctl -u {job} --no-pager").stdout

        before = booted.ok("systemctl show -P MainPID pligt.service").strip()
        again = booted.ok("cd /srv/pligt && scripts/deploy --base-url https://localhost 2>&1", timeout=600)
        assert "Kept the instance" in again and "systemctl daemon-reload" in again, again
        assert booted.ok("systemctl show -P MainPID pligt.service").strip() != before
        assert booted.ok("python3 /root/fetch.py https://localhost/").split() == ["200"]
        assert booted.ok("systemctl is-system-running").strip() == "running"
    finally:
        booted.halt()


def _missed(root: Path, timer: str) -> None:
    """Make ``timer`` look as if it last ran two days ago, as after a machine was off (its stamp file)."""
    stamp = root / "var/lib/systemd/timers" / f"stamp-{timer}"
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()
    then = time.time() - 2 * 24 * 3600
    os.utime(stamp, (then, then))


def _fired(booted: Booted, job: str) -> str:
    """Wait for the timer of ``job`` to start it (its jitter: a minute at most); return how the job ended."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        triggered = booted.ok(f"systemctl show -P LastTriggerUSecMonotonic {job}.timer").strip()
        state = dict(line.split("=", 1) for line in booted.ok(f"systemctl show -p ActiveState -p Result {job}").split())
        if triggered not in ("", "0") and state["ActiveState"] == "inactive":
            return state["Result"]
        time.sleep(1)
    raise AssertionError(booted.run(f"systemctl list-timers --all --no-pager; journalctl -u {job} --no-pager").stdout)


def _restarted(booted: Booted, killed: str) -> str:
    """Wait for systemd to start the service again after ``killed``; return its restart count."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        shown = booted.ok("systemctl show -p MainPID -p ActiveState -p NRestarts pligt.service").split()
        state = dict(line.split("=", 1) for line in shown)
        if state["MainPID"] not in ("0", killed) and state["ActiveState"] == "active":
            return state["NRestarts"]
        time.sleep(0.5)
    raise AssertionError(booted.run("journalctl -u pligt.service --no-pager").stdout)


#: Left out of the suite inside the bare root, each with the reason it cannot be tried there.
LEFT_OUT_INSIDE = {
    # The stamp is what this very run writes: in the clone it is the last run's whenever the set-up changed.
    "tests/test_bare_machine.py::test_the_set_up_was_tried_on_a_bare_machine_since_it_last_changed",
}
#: apt-get (Chromium, Java, Maven, PostgreSQL...), pip, npm and Maven inside, then the whole suite.
SUITE_TIMEOUT = 2 * 3600


@pytest.mark.slow
@pytest.mark.timeout(SUITE_TIMEOUT + 10 * 60)
@needs_root
@needs_debootstrap
def test_scripts_test_passes_on_a_bare_debian_with_only_python3(fresh_machine: Machine) -> None:
    """The README's test command, as CI runs it (root, no Java, no Maven, nothing but python3), green.

    Every skip is listed (-rs): none may be for a program scripts/test should have installed.
    """
    deselect = " ".join(f"--deselect {test}" for test in sorted(LEFT_OUT_INSIDE))
    log = fresh_machine.path.parent / "test.log"
    started = time.monotonic()
    try:
        output = fresh_machine.run(f"cd /srv/pligt && scripts/test -rs {deselect}", log, timeout=SUITE_TIMEOUT)
    finally:  # the whole run's time beside pytest's own: the set-up's share
        with log.open("a") as out:
            out.write(f"scripts/test on the bare root: {time.monotonic() - started:.0f} s in all\n")
    assert "ruff and mypy: passed" in output
    closing = output.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", closing), output
    assert not re.search(r"failed|error", closing), output
    missing = [line for line in output.splitlines() if line.startswith("SKIPPED") and "apt-get install" in line]
    assert not missing, "\n".join(missing)
    passed("test")


def _uid(root: Path, user: str) -> int:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2])
    raise AssertionError(f"no user {user} in {root}/etc/passwd")


def _unit(path: Path) -> dict[str, list[str]]:
    """The settings of a unit file, each with every value it was given."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def _first_answer_over_https(
    url: str, ca: Path, processes: list[subprocess.Popen[bytes]], logs: list[Path]
) -> requests.Response:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            pytest.fail("a server stopped:\n" + "\n".join(log.read_text(errors="replace") for log in logs))
        if ca.is_file():
            try:
                answer = requests.get(url, timeout=10, verify=str(ca))
            except requests.ConnectionError:
                pass
            else:
                if answer.status_code != 502:  # 502: Caddy is up, pligt serve not yet
                    return answer
        time.sleep(0.5)
    pytest.fail(f"no answer from {url}:\n" + "\n".join(log.read_text(errors="replace") for log in logs))


def _name_the_host(machine: Path) -> None:
    """Write the /etc/hosts Debian's installer (or cloud-init) writes: localhost and the machine's name.

    debootstrap's root has none (netbase writes one naming localhost only, when apt-get
    installs it); the root shares this machine's host name, and Java's
    InetAddress.getLocalHost() (Heritrix, at start) fails on a name that does not resolve.
    """
    (machine / "etc/hosts").write_text(
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{socket.gethostname()}\n\n"
        "::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n"
    )


#: Where an administrator puts a CA of their own for update-ca-certificates (Debian's ca-certificates).
LOCAL_CAS = Path("/usr/local/share/ca-certificates")


def _network_trust(machine: Path) -> list[str]:
    """Hand the bare root the CAs this network's TLS needs: pip's (PIP_CERT) and the local ones, if any.

    Where the network's TLS is inspected by a proxy, pip trusts its CA only through
    PIP_CERT, and Java (Maven fetching Heritrix) and Node (npm fetching axe-core)
    through the CAs added under /usr/local/share/ca-certificates, which
    update-ca-certificates adds to the system's and Java's stores when apt-get
    installs ca-certificates inside (the root has none yet). They are this
    network's, like resolv.conf, not something the machine would have. Elsewhere
    the programs' own certificates do, and nothing is added.
    """
    if LOCAL_CAS.is_dir():
        (machine / LOCAL_CAS.relative_to("/")).mkdir(parents=True, exist_ok=True)
        for ca in LOCAL_CAS.rglob("*.crt"):
            shutil.copy(ca, machine / ca.relative_to("/"))
    cert = os.environ.get("PIP_CERT", "")
    if not cert or not Path(cert).is_file():
        return []
    shutil.copy(cert, machine / "root/network-ca.pem")
    return ["PIP_CERT=/root/network-ca.pem", "NODE_EXTRA_CA_CERTS=/root/network-ca.pem"]


def _first_answer(url: str, process: subprocess.Popen[bytes], log: Path) -> requests.Response:
    """Wait for the server in the bare root to answer ``url``; fail with its output if it stops first."""
    deadline = time.monotonic() + SERVE_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"scripts/serve exited with {process.returncode} on a bare Debian:\n{log.read_text()}")
        try:
            return requests.get(url, timeout=10)
        except requests.ConnectionError:
            time.sleep(2)
    pytest.fail(f"scripts/serve did not answer {url} in {SERVE_TIMEOUT} s on a bare Debian:\n{log.read_text()}")
