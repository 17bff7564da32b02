"""The architecture stays easy to see: the core knows nothing of Flask or HTTP, each runtime of
the service stays in its room, the core's rooms import only the rooms below them (the rules are
the data in ``MUST_NOT_IMPORT``), no import goes in a circle, and the code is lint-clean."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pligt",)
FORBIDDEN_IN_CORE = {"flask", "flask_httpauth", "flask_wtf", "flask_babel", "werkzeug", "gunicorn", "click"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imports(path: Path, *, for_types_too: bool = False) -> set[str]:
    """Every module ``path`` imports (anywhere in it, but under ``if TYPE_CHECKING``), by full name.

    :param for_types_too: count the imports under ``if TYPE_CHECKING`` as well.
    """
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node) and not for_types_too:
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


def top_level(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def offenders(
    prefix: str, forbidden: set[str] | None = None, forbidden_prefix: str | None = None
) -> dict[str, list[str]]:
    """Modules under ``prefix`` that import a forbidden top-level package or a module under ``forbidden_prefix``."""
    bad: dict[str, list[str]] = {}
    for name, path in MODULES.items():
        if name != prefix and not name.startswith(prefix + "."):
            continue
        found = imports(path)
        hits = sorted(top_level(found) & (forbidden or set()))
        if forbidden_prefix:
            hits += sorted(n for n in found if n == forbidden_prefix or n.startswith(forbidden_prefix + "."))
        if hits:
            bad[name] = hits
    return bad


def test_archive_core_imports_nothing_from_the_service_or_flask() -> None:
    assert offenders("pligt.core", FORBIDDEN_IN_CORE) == {}
    for service in ("pligt.web", "pligt.cli", "pligt.server"):
        assert offenders("pligt.core", forbidden_prefix=service) == {}


def test_the_cli_and_the_server_never_import_the_views() -> None:
    assert offenders("pligt.cli", forbidden_prefix="pligt.web.views") == {}
    assert offenders("pligt.server", forbidden_prefix="pligt.web.views") == {}


def test_the_cli_reaches_the_web_app_only_through_the_server() -> None:
    assert offenders("pligt.cli", {"flask", "werkzeug", "gunicorn"}, forbidden_prefix="pligt.web") == {}


def test_the_web_app_never_imports_click_or_the_cli() -> None:
    assert offenders("pligt.web", {"click"}, forbidden_prefix="pligt.cli") == {}
    assert offenders("pligt.web", forbidden_prefix="pligt.server") == {}


def test_shared_service_modules_import_no_runtime() -> None:
    for name in (
        "pligt.settings",
        "pligt.instance",
        "pligt.links",
        "pligt.mail",
        "pligt.release",
        "pligt.served",
        "pligt.disposition",
        "pligt.hosting",
    ):
        found = imports(MODULES[name])
        assert not top_level(found) & {"flask", "click", "gunicorn", "werkzeug"}, name
        assert not {n for n in found if n.startswith(("pligt.web", "pligt.cli", "pligt.server"))}, name


def test_views_import_the_services_not_the_factory() -> None:
    """No module imports a package it lives in (the factory imports the views, never the reverse)."""
    bad = {
        name: sorted(n for n in imports(path) if name.startswith(n + ".") and n in MODULES and n not in PACKAGES)
        for name, path in MODULES.items()
    }
    assert {k: v for k, v in bad.items() if v} == {}


def test_no_import_goes_in_a_circle() -> None:
    """Not even one made only for the type checker: two modules that need each other are one."""
    graph = {
        name: {n for n in imports(path, for_types_too=True) if n in MODULES and n != name}
        for name, path in MODULES.items()
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def walk(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])
    assert cycles == []


def test_the_command_loads_neither_flask_nor_boto3_before_a_command_needs_them() -> None:
    probe = (
        "import sys, contextlib, io\n"
        "from pligt.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = set(result.stdout.split())
    assert "click" in loaded
    assert loaded & {"flask", "werkzeug", "boto3", "botocore", "gunicorn", "warcio", "psycopg"} == set()


# -- the rooms of the core ------------------------------------------------------------------

STORAGE = "pligt.core.storage"
CATALOG = "pligt.core.catalog"
CREDENTIALS = "pligt.core.credentials"
PROOF = "pligt.core.proof"
DOWNLOADS = "pligt.core.downloads"
DEPOSITS = "pligt.core.deposits"
KEEPING = "pligt.core.keeping"
EXPORT = "pligt.core.export"
#: The core's rooms; a rule for a room holds for every module in it.
ROOMS = {STORAGE, CATALOG, CREDENTIALS, PROOF, DOWNLOADS, DEPOSITS, KEEPING, EXPORT}
#: The words every room speaks: domain errors, records, names, what people type, the retention
#: rule, content types, writes in batches, the deposit crawler's budget, files made owner-only.
#: They import no room, so every room may import them.
VOCABULARY = {
    "pligt.core.errors",
    "pligt.core.models",
    "pligt.core.names",
    "pligt.core.text",
    "pligt.core.retention",
    "pligt.core.content",
    "pligt.core.batches",
    "pligt.core.crawl_budget",
    "pligt.core.private",
}

#: Room -> the rooms it must not import: the core's architecture, from the ground up.
MUST_NOT_IMPORT: dict[str, set[str]] = {
    **{word: ROOMS for word in VOCABULARY},
    # Bytes in files or objects: no rows, no proofs, no passwords.
    STORAGE: ROOMS - {STORAGE},
    # Rows in SQLite or PostgreSQL, the audit log's hash chain among them (proof.audit), personal
    # fields sealed (proof.sealing): no bytes, none of the rest of the proofs, no rule of the rooms
    # built on it (they hand the catalog theirs).
    CATALOG: {STORAGE, CREDENTIALS, DOWNLOADS, DEPOSITS, KEEPING, EXPORT}
    | {f"{PROOF}.{m}" for m in ("merkle", "notes", "timestamps", "checkpoints", "receipts", "receipt_check")},
    # Access requests, approvals, password hashes and checks: on the catalog.
    CREDENTIALS: {STORAGE, PROOF, DOWNLOADS, DEPOSITS, KEEPING, EXPORT},
    # What the download path asks and records: below the Archive, proving nothing itself.
    DOWNLOADS: {PROOF, DEPOSITS, KEEPING, EXPORT},
    # The proofs are of the catalog's audit log: no bytes, no passwords, no downloads.
    PROOF: {STORAGE, CREDENTIALS, DOWNLOADS, KEEPING, EXPORT},
    # The mathematics of proof (hash chain, Merkle tree, signed notes, time stamps, sealing) needs no store.
    **{f"{PROOF}.{m}": ROOMS for m in ("audit", "merkle", "notes", "timestamps", "sealing")},
    # The Archive keeps the checkpoints, not the reverse (receipts alone are made from an Archive).
    f"{PROOF}.checkpoints": {DEPOSITS},
    # Anyone checks a receipt with this one file and nothing of Pligt.
    f"{PROOF}.receipt_check": {"pligt"},
    # The Archive, the facade the service builds on, stands on every room but these two.
    DEPOSITS: {KEEPING, EXPORT},
    # Keeping (fixity, leftovers, backup, privacy) and export may use every room below them, not each other.
    KEEPING: {EXPORT},
    EXPORT: {KEEPING},
    # The views ask the Archive; they open no catalog, storage or export of their own.
    "pligt.web.views": {CATALOG, STORAGE, KEEPING, EXPORT},
}

#: Each outside library is known to one room (or module) alone: replacing it touches that room only.
LIBRARY_ROOMS: dict[str, set[str]] = {
    "sqlite3": {CATALOG},
    "psycopg": {CATALOG},
    "psycopg_pool": {CATALOG},
    "boto3": {STORAGE},
    "botocore": {STORAGE},
    # Signatures, time stamps, and the sealing of personal fields (proof.sealing, which the catalog uses).
    "cryptography": {PROOF},
    "rfc3161_client": {PROOF},
    "warcio": {EXPORT},
    "surt": {EXPORT},
    "magic": {"pligt.core.content"},
}


def inside(name: str, room: str) -> bool:
    return name == room or name.startswith(room + ".")


def test_each_room_of_the_core_imports_none_it_must_not() -> None:
    """Imports for the type checker count too: a room that needs another's types depends on it."""
    bad = {
        f"{name} (in {room})": hits
        for room, forbidden in MUST_NOT_IMPORT.items()
        for name, path in MODULES.items()
        if inside(name, room)
        and (
            hits := sorted(
                n for n in imports(path, for_types_too=True) if n != name and any(inside(n, f) for f in forbidden)
            )
        )
    }
    assert bad == {}


