"""Receipts: made by `pligt proof` on the instance, checked elsewhere with nothing but the receipt.

The check runs in a fresh folder with no instance: `pligt verify-proof`, and
pligt/core/proof/receipt_check.py copied there alone and run by itself. Every fact the
receipt states is a line that holds; each altered part of it makes the line
that depends on it not hold.
"""

from __future__ import annotations

import ast
import base64
import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

import pligt.core.proof.receipt_check as receipt_check
from pligt.core import Archive
from pligt.core.models import to_text
from pligt.core.proof.receipt_check import check_receipt
from pligt.core.proof.receipts import record_harvest
from pligt.instance import init_instance
from pligt.settings import load_settings
from pligt.web.services import pligt
from tests.support.access import issue_credential
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.app import make_app
from tests.support.cli import PLIGT
from tests.support.cli import invoke
from tests.support.data import pdf_bytes
from tests.support.tsa import LoopbackTsa
from tests.support.tsa import running_tsa
from tests.support.tsa import use_tsa

BROCHURE = pdf_bytes("Kursus i legal deposit", pad=3000)


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[LoopbackTsa]:
    with running_tsa(tmp_path / "tsa") as running:
        yield running


@pytest.fixture
def harvested(tmp_path: Path, tsa: LoopbackTsa, clock: Clock) -> tuple[Instance, Archive, FlaskClient]:
    """A protected version the deposit crawler fetched whole with its credential, then revisited (304)."""
    settings = load_settings(tmp_path / "instance", env={})
    made = init_instance(settings)
    use_tsa(settings.config_file, tsa)
    instance = Instance(load_settings(settings.instance, env={}), made)
    clock.now = datetime.now(UTC).replace(microsecond=0)
    app = make_app(instance.settings, clock)
    client = app.test_client()
    with app.app_context():
        core = pligt().archive
    core.checkpoints.delay = 0.0  # at once after each change (no burst delay)
    core.publish([BROCHURE], filename="kursus.pdf", slug="kursus", visibility="protected")
    credential, password = issue_credential(core)
    auth = (credential.username, password)
    first = client.get("/files/kursus/v1/kursus.pdf", auth=auth)
    assert first.status_code == 200
    assert record_harvest(core) == 1  # as `pligt audit stamp` from cron does
    again = client.get("/files/kursus/v1/kursus.pdf", auth=auth, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    core.recorder.flush()
    core.checkpoints.wait()
    return instance, core, client


@pytest.fixture
def receipt_file(harvested: tuple[Instance, Archive, FlaskClient], tmp_path: Path) -> Path:
    instance, _, _ = harvested
    target = tmp_path / "receipt.json"
    result = invoke("proof", "kursus", "--version", "1", "-o", str(target), "--instance", str(instance.path))
    assert result.exit_code == 0, result.stderr
    assert "3 proven entries, checkpoint time-stamped" in result.stdout
    assert json.loads(target.read_text())["checkpoint"]["stamp_ca"] == ["CN=Pligt Test TSA CA"]
    return target


@pytest.mark.external
def test_a_receipt_verifies_elsewhere_with_only_pligt_verify_proof(
    receipt_file: Path, tmp_path: Path, tsa: LoopbackTsa, harvested: tuple[Instance, Archive, FlaskClient]
) -> None:
    instance, core, _ = harvested
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(receipt_file, elsewhere / "receipt.json")
    (elsewhere / "kursus.pdf").write_bytes(BROCHURE)
    shutil.copy(tsa.ca_file, elsewhere / "tsa-ca.pem")
    key = invoke("audit", "key", "--instance", str(instance.path)).stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLIGT_")}
    result = subprocess.run(
        [PLIGT, "verify-proof", "receipt.json", "--key", key, "--tsa-ca", "tsa-ca.pem", "--file", "kursus.pdf"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert all(line.startswith("holds: ") for line in lines), lines
    text = result.stdout
    assert f"the checkpoint of {len(list(core.catalog.audit_entries()))} entries is signed by" in text
    assert "the pinned key" in text and "pinned with --tsa-ca" in text and "CN=Pligt Test TSA CA" in text
    version = core.item_versions("kursus")[0]
    assert f"its SHA-256 is {version.sha256}" in text and f"its SHA-1 is {version.sha1}" in text
    assert f"until {to_text(version.retain_until)}" in text
    assert "request 1 fetched whole (every byte sent) at" in text and "attributed by credential" in text
    assert "request 1 revisited after fetching it whole (answered 304) at" in text
    assert "kursus.pdf holds these very bytes" in text
    assert not list(elsewhere.glob("**/*.sqlite3")) and not (elsewhere / "instance").exists()


@pytest.mark.external
def test_the_standalone_module_alone_checks_the_same(receipt_file: Path, tmp_path: Path) -> None:
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(receipt_check.__file__, alone / "check.py")
    shutil.copy(receipt_file, alone / "receipt.json")
    # -I: no PYTHON* variables, no user site, not even the script's folder: only the installed packages.
    result = subprocess.run(
        [sys.executable, "-I", "check.py", "receipt.json"], cwd=alone, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the key in the receipt (pin the published one with --key)" in result.stdout
    assert "as given in the receipt (pin it with --tsa-ca)" in result.stdout
    assert result.stdout.count("holds: audit entry") == 3


def test_the_standalone_module_imports_nothing_of_pligt() -> None:
    tree = ast.parse(Path(receipt_check.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported - set(sys.stdlib_module_names) == {"cryptography", "rfc3161_client"}


def _failing(receipt: dict[str, Any], **kwargs: Any) -> list[str]:
    return [fact for holds, fact in check_receipt(receipt, **kwargs).lines if not holds]


@pytest.mark.external
def test_each_altered_part_of_a_receipt_is_named(receipt_file: Path, tsa: LoopbackTsa, tmp_path: Path) -> None:
    good = json.loads(receipt_file.read_text())
    assert _failing(good, tsa_ca_pem=tsa.ca_pem) == []

    r = copy.deepcopy(good)
    r["version"]["sha256"] = "0" * 64
    assert any(f.startswith("its SHA-256 is 0000") for f in _failing(r))
    r = copy.deepcopy(good)
    r["version"]["retain_until"] = "2099-01-01T00:00:00+00:00"
    assert _failing(r) == ["it is retained (stays retrievable at its URL) until 2099-01-01T00:00:00+00:00"]
    r = copy.deepcopy(good)
    r["entries"][0]["data"]["retain_until"] = "2099-01-01T00:00:00+00:00"  # the entry itself: not in the log
    failing = _failing(r)
    assert failing[0].startswith("audit entry 1 (version.published") and "published (no proven" in failing[1]
    r = copy.deepcopy(good)
    r["proofs"][2]["path"][0] = base64.b64encode(bytes(32)).decode()
    assert [f.split(" (")[0] for f in _failing(r)] == [f"audit entry {r['entries'][2]['seq']}"]
    r = copy.deepcopy(good)
    r["checkpoint"]["note"] = r["checkpoint"]["note"].replace("\n", "\n1", 1)  # another size
    assert any("signature by" in f and "does not verify" in f for f in _failing(r))
    r = copy.deepcopy(good)
    stamp = bytearray(base64.b64decode(r["checkpoint"]["stamp"]))
    stamp[-10] ^= 1
    r["checkpoint"]["stamp"] = base64.b64encode(bytes(stamp)).decode()
    assert any(f.startswith("the checkpoint's time stamp") for f in _failing(r))
    with running_tsa(tmp_path / "other") as other:
        assert any("time stamp does not verify" in f for f in _failing(good, tsa_ca_pem=other.ca_pem))
    from pligt.core.proof.notes import new_signer

    other_key = new_signer("127.0.0.1:8000").verifier_key
    failing = _failing(good, key=other_key)
    assert "the receipt's public key is the pinned one" in failing
    assert any("no signature by the key" in f for f in failing)
    (tmp_path / "other.pdf").write_bytes(pdf_bytes("another"))
    assert _failing(good, file=tmp_path / "other.pdf") == [
        f"{tmp_path / 'other.pdf'} holds these very bytes (SHA-256 and SHA-1)"
    ]


@pytest.mark.external
def test_verify_proof_exits_non_zero_naming_what_does_not_hold(receipt_file: Path, tmp_path: Path) -> None:
    r = json.loads(receipt_file.read_text())
    r["version"]["sha1"] = "f" * 40
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(r))
    result = invoke("verify-proof", str(bad))
    assert result.exit_code == 11
    assert f"DOES NOT HOLD: its SHA-1 is {'f' * 40}" in result.stdout
    assert "1 of the facts above do not hold" in result.stderr
    (tmp_path / "junk.json").write_text('{"format": "something else"}')
    result = invoke("verify-proof", str(tmp_path / "junk.json"))
    assert result.exit_code == 2 and "not a Pligt receipt" in result.stderr


@pytest.mark.external
def test_a_receipt_is_never_written_over_another(
    receipt_file: Path, harvested: tuple[Instance, Archive, FlaskClient]
) -> None:
    instance, _, _ = harvested
    before = receipt_file.read_bytes()
    result = invoke("proof", "kursus", "--version", "1", "-o", str(receipt_file), "--instance", str(instance.path))
    assert result.exit_code == 2 and "exists" in result.stderr
    assert receipt_file.read_bytes() == before
    result = invoke("proof", "kursus", "--version", "7", "--instance", str(instance.path))
    assert result.exit_code == 4 and "no version 7 of 'kursus'" in result.stderr


@pytest.mark.external
def test_the_same_receipt_from_the_owner_api_and_the_console(
    harvested: tuple[Instance, Archive, FlaskClient], tsa: LoopbackTsa
) -> None:
    instance, _, client = harvested
    response = client.get("/api/items/kursus/versions/1/receipt", auth=instance.owner_auth)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Disposition"] == 'attachment; filename="kursus-v1.receipt.json"'
    from_api = response.get_json()
    assert _failing(from_api, tsa_ca_pem=tsa.ca_pem) == []
    assert [e["action"] for e in from_api["entries"]] == ["version.published", "deposit.harvest", "deposit.harvest"]
    assert client.get("/api/items/kursus/versions/1/receipt").status_code == 401
    missing = client.get("/api/items/kursus/versions/9/receipt", auth=instance.owner_auth)
    assert missing.status_code == 404 and "no version 9" in missing.get_json()["description"]

    page = client.get("/admin/login").text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token
    client.post("/admin/login", data={"password": instance.owner.password, "csrf_token": token.group(1)})
    items = client.get("/admin/").text
    assert 'href="/admin/items/kursus/versions/1/receipt" download>Receipt</a>' in items
    from_console = client.get("/admin/items/kursus/versions/1/receipt")
    assert from_console.status_code == 200 and "attachment" in from_console.headers["Content-Disposition"]
    receipt = json.loads(from_console.text)
    assert {k: v for k, v in receipt.items() if k != "made_at"} == {k: v for k, v in from_api.items() if k != "made_at"}
