"""`pligt deploy`: the files it writes pass systemd's own check, the instance is private and survives a
second run, and the generated Caddyfile, run by a real Caddy with its local CA in front of a real
`pligt serve`, serves a harvest over HTTPS byte for byte, without a client address in any log."""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote
from urllib.parse import urlsplit

import pytest
import requests
from click.testing import Result

from pligt.instance import build_archive
from pligt.settings import Settings
from pligt.settings import load_settings
from tests.support.access import issue_credential
from tests.support.caddy import local_caddyfile
from tests.support.cli import invoke
from tests.support.data import binary_bytes
from tests.support.data import pdf_bytes
from tests.support.net import free_port
from tests.support.net import start_process
from tests.support.net import stop_process
from tests.support.servers import start_server
from tests.support.servers import stop_server

ROOT = Path(__file__).resolve().parent.parent
UNITS = "etc/systemd/system"
INSTANCE = "var/lib/pligt/instance"
#: The client's own loopback address, apart from the servers' 127.0.0.1: it must appear in no log.
CLIENT = "127.0.0.2"

needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="apt-get install systemd")
needs_caddy = pytest.mark.skipif(shutil.which("caddy") is None, reason="apt-get install caddy")


def deploy(root: Path, *args: str) -> Result:
    """Run `pligt deploy` into ``root``, its units naming this clone's own .venv (which exists here)."""
    return invoke("deploy", "--root", str(root), "--app-dir", str(ROOT), *args)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def cron_commands(crontab: str) -> list[str]:
    """The ``pligt`` subcommands (and their options) a crontab runs, without paths or redirections."""
    found = []
    for line in crontab.splitlines():
        if line.startswith("#") or "pligt " not in line or "=" in line.split()[0]:
            continue
        words = line.split("pligt ", 1)[1].split()
        found.append(" ".join(itertools.takewhile(lambda w: not w.startswith(("/", ">", "|", "$")), words)))
    return found


@needs_systemd
def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    result = deploy(tmp_path, "--base-url", "https://deposit.example.dk")
    assert result.exit_code == 0, result.output
    units = tmp_path / UNITS
    names = sorted(p.name for p in units.iterdir())
    jobs = ["pligt-audit-stamp", "pligt-backup", "pligt-fixity", "pligt-keys-backup", "pligt-purge"]
    assert names == sorted(["pligt.service", *(f"{j}.service" for j in jobs), *(f"{j}.timer" for j in jobs)])
    done = subprocess.run(
        ["systemd-analyze", "verify", *names], cwd=units, capture_output=True, text=True, timeout=60, check=False
    )
    # verify exits 0 on an unknown key too (it only warns): nothing said is the pass.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")

    service = (units / "pligt.service").read_text()
    assert f"ExecStart={ROOT}/.venv/bin/pligt serve\n" in service
    for line in (
        "User=pligt",
        "Environment=PLIGT_INSTANCE=/var/lib/pligt/instance",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/pligt",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "Restart=on-failure",
        "UMask=0077",
    ):
        assert f"\n{line}\n" in service, line
    # Every scheduled job of scripts/cron.example has its timer, hardened like the service.
    commands = {j: (units / f"{j}.service").read_text() for j in jobs}
    scheduled = cron_commands((ROOT / "scripts/cron.example").read_text())
    assert scheduled == ["purge", "fixity --repair", "backup", "keys backup", "audit stamp"]
    for command in scheduled:
        assert [j for j, text in commands.items() if f"/bin/pligt {command}" in text], command
    assert "pligt backup /var/lib/pligt/backups/" in commands["pligt-backup"]
    for text in commands.values():
        assert "\nProtectSystem=strict\n" in text
        assert "\nUser=pligt\n" in text


