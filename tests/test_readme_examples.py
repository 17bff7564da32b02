"""Every `curl` and `pligt` example in the README and docs/ runs, as written, against a real server.

The examples are read from the ``sh`` blocks of the README and the docs it
links (:data:`DOCUMENTS`, in the order their examples build on each other), with their
placeholders filled in (PASSWORD, HASH, X, SLUG, the example paths, the
bucket) and run in a folder whose ``./instance`` a real `pligt serve` serves:
the commands' default instance, as in the README. `curl` runs as a real
process against the server; `pligt` in this process (click's runner: the
same command, a second faster), against the same instance while it is
served. A command must exit 0, or with the code its comment promises
("refused" ones); a `curl` must get the status its comment names (else 200).
So the README cannot drift from the code again: an example the code no
longer takes fails here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from pligt.instance import build_archive
from pligt.instance import init_instance
from pligt.settings import load_settings
from tests.support.access import REQUEST_FIELDS
from tests.support.cli import invoke
from tests.support.data import pdf_bytes
from tests.support.s3 import Bucket
from tests.support.servers import start_server
from tests.support.servers import stop_server

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parent.parent
#: Where the examples are, in the order they run: each builds on what the ones before made
#: (the proofs name a version that the GDPR examples later withdraw).
DOCUMENTS = ("README.md", "docs/proofs.md", "docs/operators.md", "docs/privacy.md", "docs/storage.md")

#: The exit code an example's comment promises, where it is not 0 (exit codes: the README's table).
REFUSED = {
    "pligt withdraw kursus --version 1": 5,  # "refused until its retention has ended"
    "pligt verify-proof kursus-v1.receipt.json --file kursus.pdf": 11,  # "no tsa_url, so nothing is time-stamped"
}
#: Files the examples name, made in the folder they run in.
FILES = ("Årsrapport 2026.pdf", "kursus.pdf", "kursus-v2.pdf", "brochure.pdf")
#: The person whose data the GDPR examples export and erase (X), and the item they withdraw (SLUG).
PERSON = {**REQUEST_FIELDS, "contact_email": "sofie.holm@kb.example.dk", "contact_name": "Sofie Holm"}


@dataclass
class Example:
    source: str
    line: int
    command: str
    #: The comment after it, if any.
    comment: str

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.command)


def readme_examples(text: str, source: str = "README.md") -> list[Example]:
    """Every `curl` and `pligt` command in the ``sh`` blocks of ``text``, continuation lines joined."""
    examples = []
    for block in re.finditer(r"^```sh\n(.*?)^```", text, flags=re.M | re.S):
        first = text.count("\n", 0, block.start()) + 2
        lines = block.group(1).splitlines()
        i = 0
        while i < len(lines):
            start, line = i, lines[i]
            while line.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line.rstrip()[:-1] + " " + lines[i].strip()
            i += 1
            command, comment = _split_comment(line)
            if command.split(" ", 1)[0] in ("curl", "pligt"):
                examples.append(Example(source, first + start, command.strip(), comment))
    return examples


def _split_comment(line: str) -> tuple[str, str]:
    """Split ``line`` at the first ``#`` outside quotes that starts a shell comment."""
    quote = None
    for at, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (at == 0 or line[at - 1].isspace()):
            return line[:at], line[at + 1 :].strip()
    return line, ""


def variants(argv: list[str]) -> list[list[str]]:
    """An optional ``[--flag]`` gives the command without it and with it."""
    optional = [i for i, token in enumerate(argv) if token.startswith("[") and token.endswith("]")]
    if not optional:
        return [argv]
    i = optional[0]
    return [*variants(argv[:i] + argv[i + 1 :]), *variants(argv[:i] + [argv[i][1:-1]] + argv[i + 1 :])]


@pytest.fixture
def folder(tmp_path: Path, bucket: Bucket) -> Iterator[tuple[Path, str, str, Bucket]]:
    """A folder with ``./instance`` served by `pligt serve`; yield it, the server's URL and the owner's password."""
    work = tmp_path / "work"
    work.mkdir()
    settings = load_settings(work / "instance", env={})
    owner = init_instance(settings)
    for name in FILES:
        (work / name).write_bytes(pdf_bytes(name))
    server = start_server(settings.instance, tmp_path / "server.log")
    try:
        yield work, server.url, owner.password, bucket
    finally:
        stop_server(server)


