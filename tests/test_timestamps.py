"""RFC 3161 time stamps of the checkpoints, from a real TSA on loopback (OpenSSL's `openssl ts -reply`).

A TSA that is down or slow never holds up a publication: the checkpoint waits
unstamped, `pligt check` says so, and `pligt audit stamp` stamps it once the
TSA answers again. A stamp altered in the catalog, or one signed by a TSA the
instance does not trust, fails `pligt audit verify` by name.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from pathlib import Path

import pytest
from cryptography import x509

from pligt.core import Archive
from pligt.core.proof.timestamps import check_stamp
from pligt.instance import init_instance
from pligt.settings import load_settings
from pligt.web.services import pligt
from tests.support.access import REQUEST_FIELDS
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.app import make_app
from tests.support.cli import invoke
from tests.support.data import pdf_bytes
from tests.support.tsa import LoopbackTsa
from tests.support.tsa import running_tsa
from tests.support.tsa import use_tsa

pytestmark = pytest.mark.external


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[LoopbackTsa]:
    with running_tsa(tmp_path / "tsa") as running:
        yield running


@pytest.fixture
def stamped_instance(tmp_path: Path, tsa: LoopbackTsa) -> Instance:
    """An instance whose pligt.toml names the TSA and its CA."""
    settings = load_settings(tmp_path / "instance", env={})
    made = init_instance(settings)
    use_tsa(settings.config_file, tsa)
    return Instance(load_settings(settings.instance, env={}), made)


@pytest.fixture
def core(stamped_instance: Instance, clock: Clock) -> Archive:
    clock.now = datetime.now(UTC).replace(microsecond=0)  # the CLI's clock is the real one
    app = make_app(stamped_instance.settings, clock)
    with app.app_context():
        core = pligt().archive
    core.checkpoints.delay = 0.0  # at once after each change (no burst delay)
    return core


def cli(instance: Instance, *args: str) -> tuple[int, str, str]:
    result = invoke(*args, "--instance", str(instance.path))
    return result.exit_code, result.stdout, result.stderr


def test_each_checkpoint_is_stamped_by_the_tsa_in_the_background(
    core: Archive, stamped_instance: Instance, tsa: LoopbackTsa
) -> None:
    core.publish([pdf_bytes()], filename="a.pdf", slug="brochure", visibility="public")
    core.checkpoints.wait()
    [checkpoint] = core.catalog.checkpoints()
    assert checkpoint.stamp is not None and checkpoint.stamped_at is not None and tsa.answered == 1
    # The stamp is over the signed note's bytes, by the TSA's certificate, chaining to the test CA.
    assert check_stamp(checkpoint.stamp, checkpoint.note.encode(), checkpoint.stamp_chain or "", roots_pem=tsa.ca_pem)
    with pytest.raises(Exception, match="Mismatch between messages"):
        check_stamp(checkpoint.stamp, checkpoint.note.encode() + b" ", checkpoint.stamp_chain or "")
    assert checkpoint.stamp_chain is not None
    names = [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(checkpoint.stamp_chain.encode())]
    assert names == ["CN=Pligt Test TSA CA", "CN=Pligt Test TSA"]
    code, out, _ = cli(stamped_instance, "audit", "verify")
    assert code == 0 and "1 checkpoints verify (0 not time-stamped yet), the newest time-stamped covers 1" in out
    code, out, _ = cli(stamped_instance, "check")
    assert code == 0 and "checkpoints: 1 signed, time-stamped" in out


def test_a_tsa_that_is_down_or_slow_never_holds_up_a_publication(
    core: Archive, stamped_instance: Instance, tsa: LoopbackTsa
) -> None:
    tsa.down = True
    core.publish([pdf_bytes()], filename="a.pdf", slug="brochure", visibility="public")
    core.checkpoints.wait()
    tsa.down, tsa.delay = False, 3.0
    core.checkpoints.tsa_timeout = 0.5
    started = time.monotonic()
    request = core.access.file(dict(REQUEST_FIELDS))
    core.access.approve(request.id)
    assert time.monotonic() - started < 0.5  # the TSA is asked after the change, in the background
    core.checkpoints.wait()
    assert [c.stamp for c in core.catalog.checkpoints()] == [None, None]
    assert "timed out" in (core.catalog.checkpoints()[0].stamp_error or "")

    code, out, _ = cli(stamped_instance, "check")
    assert code == 0 and "warning: 2 checkpoints are not time-stamped yet (last error:" in out
    assert "run `pligt audit stamp`" in out
    tsa.down, tsa.delay = True, 0.0
    code, _, err = cli(stamped_instance, "audit", "stamp")
    assert code == 6 and "did not answer" in err and "503" in err
    tsa.down = False
    code, out, _ = cli(stamped_instance, "audit", "stamp")
    assert code == 0 and "checkpoint 1 (of 1 entries): time-stamped" in out and "checkpoint 2 (of 4" in out
    code, out, _ = cli(stamped_instance, "check")
    # (The instance's loopback name is warned about on its own line: tests/test_no_traps.py.)
    assert code == 0 and "checkpoints: 2 signed" in out and "checkpoints: warning" not in out
    assert all(c.stamp is not None for c in core.catalog.checkpoints())


def test_the_server_asks_a_tsa_that_was_down_again_until_it_stamps(core: Archive, tsa: LoopbackTsa) -> None:
    core.checkpoints.retry_seconds = 0.2
    tsa.down = True
    core.publish([pdf_bytes()], filename="a.pdf", slug="brochure", visibility="public")
    core.checkpoints.wait()
    assert [c.stamp for c in core.catalog.checkpoints()] == [None]
    time.sleep(0.5)  # asked again meanwhile, in vain
    assert [c.stamp for c in core.catalog.checkpoints()] == [None]
    tsa.down = False
    deadline = time.monotonic() + 10
    while core.catalog.checkpoints()[0].stamp is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert core.catalog.checkpoints()[0].stamp is not None  # without pligt audit stamp
    assert tsa.answered == 1


def _stamp_and_tamper(core: Archive, instance: Instance) -> sqlite3.Connection:
    core.publish([pdf_bytes()], filename="a.pdf", slug="brochure", visibility="public")
    core.checkpoints.wait()
    db = sqlite3.connect(instance.path / "catalog.sqlite3", isolation_level=None)
    for name in ("checkpoints_stamped_once", "checkpoints_no_rewrite"):
        db.execute(f"DROP TRIGGER {name}")
    return db


def test_an_altered_time_stamp_is_named(core: Archive, stamped_instance: Instance) -> None:
    db = _stamp_and_tamper(core, stamped_instance)
    core.publish([pdf_bytes("second")], filename="b.pdf", slug="other", visibility="public")
    core.checkpoints.wait()
    assert all(c.stamp is not None for c in core.catalog.checkpoints())
    # The first checkpoint's (valid) stamp put on the second.
    db.execute("UPDATE checkpoints SET stamp = (SELECT stamp FROM checkpoints WHERE id = 1) WHERE id = 2")
    code, _, err = cli(stamped_instance, "audit", "verify")
    assert code == 10
    assert "checkpoint 2 (of 2 entries" in err and "the time stamp does not verify: Mismatch between messages" in err


def test_a_time_stamp_by_a_tsa_the_instance_does_not_trust_is_named(
    core: Archive, stamped_instance: Instance, tmp_path: Path
) -> None:
    db = _stamp_and_tamper(core, stamped_instance)
    with running_tsa(tmp_path / "impostor") as impostor:
        # One who can write the catalog stamps a checkpoint with a TSA of their own, and keeps its chain.
        core.checkpoints.write(new=True)
        core.checkpoints.tsa_url, core.checkpoints.tsa_roots_pem = impostor.url, impostor.ca_pem
        core.checkpoints.stamp_pending()
    assert impostor.answered == 1
    code, _, err = cli(stamped_instance, "audit", "verify")
    assert code == 10 and "checkpoint 2 (of 1 entries" in err and "the time stamp does not verify" in err
    db.close()


def test_the_newest_entries_cut_off_fail_the_consistency_with_the_newest_stamped_checkpoint(
    core: Archive, stamped_instance: Instance
) -> None:
    db = _stamp_and_tamper(core, stamped_instance)
    db.execute("DROP TRIGGER audit_log_no_delete")
    db.execute("DELETE FROM audit_log")
    db.execute("DELETE FROM checkpoints WHERE id > 1")
    code, _, err = cli(stamped_instance, "audit", "verify")
    assert code == 10 and "checkpoint 1 (of 1 entries" in err and "entry 1 was cut off" in err
