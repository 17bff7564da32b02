"""The ``catalog`` setting: a file path (relative to the instance, never the cwd), sqlite:///…, or postgresql://….

Before, ``PLIGT_CATALOG=postgresql://…`` was taken for a relative file path:
``pligt init`` made a folder named ``postgresql:`` wherever it ran.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import invoke


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder a command runs in: nothing may appear there."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("ftp://db.example.dk/catalog", "unknown scheme 'ftp:'"),
        ("mysql://pligt@db/pligt", "unknown scheme 'mysql:'"),
        ("postgresql:pligt", "names no host"),
        ("postgresql://pligt@db.example.dk:notaport/pligt", "is not a valid PostgreSQL URL"),
        ("postgresql://pligt@db.example.dk:5432", "names no database"),
        ("postgresql://pligt:hunter2@db.example.dk:99999/pligt", "is not a valid PostgreSQL URL"),
        ("sqlite://host/catalog.sqlite3", "a SQLite URL is sqlite:///absolute/path"),
        ("sqlite:relative.sqlite3", "a SQLite URL is sqlite:///absolute/path"),
    ],
)
def test_an_unknown_scheme_or_a_malformed_url_stops_init_with_exit_7_and_makes_nothing(
    value: str, says: str, tmp_path: Path, elsewhere: Path
) -> None:
    result = invoke("init", "--instance", str(tmp_path / "instance"), env={"PLIGT_CATALOG": value})
    assert result.exit_code == 7, result.output
    assert "catalog" in result.stderr and says in result.stderr
    assert "hunter2" not in result.stderr  # a password in the URL is never repeated
    assert list(elsewhere.iterdir()) == []
    assert not (tmp_path / "instance").exists()


def test_a_relative_catalog_path_is_relative_to_the_instance_not_the_cwd(tmp_path: Path, elsewhere: Path) -> None:
    instance = tmp_path / "instance"
    result = invoke("init", "--instance", str(instance), env={"PLIGT_CATALOG": "db/catalog.sqlite3"})
    assert result.exit_code == 0, result.output
    assert (instance / "db" / "catalog.sqlite3").is_file()
    assert list(elsewhere.iterdir()) == []
    listed = invoke("items", "--instance", str(instance), env={"PLIGT_CATALOG": "db/catalog.sqlite3"})
    assert listed.exit_code == 0, listed.output


def test_a_sqlite_url_names_an_absolute_path(tmp_path: Path, elsewhere: Path) -> None:
    target = tmp_path / "elsewhere" / "pligt.sqlite3"
    url = "sqlite://" + str(target)
    result = invoke("init", "--instance", str(tmp_path / "instance"), env={"PLIGT_CATALOG": url})
    assert result.exit_code == 0, result.output
    assert target.is_file()
    assert not (tmp_path / "instance" / "catalog.sqlite3").exists()


def test_an_unreachable_postgresql_catalog_is_one_line_and_exit_6(tmp_path: Path, elsewhere: Path) -> None:
    from tests.support.net import free_port

    url = f"postgresql://pligt:hunter2@127.0.0.1:{free_port()}/pligt"
    result = invoke("init", "--instance", str(tmp_path / "instance"), env={"PLIGT_CATALOG": url})
    assert result.exit_code == 6, result.output
    assert "cannot reach the catalog postgresql://pligt:***@127.0.0.1" in result.stderr
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr
    assert list(elsewhere.iterdir()) == []
