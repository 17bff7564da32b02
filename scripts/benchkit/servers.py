"""The servers the benchmarks start: ``pligt serve`` on an instance of its own, nginx and moto.

Each is started through ``tests.support.net.start_process``, the one helper
the tests use too, and handed over only once it answers.
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.support.net import answers
from tests.support.net import free_port
from tests.support.net import start_process
from tests.support.net import stop_process

from .common import Failed
from .common import MiB
from .common import run

PLIGT = Path(sys.executable).with_name("pligt")
#: The server's default upload limit; larger benchmark files raise it.
DEFAULT_MAX_UPLOAD = 2 * 1024 * MiB
#: ``pligt serve``'s default number of gunicorn workers.
DEFAULT_WORKERS = 2
REALM = "Pligt legal deposit"


# -- Pligt -----------------------------------------------------------------------------------


def clean_env(size: int) -> dict[str, str]:
    """The caller's environment without PLIGT_* settings, so that only the defaults count.

    ``PYTHONPATH`` goes too: ``scripts/bench`` sets it to find this package,
    which is no business of the server's.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLIGT_") and k != "PYTHONPATH"}
    if size > DEFAULT_MAX_UPLOAD:
        env["PLIGT_MAX_UPLOAD_BYTES"] = str(size)
    return env


def init_instance(path: Path, env: dict[str, str]) -> tuple[str, str]:
    """``pligt init --json`` a new instance; return the owner's username and password."""
    result = subprocess.run(
        [str(PLIGT), "init", "--instance", str(path), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise Failed(f"pligt init failed ({result.returncode}): {result.stderr.strip()}")
    made = json.loads(result.stdout)
    return made["username"], made["password"]


@dataclass
class Pligt:
    """A running ``pligt serve``."""

    process: subprocess.Popen[bytes]
    base: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL), if it still runs."""
        stop_process(self.process, timeout=30)


def start_pligt(instance: Path, env: dict[str, str], log: Path, workers: int | None = None) -> Pligt:
    """``pligt serve`` on a free loopback port, with its defaults unless ``workers`` is given.

    Handed over once /healthz answers and every worker has started (not only
    the first to answer).
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [str(PLIGT), "serve", "--instance", str(instance), "--host", "127.0.0.1", "--port", str(port)]
    if workers is not None:
        argv += ["--workers", str(workers)]
    process = start_process(argv, log, f"{base}/healthz", env=env)
    deadline = time.monotonic() + 30
    while len(worker_pids(process.pid)) < (workers or DEFAULT_WORKERS):
        if time.monotonic() > deadline:
            stop_process(process)
            raise Failed(f"pligt serve did not start its workers in 30 s:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    return Pligt(process, base)


def worker_pids(pid: int) -> list[int]:
    """The gunicorn workers of the master ``pid``."""
    try:
        return [p.pid for p in psutil.Process(pid).children()]
    except psutil.NoSuchProcess:
        return []


# -- nginx -----------------------------------------------------------------------------------

_SERVER = """
    server {{
        listen 127.0.0.1:{port};
        root {root};
        autoindex on;
        auth_basic "{realm}";
        auth_basic_user_file {folder}/htpasswd;
    }}"""

_CONFIG = """
{user}
worker_processes 2;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {folder}/access.log;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 15;
    client_body_temp_path {folder}/temp/body;
    proxy_temp_path {folder}/temp/proxy;
    fastcgi_temp_path {folder}/temp/fastcgi;
    uwsgi_temp_path {folder}/temp/uwsgi;
    scgi_temp_path {folder}/temp/scgi;
    {main}
    {harvest}
}}
"""


@dataclass
class Nginx:
    """A running nginx: ``base`` serves the data set's folder, ``harvest`` its harvest subfolder."""

    process: subprocess.Popen[bytes]
    base: str
    harvest: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        """Stop nginx, if it still runs."""
        stop_process(self.process, timeout=30)


def htpasswd_line(username: str, password: str) -> str:
    """An apr1 (Apache MD5) entry, htpasswd's default, which nginx's auth_basic checks."""
    return run(["htpasswd", "-n", "-i", "-m", username], input=password).stdout.strip()


def nginx_config(folder: Path, www: Path, main_port: int, harvest_port: int) -> str:
    """2 workers, sendfile, auth_basic and autoindex on both ports; every path inside ``folder``."""
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
    main = _SERVER.format(port=main_port, root=www, realm=REALM, folder=folder)
    harvest = _SERVER.format(port=harvest_port, root=www / "harvest", realm=REALM, folder=folder)
    return _CONFIG.format(user=user, folder=folder, main=main, harvest=harvest)


def start_nginx(folder: Path, www: Path, users: list[tuple[str, str]]) -> Nginx:
    """nginx on two loopback ports: ``main`` (root: www) and ``harvest`` (root: www/harvest)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "htpasswd").write_text("".join(htpasswd_line(u, p) + "\n" for u, p in users))
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / "temp" / sub).mkdir(parents=True, exist_ok=True)
    main_port, harvest_port = free_port(), free_port()
    conf = folder / "nginx.conf"
    conf.write_text(nginx_config(folder, www, main_port, harvest_port))
    base, harvest = f"http://127.0.0.1:{main_port}", f"http://127.0.0.1:{harvest_port}"
    argv = ["nginx", "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log")]
    process = start_process(argv, folder / "stderr.log", f"{base}/", timeout=15)
    if not answers(f"{harvest}/"):  # the master binds both before it starts a worker
        stop_process(process)
        raise Failed(f"nginx does not answer on {harvest}: {(folder / 'error.log').read_text(errors='replace')}")
    return Nginx(process, base, harvest)


# -- S3: a moto server of its own, and a bucket with Object Lock -------------------------------

MOTO_SERVER = Path(sys.executable).with_name("moto_server")
#: Fake credentials for moto; boto3 finds them first, so no real ones are read.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "eu-north-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``moto_server`` on a free loopback port; return it and its endpoint URL."""
    if not MOTO_SERVER.is_file():
        raise Failed(f"{MOTO_SERVER} is missing: install the test extra (pip install -e '.[test]')")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process = start_process([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], log, f"{endpoint}/moto-api/")
    return process, endpoint


def make_bucket(endpoint: str) -> str:
    """A versioned bucket with Object Lock in eu-north-1, as Pligt's check demands."""
    import boto3  # the test extra's; only S3 runs need it

    os.environ.update(FAKE_AWS)
    name = f"pligt-bench-{uuid.uuid4().hex[:12]}"
    client = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="eu-north-1")
    client.create_bucket(
        Bucket=name,
        CreateBucketConfiguration={"LocationConstraint": "eu-north-1"},
        ObjectLockEnabledForBucket=True,
    )
    return name


def s3_env(endpoint: str, bucket: str) -> dict[str, str]:
    """PLIGT_* settings (and fake credentials) that put the instance's files in the bucket."""
    return {
        **FAKE_AWS,
        "PLIGT_STORAGE": f"s3://{bucket}/bench",
        "PLIGT_S3_ENDPOINT_URL": endpoint,
        "PLIGT_S3_REGION": "eu-north-1",
        "PLIGT_S3_ADDRESSING_STYLE": "path",
    }
