"""`scripts/serve` and `scripts/deploy` on a bare Debian 12 that has only `python3`: a fresh clone, one
command, and `/` answers (over HTTPS through Caddy, after `scripts/deploy`).

The machine is a minimal root made by `debootstrap` from the Debian mirror this
machine's apt uses (kept as a tarball under .cache/ so a second run is quick),
entered with `chroot` in a mount and PID namespace of its own; it shares this
machine's network, so the server it starts on a loopback port is fetched from
here. It takes minutes (apt-get and pip inside), so it is slow; the normal suite
holds it to every change of the set-up instead: a digest of the set-up files
must be the one this test last passed with (tests/bare_machine.stamp).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
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
STAMP = Path(__file__).with_name("bare_machine.stamp")
RUN = "scripts/test -m slow tests/test_bare_machine.py"
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
        tree / "pyproject.toml",
        *sorted((tree / "requirements").glob("*.txt")),
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
        "scripts/_setup.sh, scripts/serve, scripts/deploy, pyproject.toml or requirements/*.txt changed "
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
        self.network = _network_trust(path)

    def start(self, script: str, log: Path) -> subprocess.Popen[bytes]:
        """Start ``script`` (bash) inside, as root, in mount and PID namespaces of its own."""
        argv = ["unshare", "--mount", "--pid", "--fork", "--kill-child", f"--mount-proc={self.path / 'proc'}"]
        argv += ["chroot", str(self.path), "/usr/bin/env", "-i", "PATH=" + _PATH, "HOME=/root", "LANG=C.UTF-8"]
        argv += [*self.network, "/bin/bash", "-c", script]
        with log.open("wb") as out:
            return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def run(self, script: str, log: Path) -> str:
        """Run ``script`` inside to its end; return its output, or fail with it."""
        process = self.start(script, log)
        try:
            process.wait(timeout=SERVE_TIMEOUT)
        finally:
            stop(process)
        output = log.read_text(errors="replace")
        assert process.returncode == 0, output
        return output


_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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


#: The slow tests that passed in this run: the stamp is written once both have.
_PASSED: list[str] = []

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap and chroot need root")
needs_debootstrap = pytest.mark.skipif(shutil.which("debootstrap") is None, reason="apt-get install debootstrap")


@pytest.fixture(scope="module")
def machine() -> Iterator[Machine]:
    """One bare machine for the module, with its logs beside it.

    Under .cache/, not pytest's temporary folder: pytest keeps only its last
    few of those, and another run of pytest on this machine would delete a root
    still in use.
    """
    (CACHE / "machines").mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=CACHE / "machines"))
    try:
        yield Machine(folder / "machine")
    finally:
        shutil.rmtree(folder)  # nothing is mounted in it: the mounts were the namespaces' own


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
    _PASSED.append("serve")


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
    if "serve" in _PASSED:  # both, in one run: the set-up held on a bare machine
        STAMP.write_text(setup_digest() + "\n", encoding="ascii")


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


def _network_trust(machine: Path) -> list[str]:
    """Hand pip in the bare root the CA this machine's pip is told to trust (PIP_CERT), if any.

    Where the network's TLS is inspected by a proxy, pip trusts its CA only through
    that setting; it is this network's, like resolv.conf, not something the
    machine would have. Elsewhere pip's own certificates do, and nothing is added.
    """
    cert = os.environ.get("PIP_CERT", "")
    if not cert or not Path(cert).is_file():
        return []
    shutil.copy(cert, machine / "root/network-ca.pem")
    return ["PIP_CERT=/root/network-ca.pem"]


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
