"""The `pligt` command as a user runs it: its output, its errors on stderr, its exit codes.

Most tests run it in this process (click's CliRunner); those at the end start the
installed script: a fresh instance made by `pligt init`, an exit code through the real
entry point, and a progress bar on a terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pligt.core.errors import Conflict
from pligt.core.errors import NotInitialised
from tests.support.app import Instance
from tests.support.cli import invoke
from tests.support.cli import run_cli
from tests.support.cli import run_on_terminal
from tests.support.data import elf_bytes
from tests.support.data import pdf_bytes
from tests.support.data import zip_bytes


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def items(instance: Instance) -> list[dict[str, Any]]:
    result = invoke("items", "--instance", str(instance.path), "--json")
    assert result.exit_code == 0, result.stderr
    listed: list[dict[str, Any]] = json.loads(result.stdout)
    return listed


def test_instance_comes_from_the_environment(tmp_path: Path) -> None:
    folder = tmp_path / "from-env"
    assert invoke("init", env={"PLIGT_INSTANCE": str(folder)}).exit_code == 0
    result = invoke("items", "--json", env={"PLIGT_INSTANCE": str(folder)})
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_add_list_and_refuse_withdrawal_inside_retention(instance: Instance, tmp_path: Path) -> None:
    pdf = write(tmp_path / "Kursusmateriale æøå.pdf", pdf_bytes())
    txt = write(tmp_path / "noter.txt", b"Hej verden\n")
    result = invoke("add", "--instance", str(instance.path), "--public", str(pdf), "--json")
    assert result.exit_code == 0, result.stderr
    [published] = json.loads(result.stdout)
    assert published["slug"] == "kursusmateriale-aeoeaa"
    assert published["filename"] == "Kursusmateriale æøå.pdf"
    assert published["visibility"] == "public"
    assert published["content_type"] == "application/pdf"

    result = invoke("add", "--instance", str(instance.path), str(txt), "--title", "Noter", "--slug", "noter")
    assert result.exit_code == 0, result.stderr
    assert "published noter version 1" in result.stdout

    listed = items(instance)
    assert [(i["slug"], i["visibility"]) for i in listed] == [
        ("kursusmateriale-aeoeaa", "public"),
        ("noter", "protected"),
    ]
    text = invoke("items", "--instance", str(instance.path))
    assert "RETAINED UNTIL" in text.stdout
    assert "noter.txt" in text.stdout

    refused = invoke("withdraw", "--instance", str(instance.path), "noter")
    assert refused.exit_code != 0
    assert "retained until" in refused.stderr
    assert listed[1]["retain_until"][:10] in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert items(instance) == listed


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("brochure.pdf", zip_bytes(), "Zip archive"),
        ("tool.txt", elf_bytes(), "executable"),
        ("empty.pdf", b"", "empty"),
    ],
)
def test_add_refuses_bad_content_and_keeps_what_was_stored(
    instance: Instance, tmp_path: Path, name: str, data: bytes, says: str
) -> None:
    kept = write(tmp_path / "kept.pdf", pdf_bytes())
    assert invoke("add", "--instance", str(instance.path), str(kept)).exit_code == 0
    before = items(instance)
    files_before = sorted(p for p in (instance.path / "files").rglob("*") if p.is_file())
    result = invoke("add", "--instance", str(instance.path), str(write(tmp_path / name, data)))
    assert result.exit_code != 0
    assert says in result.stderr
    assert result.stderr.startswith("pligt: error:")
    assert items(instance) == before
    assert sorted(p for p in (instance.path / "files").rglob("*") if p.is_file()) == files_before


def test_add_several_files_publishes_each(instance: Instance, tmp_path: Path) -> None:
    files = [str(write(tmp_path / f"del-{i}.pdf", pdf_bytes(str(i)))) for i in range(3)]
    result = invoke("add", "--instance", str(instance.path), "--public", *files, "--json")
    assert result.exit_code == 0, result.stderr
    assert [p["slug"] for p in json.loads(result.stdout)] == ["del-0", "del-1", "del-2"]


def test_add_to_existing_slug_makes_a_new_version(instance: Instance, tmp_path: Path) -> None:
    for text in ("one", "two"):
        path = write(tmp_path / "katalog.pdf", pdf_bytes(text))
        assert invoke("add", "--instance", str(instance.path), "--public", str(path)).exit_code == 0
    assert [(i["slug"], i["version"]) for i in items(instance)] == [("katalog", 1), ("katalog", 2)]


def test_large_file_warning_goes_to_stderr(instance: Instance, tmp_path: Path) -> None:
    path = write(tmp_path / "big.pdf", pdf_bytes(pad=3000))
    result = invoke("add", "--instance", str(instance.path), str(path), env={"PLIGT_FETCH_BUDGET_BYTES": "1000"})
    assert result.exit_code == 0
    assert "warning" in result.stderr
    assert "crawler" in result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["withdraw", "nothing"], "no item 'nothing'"),
        (["withdraw", "../etc"], "invalid slug"),
        (["add", "--slug", "Bad Slug", "{pdf}"], "invalid slug"),
        (["add", "--slug", "x", "{pdf}", "{pdf}"], "one file at a time"),
    ],
)
def test_errors_are_one_line_and_non_zero(instance: Instance, tmp_path: Path, args: list[str], says: str) -> None:
    pdf = str(write(tmp_path / "a.pdf", pdf_bytes()))
    result = invoke(*[a.replace("{pdf}", pdf) for a in args], "--instance", str(instance.path))
    assert result.exit_code != 0
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert items(instance) == []


def test_bad_configuration_is_a_clear_error(instance: Instance) -> None:
    result = invoke("items", "--instance", str(instance.path), env={"PLIGT_RETENTION_DAYS": "30"})
    assert result.exit_code != 0
    assert "minimum of 183" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["init", "serve", "add", "items", "withdraw"])
def test_every_command_explains_itself(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "--instance" in result.stdout


# -- the installed script, a process of its own ----------------------------------------------


def test_init_prints_the_owner_password_once_and_stores_only_a_hash(tmp_path: Path) -> None:
    folder = tmp_path / "inst"
    result = run_cli("init", "--instance", str(folder), "--json")
    assert result.returncode == 0, result.stderr
    made = json.loads(result.stdout)
    assert made["username"] == "owner"
    assert len(made["password"]) >= 22
    for path in folder.rglob("*"):
        if path.is_file():
            assert made["password"].encode() not in path.read_bytes(), path
    assert (folder / "pligt.toml").is_file()
    assert (folder / "catalog.sqlite3").is_file()
    assert (folder / "secret_key").stat().st_mode & 0o077 == 0

    again = run_cli("init", "--instance", str(folder))
    assert again.returncode == Conflict.exit_code  # sys.exit through the installed script
    assert "already initialised" in again.stderr
    quiet = run_cli("init", "--instance", str(folder), "--exist-ok")
    assert quiet.returncode == 0
    assert "password" not in quiet.stdout.lower()


def test_uninitialised_instance_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("items", "--instance", str(tmp_path / "nowhere"))
    assert result.returncode == NotInitialised.exit_code
    assert "pligt init" in result.stderr


def test_add_shows_a_progress_bar_on_a_terminal(instance: Instance, tmp_path: Path) -> None:
    files = [str(write(tmp_path / f"bar-{i}.pdf", pdf_bytes(str(i), pad=200_000))) for i in range(2)]
    returncode, seen = run_on_terminal("add", "--instance", str(instance.path), *files)
    assert returncode == 0
    assert b"Publishing" in seen
    assert b"100%" in seen