def test_every_curl_and_pligt_example_in_the_readme_runs(
    folder: tuple[Path, str, str, Bucket], monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    work, url, password, bucket = folder
    examples = [e for name in DOCUMENTS for e in readme_examples((ROOT / name).read_text(encoding="utf-8"), name)]
    subcommands = {e.argv[1] for e in examples if e.argv[0] == "pligt"}
    # The parser finds them all (a README without examples would pass vacuously).
    assert {
        "add",
        "items",
        "withdraw",
        "approve",
        "rotate",
        "audit",
        "gdpr",
        "backup",
        "restore",
        "migrate-catalog",
    } <= subcommands
    assert sum(e.argv[0] == "curl" for e in examples) >= 3

    monkeypatch.chdir(work)  # the commands' default instance is ./instance
    env = {name: value for name, value in os.environ.items() if not name.startswith("PLIGT_")}
    filled = {
        "owner:PASSWORD": f"owner:{password}",
        "X": PERSON["contact_email"],
        "SLUG": "kursus",
        "…": "Materialet indeholder personoplysninger om den registrerede",
        "/srv/backups/DATE": str(work / "backups" / date.today().isoformat()),
        "/srv/pligt/new": str(work / "restored"),
        "/srv/pligt-key-backups": str(work / "key-backups"),
        "Y": "ny.adresse@example.dk",
        "file:///srv/pligt/files": f"file://{work / 'files-again'}",
        "s3://acme-pligt/deposit": bucket.url("deposit"),
        # The README's database: one of the test session's throw-away PostgreSQL cluster.
        "postgresql://pligt@db.internal.example:5432/pligt?sslmode=verify-full": postgres_url,
    }
    ran: list[str] = []
    printed: dict[str, str] = {}
    for example in examples:
        _prepare(example, work, bucket)
        for argv in variants(example.argv):
            argv = [_fill(token, filled, url, printed) for token in argv]
            shown = shlex.join(argv)
            if argv[0] == "curl":
                body = work / "curl-body"
                argv = ["curl", "-sS", "-o", str(body), "-w", "%{http_code}", *argv[1:]]
                done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=60, check=False)
                where = f"{example.source} line {example.line}: {shown}\n{done.stdout}{done.stderr}"
                status = re.search(r"\b([1-5]\d\d)\b", example.comment)
                assert done.returncode == 0, where
                assert done.stdout == (status.group(1) if status else "200"), where + "\n" + body.read_text()
                json.loads(body.read_text())  # the API answers JSON, errors too
                output = done.stdout
            else:
                result = invoke(*argv[1:])
                where = (
                    f"{example.source} line {example.line}: {shown}\nstdout: {result.stdout}\nstderr: {result.stderr}"
                )
                assert result.exit_code == REFUSED.get(example.command, 0), where
                output = result.stdout
            printed[" ".join(example.argv[:3])] = output
            ran.append(example.command)

    assert sorted(set(ran)) == sorted({e.command for e in examples})
    # What the examples did, seen from outside.
    archive = build_archive(load_settings(work / "restored", env={}))
    try:
        assert {"Årsrapport 2026.pdf", "kursus.pdf", "kursus-v2.pdf", "brochure.pdf"} <= {
            v.filename for v in archive.versions(include_withdrawn=True)
        }
    finally:
        archive.catalog.close()
    assert (work / "all.warc.gz").stat().st_size > 0
    with zipfile.ZipFile(work / "aflevering.wacz") as package:
        assert "archive/data.warc.gz" in package.namelist()


def test_every_document_with_examples_is_read() -> None:
    """A new document's examples are run too: no ``sh`` block with a command is left out."""
    found = {
        str(path.relative_to(ROOT))
        for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
        if readme_examples(path.read_text(encoding="utf-8"))
    }
    assert found <= set(DOCUMENTS)
    assert all(readme_examples((ROOT / name).read_text(encoding="utf-8")) for name in DOCUMENTS)


def _fill(token: str, filled: dict[str, str], url: str, printed: dict[str, str]) -> str:
    if token == "HASH":
        return printed["pligt audit head"].strip()
    if token.startswith("http://127.0.0.1:8000"):
        return url + token.removeprefix("http://127.0.0.1:8000")
    return filled.get(token, token)


def _prepare(example: Example, work: Path, bucket: Bucket) -> None:
    """Bring the instance where the README's example assumes it is."""
    if example.command == "pligt requests":
        # Requests 1 to 4 filed by the deposit institution; 1 and 2 approved (credentials 1 and 2),
        # so that "approve 3", "deny 4", "rotate 2" and "revoke 2" find what they name.
        archive = build_archive(load_settings(work / "instance", env={}))
        try:
            for n in range(1, 5):
                filed = archive.access.file({**(PERSON if n == 1 else REQUEST_FIELDS), "message": f"Anmodning {n}"})
                assert filed.id == n
            for n in (1, 2):
                archive.access.approve(n, valid_days=365)
        finally:
            archive.catalog.close()
    if example.command.startswith("pligt migrate-storage --to s3://"):  # "after setting s3_* in pligt.toml"
        with (work / "instance" / "pligt.toml").open("a", encoding="utf-8") as config:
            config.write(bucket.settings_toml("deposit").split("\n", 1)[1])


def serve_examples(text: str) -> list[list[str]]:
    """Every ``scripts/serve``/``pligt serve`` command with options in the README (code spans, ``sh`` blocks).

    A synopsis (``[--host]``, in the commands table) is no command.
    """
    spans = re.findall(r"`((?:scripts/serve|pligt serve) [^`]*)`", text.replace("\n", " "))
    blocks = [
        line.split("#", 1)[0]
        for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.M | re.S)
        for line in block.splitlines()
        if line.startswith(("scripts/serve ", "pligt serve "))
    ]
    return [shlex.split(command) for command in [*spans, *blocks] if "--" in command and "[" not in command]


def test_every_serve_example_in_the_readme_starts_as_written(tmp_path: Path) -> None:
    """A ``--host 0.0.0.0`` example without base_url would be refused: each one starts.

    ``scripts/serve`` passes its arguments to ``pligt serve``, which is started here with them.
    """
    examples = [argv for name in DOCUMENTS for argv in serve_examples((ROOT / name).read_text(encoding="utf-8"))]
    assert any("--host" in argv for argv in examples), "the README shows how to serve on every address"
    for n, argv in enumerate(examples):
        options = argv[2:] if argv[0] == "pligt" else argv[1:]
        kept: list[str] = []
        i = 0
        while i < len(options):  # the folder and port are this test's; everything else as written
            if options[i] in ("--instance", "--port"):
                i += 2
                continue
            kept.append(options[i])
            i += 1
        folder = tmp_path / f"instance-{n}"
        init_instance(load_settings(folder, env={}))
        env = {name: value for name, value in os.environ.items() if not name.startswith("PLIGT_")}
        server = start_server(folder, tmp_path / f"serve-{n}.log", *kept, env=env)
        stop_server(server)