def test_the_instance_is_private_and_a_second_run_keeps_it(tmp_path: Path) -> None:
    first = deploy(tmp_path, "--base-url", "https://Deposit.example.dk/")
    assert first.exit_code == 0, first.output
    assert "Owner password: " in first.stdout
    state = tmp_path / "var/lib/pligt"
    instance = tmp_path / INSTANCE
    assert [mode(p) for p in (state, instance, state / "backups")] == [0o700] * 3
    for name in ("catalog.sqlite3", "secret_key", "checkpoint_key", "pligt.toml"):
        assert mode(instance / name) == 0o600, name
    settings = load_settings(instance, env={})
    assert (settings.base_url, settings.trusted_proxies, settings.host, settings.port) == (
        "https://deposit.example.dk",
        1,
        "127.0.0.1",
        8000,
    )
    (tmp_path / "kursus.pdf").write_bytes(pdf_bytes("kursus"))
    assert invoke("add", "--instance", str(instance), "--public", str(tmp_path / "kursus.pdf")).exit_code == 0
    catalog_before = (instance / "catalog.sqlite3").stat().st_ino
    with settings.config_file.open("a", encoding="utf-8") as config:
        config.write("max_upload_bytes = 1_000_000\n")

    again = deploy(tmp_path, "--base-url", "https://deposit.example.dk", "--port", "8123")
    assert again.exit_code == 0, again.output
    assert "Owner password" not in again.stdout
    assert "Kept the instance" in again.stdout
    assert (instance / "catalog.sqlite3").stat().st_ino == catalog_before
    archive = build_archive(load_settings(instance, env={}))
    try:
        assert [v.filename for v in archive.versions()] == ["kursus.pdf"]
    finally:
        archive.catalog.close()
    assert load_settings(instance, env={}).port == 8123
    caddyfile = (tmp_path / "etc/caddy/Caddyfile").read_text()
    assert re.search(r"max_size 1000000\n", caddyfile)
    assert "reverse_proxy 127.0.0.1:8123 {" in caddyfile


def test_a_dry_run_writes_nothing(tmp_path: Path) -> None:
    result = invoke("deploy", "--dry-run", "--root", str(tmp_path / "root"), "--base-url", "https://deposit.example.dk")
    assert result.exit_code == 0, result.output
    assert "would write" in result.stdout
    assert "would run: systemctl daemon-reload" in result.stdout
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize(
    "url", ["http://deposit.example.dk", "https://deposit.example.dk/pligt", "deposit.example.dk", "https://"]
)
def test_only_an_https_host_is_a_base_url(tmp_path: Path, url: str) -> None:
    result = deploy(tmp_path, "--base-url", url)
    assert result.exit_code == 7
    assert "--base-url" in result.stderr
    assert not (tmp_path / "etc").exists()


