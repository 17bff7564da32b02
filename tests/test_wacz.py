"""`pligt export --wacz`: the collection as one WACZ package, as the deposit institution receives it.

On the realistic instance: the package is replayed by a real pywb (its own
virtual environment, tests/support/replay.py), every retained version fetched
through pywb's ``id_`` mode and compared byte for byte with the stored file,
headers too; the index pages replay and link every version; py-wacz's
validator accepts the package and refuses it with one byte changed; proof
files handed in land under ``proof/`` with their hashes. A large version
streams through in flat memory.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from urllib.parse import urlsplit

import psutil
import pytest
import requests
from warcio.archiveiterator import ArchiveIterator

from pligt.core.errors import InvalidInput
from pligt.core.export.wacz import export_wacz
from pligt.core.models import PUBLIC
from pligt.core.models import Version
from pligt.core.proof.receipt_check import check_note
from pligt.core.proof.receipt_check import check_stamp
from pligt.disposition import content_disposition
from pligt.instance import build_archive
from pligt.links import version_path
from pligt.settings import load_settings
from pligt.web.listing import PAGE_SIZE
from tests.support.app import Instance
from tests.support.cli import PLIGT
from tests.support.cli import invoke
from tests.support.pages import links
from tests.support.realistic import END
from tests.support.realistic import World
from tests.support.realistic import copy_instance
from tests.support.realistic import pligt_at
from tests.support.realistic import pligt_json
from tests.support.realistic import shared_world
from tests.support.replay import Wayback
from tests.support.replay import start_wayback
from tests.support.replay import stop_wayback
from tests.support.replay import validate
from tests.support.tsa import running_tsa
from tests.support.tsa import use_tsa

NOW = END + timedelta(days=1)
BASE = "https://deposit.example.dk"
MiB = 1024 * 1024
#: Bytes of our own standing in for the signed checkpoint and its time stamp (wired in by issue #15's parts 1-5).
CHECKPOINT = "deposit.example.dk/pligt\n42\nq4hxFNk1fC2jvKx4W0Z1xw+Vb5uYrN0Z2eH1JQ4pKCk=\n\n— deposit.example.dk AbC=\n"
TIMESTAMP = bytes(range(256)) * 3


@dataclass
class Export:
    instance: Path
    wacz: Path
    summary: dict[str, Any]
    versions: list[Version]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return shared_world(tmp_path_factory.mktemp("world") / "instance")


@pytest.fixture(scope="module")
def exported(world: World, tmp_path_factory: pytest.TempPathFactory) -> Export:
    folder = tmp_path_factory.mktemp("wacz")
    inst = copy_instance(world, folder / "instance")
    (folder / "checkpoint.txt").write_text(CHECKPOINT, encoding="utf-8")
    (folder / "checkpoint.tsr").write_bytes(TIMESTAMP)
    wacz = folder / "aflevering.wacz"
    summary = pligt_json(
        NOW,
        "export",
        "--wacz",
        str(wacz),
        "--base-url",
        BASE,
        "--instance",
        str(inst),
        "--proof",
        str(folder / "checkpoint.txt"),
        "--proof",
        str(folder / "checkpoint.tsr"),
    )
    versions = build_archive(load_settings(inst, env={})).versions()
    return Export(inst, wacz, summary, versions)


@pytest.fixture(scope="module")
def wayback(exported: Export, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wayback]:
    running = start_wayback(exported.wacz, tmp_path_factory.mktemp("pywb"))
    yield running
    stop_wayback(running)


def stored_bytes(export: Export, version: Version) -> bytes:
    with build_archive(load_settings(export.instance, env={})).open(version) as f:
        return f.read()


@pytest.mark.external
def test_every_retained_version_replays_in_pywb_byte_for_byte_with_its_headers(
    exported: Export, wayback: Wayback
) -> None:
    assert exported.summary["versions"] == len(exported.versions) > 20
    for version in exported.versions:
        replayed = requests.get(wayback.raw(BASE + version_path(version)), timeout=30)
        label = f"{version.slug} v{version.number}"
        assert replayed.status_code == 200, label
        assert replayed.content == stored_bytes(exported, version), label
        assert hashlib.sha256(replayed.content).hexdigest() == version.sha256, label
        assert replayed.headers["Content-Disposition"] == content_disposition(version.filename), label
        assert replayed.headers["Content-Type"] == version.content_type, label
        assert replayed.headers["Content-Length"] == str(version.size), label
        # pywb hands the validators on under its own prefix, as it does every header it does not replay as is.
        assert replayed.headers["X-Archive-Orig-ETag"] == f'"{version.sha256}"', label


@pytest.mark.external
def test_the_index_pages_replay_and_link_every_version(exported: Export, wayback: Wayback) -> None:
    front = requests.get(wayback.raw(BASE + "/"), timeout=30)
    protected = requests.get(wayback.raw(BASE + "/protected/"), timeout=30)
    assert front.status_code == protected.status_code == 200
    assert front.headers["Content-Type"] == "text/html; charset=utf-8"
    public_paths = {unquote(version_path(v)) for v in exported.versions if v.visibility == PUBLIC}
    all_paths = {unquote(version_path(v)) for v in exported.versions}
    assert {p for p in links(front.text) if p.startswith("/files/")} == public_paths
    assert {p for p in links(protected.text) if p.startswith("/files/")} == all_paths
    assert "/protected/" in links(front.text)
    # A reader browses the replay too (pywb's rewriting mode), with the stylesheet the pages use.
    browsed = requests.get(f"{wayback.url}/deposit/2mp_/{BASE}/", timeout=30)
    assert browsed.status_code == 200
    assert "offentliggjort materiale" in browsed.text
    assert f"/deposit/2mp_/{BASE}/protected/" in browsed.text  # the links lead on inside the replay
    css = requests.get(wayback.raw(BASE + "/static/pligt.css"), timeout=30)
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")


def members(wacz: Path) -> dict[str, zipfile.ZipInfo]:
    with zipfile.ZipFile(wacz) as package:
        return {info.filename: info for info in package.infolist()}


@pytest.mark.external
def test_the_package_is_a_valid_wacz_listing_every_file_with_its_hash(exported: Export) -> None:
    checked = validate(exported.wacz)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "is valid" in checked.stdout + checked.stderr

    found = members(exported.wacz)
    assert set(found) == {
        "archive/data.warc.gz",
        "indexes/index.cdx",
        "pages/pages.jsonl",
        "proof/checkpoint.txt",
        "proof/checkpoint.tsr",
        "proof/checkpoint",
        "proof/checkpoint-key.txt",
        "datapackage.json",
        "datapackage-digest.json",
    }
    # Stored, not compressed: a replay tool reads a record straight at its offset.
    assert found["archive/data.warc.gz"].compress_type == zipfile.ZIP_STORED
    with zipfile.ZipFile(exported.wacz) as package:
        described = json.loads(package.read("datapackage.json"))
        digest = json.loads(package.read("datapackage-digest.json"))
        assert digest["hash"] == "sha256:" + hashlib.sha256(package.read("datapackage.json")).hexdigest()
        assert described["wacz_version"] == "1.1.1"
        assert described["mainPageUrl"] == BASE + "/"
        listed = {r["path"]: r for r in described["resources"]}
        assert set(listed) == set(found) - {"datapackage.json", "datapackage-digest.json"}
        for path, resource in listed.items():
            data = package.read(path)
            assert resource["hash"] == "sha256:" + hashlib.sha256(data).hexdigest(), path
            assert resource["bytes"] == len(data), path
        # The proof files, as handed in.
        assert package.read("proof/checkpoint.txt") == CHECKPOINT.encode()
        assert package.read("proof/checkpoint.tsr") == TIMESTAMP
        index = package.read("indexes/index.cdx").decode().splitlines()
        pages = [json.loads(line) for line in package.read("pages/pages.jsonl").decode().splitlines()]
    assert exported.summary["proofs"] == ["checkpoint", "checkpoint-key.txt", "checkpoint.txt", "checkpoint.tsr"]
    assert index == sorted(index)
    assert len(index) == exported.summary["records"]
    indexed = {json.loads(line.split(" ", 2)[2])["url"] for line in index}
    assert {BASE + version_path(v) for v in exported.versions} <= indexed
    assert pages[0]["format"] == "json-pages-1.0"
    assert {p["url"] for p in pages[1:]} >= {BASE + "/", BASE + "/protected/"}


def flip_byte_in_member(source: Path, target: Path, member: str, at: float) -> None:
    """Copy a package with one byte of ``member``'s stored data changed, ``at`` a fraction of the way in."""
    info = members(source)[member]
    data = bytearray(source.read_bytes())
    # The member's data follows its local header: 30 bytes, the name and the extra field.
    header = info.header_offset
    start = header + 30 + int.from_bytes(data[header + 26 : header + 28], "little")
    start += int.from_bytes(data[header + 28 : header + 30], "little")
    data[start + int(info.compress_size * at)] ^= 0x01
    target.write_bytes(bytes(data))


