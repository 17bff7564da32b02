"""Tools the tests and the benchmarks run beside Pligt, each in a virtual environment of its own.

pywb and py-wacz (the WACZ tests' replay and validation) and copyparty (a benchmark's comparison)
pin packages of their own that cannot live beside Pligt's. ``scripts/lock`` pins each one, with
hashes, in ``requirements/tools/<name>.txt``; :func:`tool_venv` installs from that file alone, with
``--require-hashes``, as ``scripts/_setup.sh`` installs Pligt's own.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL_LOCKS = ROOT / "requirements" / "tools"
#: pip, setuptools and wheel: the first for --build-constraint, the others build what comes as source.
BUILD_LOCK = ROOT / "requirements" / "build.txt"


def tool_venv(name: str, venv: Path) -> Path:
    """Return the ``bin`` folder of ``venv``, made (or made again) from ``requirements/tools/<name>.txt`` first.

    Made again only when that lock file or the build lock changed. Several processes may ask at once
    (pytest-xdist workers): one makes it under a file lock while the others wait, then find it made.

    :raises subprocess.CalledProcessError: if pip cannot install it (a hash that does not match, no network).
    """
    pins = TOOL_LOCKS / f"{name}.txt"
    want = hashlib.sha256(pins.read_bytes() + BUILD_LOCK.read_bytes()).hexdigest()
    stamp = venv / ".pligt-pins"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f".{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text() == want:
            return venv / "bin"
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run(
            [*pip, "--require-hashes", "--only-binary=:all:", "-r", str(BUILD_LOCK)], check=True, timeout=600
        )
        subprocess.run(
            [*pip, "--require-hashes", "--build-constraint", str(BUILD_LOCK), "-r", str(pins)], check=True, timeout=900
        )
        stamp.write_text(want)
    return venv / "bin"


if __name__ == "__main__":
    # scripts/test: `python -m tests.support.tools replay` makes the replay tools before the suite starts.
    for tool in sys.argv[1:]:
        print(tool_venv(tool, Path(sys.prefix) / f"{tool}-tools"))
