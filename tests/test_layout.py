"""The architecture stays easy to see: the core knows nothing of Flask or HTTP,
and the code is lint-clean."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_IN_CORE = {"flask", "flask_httpauth", "werkzeug", "deposit", "gunicorn", "click"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_archive_core_imports_nothing_from_the_service_or_flask() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) & FORBIDDEN_IN_CORE)
        for path in (ROOT / "archive").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_sql_lives_only_in_the_catalog_module() -> None:
    users = [
        str(path.relative_to(ROOT))
        for package in ("archive", "deposit")
        for path in (ROOT / package).rglob("*.py")
        if "import sqlite3" in path.read_text()
    ]
    assert users == ["archive/catalog.py"]


def test_ruff_is_clean() -> None:
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", str(ROOT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