@pytest.mark.external
def test_one_byte_changed_in_a_stored_version_fails_validation(exported: Export, tmp_path: Path) -> None:
    tampered = tmp_path / "tampered.wacz"
    flip_byte_in_member(exported.wacz, tampered, "archive/data.warc.gz", 0.9)

    checked = validate(tampered)
    assert checked.returncode != 0, checked.stdout + checked.stderr
    with zipfile.ZipFile(tampered) as package:
        listed = {r["path"]: r for r in json.loads(package.read("datapackage.json"))["resources"]}
        with pytest.raises(zipfile.BadZipFile):  # the ZIP's own CRC sees it too
            package.read("archive/data.warc.gz")
    assert listed["archive/data.warc.gz"]["hash"] != "sha256:" + hashlib.sha256(tampered.read_bytes()).hexdigest()


# -- refusals -------------------------------------------------------------------------------


def refused(*args: str) -> subprocess.CompletedProcess[str]:
    result = pligt_at(NOW, "export", *args)
    assert result.returncode not in (0, None), result.stdout
    assert "Traceback" not in result.stderr
    return result


@pytest.mark.external
def test_bad_export_arguments_are_refused_and_nothing_is_written(world: World, tmp_path: Path) -> None:
    inst = copy_instance(world, tmp_path / "instance")
    target = tmp_path / "out.wacz"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "checkpoint.txt").write_text(folder)
    (tmp_path / "check point.txt").write_text("x")
    where = ("--instance", str(inst))

    assert "one of them" in refused(*where).stderr
    assert "one of them" in refused("--warc", str(tmp_path / "x.warc.gz"), "--wacz", str(target), *where).stderr
    assert (
        "goes with --wacz"
        in refused(
            "--warc", str(tmp_path / "x.warc.gz"), "--proof", str(tmp_path / "a" / "checkpoint.txt"), *where
        ).stderr
    )
    spaced = ("--proof", str(tmp_path / "check point.txt"))
    assert "'check point.txt'" in refused("--wacz", str(target), *spaced, *where).stderr
    twice = ("--proof", str(tmp_path / "a" / "checkpoint.txt"), "--proof", str(tmp_path / "b" / "checkpoint.txt"))
    assert "two proof files are named 'checkpoint.txt'" in refused("--wacz", str(target), *twice, *where).stderr
    assert not target.exists() and not list(tmp_path.glob("*.partial"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "check point.txt", "instance"]

    target.write_bytes(b"an earlier export\n")
    assert "exists" in refused("--wacz", str(target), *where).stderr
    assert target.read_bytes() == b"an earlier export\n"


# -- memory -----------------------------------------------------------------------------------


def peak_rss_of_export(instance: Path, target: Path) -> int:
    """Run ``pligt export --wacz`` as its own process; return the most memory it held (sampled)."""
    process = psutil.Popen(
        [PLIGT, "export", "--wacz", str(target), "--instance", str(instance)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                peak = max(peak, process.memory_info().rss)
            except psutil.Error:
                return
            done.wait(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        _, stderr = process.communicate(timeout=600)
    finally:
        done.set()
        sampler.join()
    assert process.returncode == 0, stderr
    return peak


def test_a_large_version_streams_through_in_flat_memory(instance: Instance, tmp_path: Path) -> None:
    archive = build_archive(instance.settings)
    archive.publish([b"%PDF-1.4\n small\n"], filename="small.pdf", visibility="public")
    baseline = peak_rss_of_export(instance.path, tmp_path / "small.wacz")

    size = 160 * MiB
    block = hashlib.sha256(b"pligt").digest() * (MiB // 32)
    big = archive.publish(
        (bytes([n % 251]) + block[1:] for n in range(size // MiB)), filename="big.bin", visibility="protected"
    ).version
    target = tmp_path / "big.wacz"
    peak = peak_rss_of_export(instance.path, target)

    print(f"export peak RSS: {baseline / MiB:.0f} MiB small, {peak / MiB:.0f} MiB with a {size // MiB} MiB version")
    assert peak - baseline < 48 * MiB, f"{(peak - baseline) / MiB:.0f} MiB more for a {size // MiB} MiB version"
    with zipfile.ZipFile(target) as package, package.open("archive/data.warc.gz") as warc:
        digests = {}
        for record in ArchiveIterator(warc):
            uri = record.rec_headers.get_header("WARC-Target-URI")
            if record.rec_type == "response" and "/files/" in urlsplit(uri).path:
                sha = hashlib.sha256()
                stream = record.content_stream()
                while chunk := stream.read(MiB):
                    sha.update(chunk)
                digests[uri] = sha.hexdigest()
    assert len(digests) == 2
    assert big.sha256 in digests.values()


@pytest.mark.external
def test_the_package_holds_the_audit_logs_signed_and_time_stamped_checkpoint(world: World, tmp_path: Path) -> None:
    inst = copy_instance(world, tmp_path / "instance")
    with running_tsa(tmp_path / "tsa") as tsa:
        use_tsa(inst / "pligt.toml", tsa)
        wacz = tmp_path / "aflevering.wacz"
        pligt_json(NOW, "export", "--wacz", str(wacz), "--base-url", BASE, "--instance", str(inst))
        assert tsa.answered >= 1
    with zipfile.ZipFile(wacz) as package:
        note = package.read("proof/checkpoint").decode()
        key = package.read("proof/checkpoint-key.txt").decode()
        stamp, chain = package.read("proof/checkpoint.tsr"), package.read("proof/checkpoint-tsa.pem").decode()
    # Checked as a third party would, with the standalone checker alone.
    _, text = check_note(note, key)
    size = int(text.split("\n")[1])
    entries = list(build_archive(load_settings(inst, env={})).catalog.audit_entries())
    assert size == len(entries) > 0  # the whole log as it stood at the export
    stamped_at, _ = check_stamp(stamp, note.encode(), chain, tsa.ca_pem)
    assert stamped_at.startswith(str(datetime.now(UTC).year))
    with pytest.raises(ValueError, match="altered"):
        check_note(note.replace(text.split("\n")[1], str(size - 1), 1), key)


# -- paged indexes, and the proof files' seam in the core ----------------------------------------


def test_every_page_of_both_indexes_is_exported_and_together_they_link_every_version(
    instance: Instance, tmp_path: Path
) -> None:
    archive = build_archive(instance.settings)
    for n in range(PAGE_SIZE + 1):  # one more than a page holds: the public index has two pages
        archive.publish([b"Side %d.\n" % n], filename=f"n{n}.txt", visibility="public")
    archive.publish([b"Beskyttet.\n"], filename="beskyttet.txt", visibility="protected")
    target = tmp_path / "paged.wacz"

    result = invoke("export", "--wacz", str(target), "--base-url", BASE, "--instance", str(instance.path), "--json")

    assert result.exit_code == 0, result.stderr
    pages: dict[str, bytes] = {}
    with zipfile.ZipFile(target) as package, package.open("archive/data.warc.gz") as warc:
        for record in ArchiveIterator(warc):
            uri = record.rec_headers.get_header("WARC-Target-URI") or ""
            if record.rec_type == "response" and "/files/" not in uri:
                pages[uri.removeprefix(BASE)] = record.content_stream().read()
    assert {"/", "/?page=2", "/protected/", "/protected/?page=2"} <= set(pages)
    assert "/?page=3" not in pages and "/protected/?page=3" not in pages
    versions = archive.versions()
    public_links = set(links(pages["/"].decode())) | set(links(pages["/?page=2"].decode()))
    all_links = set(links(pages["/protected/"].decode())) | set(links(pages["/protected/?page=2"].decode()))
    assert {unquote(version_path(v)) for v in versions if v.visibility == PUBLIC} <= public_links
    assert {unquote(version_path(v)) for v in versions} <= all_links
    assert "?page=2" in pages["/"].decode()  # the first page links the second, as the crawler follows it


def test_the_core_export_hands_proof_files_over_and_refuses_bad_names(instance: Instance, tmp_path: Path) -> None:
    archive = build_archive(instance.settings)
    archive.publish([b"%PDF-1.4\n brochure\n"], filename="brochure.pdf", visibility="public")
    common: dict[str, Any] = {
        "base_url": BASE,
        "software": "test",
        "title": "test",
        "created": archive.clock(),
        "url_of": lambda v: BASE + version_path(v),
        "headers_of": lambda v: [("Content-Type", v.content_type)],
    }
    target = tmp_path / "proofs.wacz"
    proofs = [("checkpoint", CHECKPOINT.encode()), ("checkpoint.tsr", TIMESTAMP)]

    export_wacz(archive.catalog, archive.storage, target, proofs=proofs, **common)

    with zipfile.ZipFile(target) as package:
        assert package.read("proof/checkpoint") == CHECKPOINT.encode()
        assert package.read("proof/checkpoint.tsr") == TIMESTAMP
        listed = {r["path"]: r for r in json.loads(package.read("datapackage.json"))["resources"]}
    assert listed["proof/checkpoint.tsr"]["hash"] == "sha256:" + hashlib.sha256(TIMESTAMP).hexdigest()
    assert listed["proof/checkpoint"]["bytes"] == len(CHECKPOINT.encode())
    for bad in ("../escape", "proof/nested", "", ".hidden", "a b"):
        with pytest.raises(InvalidInput, match="proof file"):
            export_wacz(archive.catalog, archive.storage, tmp_path / "bad.wacz", proofs=[(bad, b"x")], **common)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["instance", "proofs.wacz"]