def test_every_module_of_the_core_has_its_room() -> None:
    """A new module joins a room (or the vocabulary): the core does not grow back into a corridor."""
    homeless = [
        name
        for name in MODULES
        if inside(name, "pligt.core") and name != "pligt.core" and not any(inside(name, r) for r in ROOMS | VOCABULARY)
    ]
    assert homeless == []


def test_the_rules_name_modules_that_exist() -> None:
    """A rule about a module renamed away would hold forever without checking anything."""
    named = set(MUST_NOT_IMPORT) | set().union(*LIBRARY_ROOMS.values(), *MUST_NOT_IMPORT.values())
    assert sorted(n for n in named if n != "pligt" and not any(inside(m, n) for m in MODULES)) == []


def test_each_outside_library_is_known_to_one_room() -> None:
    bad = {
        name: sorted(
            lib
            for lib in top_level(imports(path, for_types_too=True))
            if lib in LIBRARY_ROOMS and not any(inside(name, room) for room in LIBRARY_ROOMS[lib])
        )
        for name, path in MODULES.items()
    }
    assert {name: libs for name, libs in bad.items() if libs} == {}


def test_no_module_takes_a_private_name_from_another_package() -> None:
    """A name with a leading underscore is its package's own business: share it under a public name."""
    bad: dict[str, list[str]] = {}
    for name, path in MODULES.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("pligt"):
                taken = [
                    a.name for a in node.names if a.name.startswith("_") and not inside(node.module or "", package)
                ]
                if taken:
                    bad.setdefault(name, []).extend(f"{node.module}.{t}" for t in taken)
    assert bad == {}


def test_sql_lives_only_in_the_catalog_package() -> None:
    """Each engine's driver is imported by its dialect alone (the portable SQL is in pligt/core/catalog/base.py)."""

    def users(driver: str) -> list[str]:
        return sorted(
            str(path.relative_to(ROOT))
            for package in PACKAGES
            for path in (ROOT / package).rglob("*.py")
            if f"import {driver}" in path.read_text()
        )

    assert users("sqlite3") == ["pligt/core/catalog/sqlite.py"]
    assert users("psycopg") == ["pligt/core/catalog/postgresql.py"]


def test_ruff_is_clean() -> None:
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", str(ROOT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
