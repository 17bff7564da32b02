"""`scripts/serve` on a bare Debian 12 that has only `python3`: a fresh clone, the one command, and `/` answers.

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
import time
from pathlib import Path

import pytest
import requests

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
        "scripts/_setup.sh, scripts/serve, pyproject.toml or requirements/*.txt changed since "
        f"`scripts/serve` was last tried on a bare Debian machine: commit, run `{RUN}` (as root, "
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


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap and chroot need root")
@pytest.mark.skipif(shutil.which("debootstrap") is None, reason="apt-get install debootstrap")
def test_scripts_serve_works_on_a_bare_debian_with_only_python3(tmp_path: Path) -> None:
    machine = tmp_path / "machine"
    bare_root(machine)
    assert not (machine / "usr/bin/gcc").exists()
    clone = machine / "srv/pligt"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    assert setup_digest(clone) == setup_digest(), f"commit the set-up files first: the clone has HEAD's ({RUN})"
    shutil.copy("/etc/resolv.conf", machine / "etc/resolv.conf")  # pip and apt-get reach their registries
    network = _network_trust(machine)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    inside = f"cd /srv/pligt && scripts/serve --port {port} --base-url http://127.0.0.1:{port}"
    argv = ["unshare", "--mount", "--pid", "--fork", "--kill-child", f"--mount-proc={machine / 'proc'}"]
    argv += [
        "chroot",
        str(machine),
        "/usr/bin/env",
        "-i",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]
    argv += ["HOME=/root", "LANG=C.UTF-8", *network, "/bin/bash", "-c", inside]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        page = _first_answer(url + "/", process, log)
        assert page.status_code == 200, page.text
        assert "Pligt" in page.text
        assert "Owner password: " in log.read_text(errors="replace")
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # unshare takes the whole namespace with it (--kill-child)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    STAMP.write_text(setup_digest() + "\n", encoding="ascii")


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
