"""A real RFC 3161 time-stamping authority on loopback: OpenSSL's ``openssl ts -reply`` behind a tiny HTTP endpoint.

The test CA and the TSA's certificate (extendedKeyUsage critical timeStamping)
are made here with ``cryptography``; each POSTed query is answered by running
``openssl ts -reply`` on it. The answer carries the TSA's certificate only: with
``-chain`` OpenSSL 3.0 puts the certificates in an order that is not DER's, and
rfc3161-client refuses the token (InvalidSetOrdering). ``down`` makes the endpoint refuse (503), ``delay``
makes it slow.
"""

from __future__ import annotations

import contextlib
import datetime
import http.server
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.oid import NameOID

_CONFIG = """\
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = {folder}
serial = $dir/serial
crypto_device = builtin
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


@dataclass
class LoopbackTsa:
    """A running TSA: its URL, its CA's certificate (PEM) and switches for failures."""

    url: str
    ca_pem: str
    ca_file: Path
    folder: Path
    down: bool = False
    delay: float = 0.0
    answered: int = 0


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(folder: Path, name: str = "Pligt Test TSA CA") -> tuple[Path, Path, Path]:
    """Make a CA and a TSA certificate it signs; return the CA file, the TSA's certificate and its key."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    tsa_key = ec.generate_private_key(ec.SECP256R1())
    tsa = (
        x509.CertificateBuilder()
        .subject_name(_name("Pligt Test TSA"))
        .issuer_name(ca.subject)
        .public_key(tsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, tsa_file, key_file = folder / "ca.pem", folder / "tsa.pem", folder / "tsa.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    tsa_file.write_bytes(tsa.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        tsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_file, tsa_file, key_file


@contextlib.contextmanager
def running_tsa(folder: Path) -> Iterator[LoopbackTsa]:
    """Run a TSA on a free loopback port until the block ends."""
    ca_file, tsa_file, key_file = make_ca(folder)
    config = folder / "tsa.cnf"
    config.write_text(_CONFIG.format(folder=folder), encoding="utf-8")
    (folder / "serial").write_text("01\n", encoding="ascii")
    lock = threading.Lock()
    state: list[LoopbackTsa] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            tsa = state[0]
            query = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if tsa.delay:
                time.sleep(tsa.delay)
            if tsa.down:
                self.send_error(503, "down for the test")
                return
            with lock:  # openssl ts keeps its serial number in one file
                (folder / "query.tsq").write_bytes(query)
                subprocess.run(
                    [
                        "openssl",
                        "ts",
                        "-reply",
                        "-config",
                        str(config),
                        "-queryfile",
                        str(folder / "query.tsq"),
                        "-inkey",
                        str(key_file),
                        "-signer",
                        str(tsa_file),
                        "-out",
                        str(folder / "reply.tsr"),
                    ],
                    check=True,
                    capture_output=True,
                )
                reply = (folder / "reply.tsr").read_bytes()
                tsa.answered += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.append(LoopbackTsa(f"http://127.0.0.1:{server.server_address[1]}/", ca_file.read_text(), ca_file, folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def use_tsa(config_file: Path, tsa: LoopbackTsa) -> None:
    """Name the TSA and its CA in an instance's pligt.toml."""
    with config_file.open("a", encoding="utf-8") as f:
        f.write(f'tsa_url = "{tsa.url}"\ntsa_ca_file = "{tsa.ca_file}"\n')