@needs_caddy
def test_caddy_serves_a_harvest_over_https_and_logs_no_client_address(tmp_path: Path) -> None:
    https_port, http_port, upstream = free_port(), free_port(), free_port()
    base = f"https://localhost:{https_port}"
    root = tmp_path / "root"
    first = deploy(root, "--base-url", base, "--port", str(upstream))
    assert first.exit_code == 0, first.output
    [owner_password] = re.findall(r"^Owner password: (\S+)$", first.stdout, flags=re.M)
    instance = root / INSTANCE
    with (instance / "pligt.toml").open("a", encoding="utf-8") as config:
        config.write("max_upload_bytes = 3_000_000\n")
    files = tmp_path / "to-publish"
    files.mkdir()
    (files / "Årsrapport 2026.pdf").write_bytes(pdf_bytes("aarsrapport", pad=300_000))
    (files / "data.bin").write_bytes(binary_bytes(2_500_000))
    (files / "kursus.txt").write_bytes(b"Beskyttet materiale, kun for pligtaflevering.\n" * 50)
    for name, flag in (("Årsrapport 2026.pdf", "--public"), ("data.bin", "--public"), ("kursus.txt", "--protected")):
        result = invoke("add", "--instance", str(instance), flag, str(files / name))
        assert result.exit_code == 0, result.stderr
    settings = load_settings(instance, env={})
    credential, password = issue_credential(build_archive(settings))

    # Rendered again after the limit changed: what `pligt deploy` writes on its next run.
    assert deploy(root, "--base-url", base, "--port", str(upstream)).exit_code == 0
    caddyfile = tmp_path / "Caddyfile"
    data = tmp_path / "caddy-data"
    caddyfile.write_text(local_caddyfile((root / "etc/caddy/Caddyfile").read_text(), http_port, data))
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "XDG_DATA_HOME": str(home), "XDG_CONFIG_HOME": str(home)}
    pligt_log, caddy_log = tmp_path / "pligt.log", tmp_path / "caddy.log"
    server = start_server(instance, pligt_log, port=upstream)
    caddy = start_process(
        ["caddy", "run", "--adapter", "caddyfile", "--config", str(caddyfile)],
        caddy_log,
        f"http://127.0.0.1:{http_port}/",
        env=env,
    )
    try:
        ca = data / "pki/authorities/local/root.crt"
        assert ca.is_file()
        _harvest_is_byte_identical(tmp_path, base, ca, home, settings, f"{credential.username} {password}")
        _http_is_one_301(base, http_port, ca)
        _headers_and_limits(base, ca, owner_password)
        stop_server(server)
        # With Pligt gone Caddy answers 502 and logs why, with the request it failed: no address in it.
        gone = subprocess.run(
            ["curl", "-4", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--interface", CLIENT, "--cacert", str(ca)]
            + [f"{base}/"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert gone.stdout == "502", gone.stderr
    finally:
        stop_server(server)
        stop_process(caddy)
    caddy_text, pligt_text = caddy_log.read_text(), pligt_log.read_text()
    assert "dial tcp" in caddy_text  # the error line is there, so it was looked through
    for text in (caddy_text, pligt_text):
        assert CLIENT not in text
    assert '"GET /files/' in pligt_text  # Pligt's access log was on


def _harvest_is_byte_identical(tmp_path: Path, base: str, ca: Path, home: Path, settings: Settings, login: str) -> None:
    user, password = login.split(" ")
    netrc = home / ".netrc"
    netrc.write_text(f"machine localhost login {user} password {password}\n")
    netrc.chmod(0o600)
    warc = tmp_path / "harvest"
    result = subprocess.run(
        ["wget", "--recursive", "--level=10", "--no-verbose", "--no-host-directories", "--inet4-only"]
        + ["--bind-address", CLIENT, "--ca-certificate", str(ca), "--directory-prefix", str(tmp_path / "mirror")]
        + ["--warc-file", str(warc), "--tries=1", "--timeout=20", f"{base}/"],
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode in (0, 8), result.stderr  # 8: the 401 challenges
    from tests.test_e2e_crawl import read_warc

    responses, _ = read_warc(Path(f"{warc}.warc.gz"))
    assert all(url.startswith(base + "/") for url in responses), sorted(responses)
    archive = build_archive(settings)
    try:
        expected = archive.versions()
    finally:
        archive.catalog.close()
    assert len(expected) == 3
    for version in expected:
        path = f"/files/{version.slug}/v{version.number}/"
        [url] = [url for url in responses if urlsplit(url).path.startswith(path)]
        assert unquote(urlsplit(url).path.rsplit("/", 1)[1]) == version.filename
        status, _ctype, payload = responses[url][-1]
        assert status == 200
        assert hashlib.sha256(payload).hexdigest() == version.sha256


def _http_is_one_301(base: str, http_port: int, ca: Path) -> None:
    plain = requests.get(
        f"http://localhost:{http_port}/files/?a=1", allow_redirects=False, timeout=30, headers={"Host": "localhost"}
    )
    assert plain.status_code == 301
    assert plain.headers["Location"] == f"{base}/files/?a=1"
    landed = requests.get(f"http://localhost:{http_port}/", timeout=30, verify=str(ca))
    assert landed.status_code == 200
    assert [r.status_code for r in landed.history] == [301]


def _headers_and_limits(base: str, ca: Path, owner_password: str) -> None:
    page = requests.get(f"{base}/", timeout=30, verify=str(ca))
    assert page.status_code == 200
    assert page.raw.headers.getlist("Strict-Transport-Security") == ["max-age=31536000"]
    assert f'href="{base}/' in page.text or 'href="/' in page.text
    # A body over max_upload_bytes (3 MB here) is refused, by Caddy or by Pligt, before it is stored.
    too_big = requests.post(
        f"{base}/api/items",
        params={"filename": "big.bin", "slug": "big"},
        data=binary_bytes(3_100_000),
        auth=("owner", owner_password),
        timeout=60,
        verify=str(ca),
    )
    assert too_big.status_code == 413
