"""The institution's side of a WACZ: a real pywb that replays it, and py-wacz that validates it.

Neither can live in the test environment: pywb pins gevent, Jinja2, requests
and friends of its own, py-wacz brings frictionless and ~30 more. They get a
virtual environment of their own (inside .venv, so it goes when .venv does),
made once from the hash-locked ``requirements/tools/replay.txt`` and made again
when it changes (:func:`tests.support.tools.tool_venv`; ``scripts/test`` makes it
before the suite starts).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port
from tests.support.net import start_process
from tests.support.net import stop_process
from tests.support.tools import tool_venv

#: Where the tools' environment lives: beside the test environment's own packages.
VENV = Path(sys.prefix) / "replay-tools"
COLLECTION = "deposit"


def replay_tools() -> Path:
    """Return the ``bin`` folder of the tools' environment, made (or made again) from their lock file first."""
    return tool_venv("replay", VENV)


def validate(wacz: Path) -> subprocess.CompletedProcess[str]:
    """Run py-wacz's validator over ``wacz`` (it checks the datapackage, every file's hash, the layout)."""
    tool = replay_tools() / "wacz"
    return subprocess.run(
        [str(tool), "validate", "--file", str(wacz)], capture_output=True, text=True, timeout=600, check=False
    )


@dataclass
class Wayback:
    """A running pywb with one collection: replay a URL as it was captured with :meth:`raw`."""

    url: str
    process: subprocess.Popen[bytes]

    def raw(self, url: str) -> str:
        """The address of ``url``'s capture in ``id_`` mode: the recorded bytes and headers, not rewritten."""
        return f"{self.url}/{COLLECTION}/2id_/{url}"


def start_wayback(wacz: Path, folder: Path) -> Wayback:
    """Make a pywb collection in ``folder`` from ``wacz`` (its WARC and its own index) and serve it."""
    bin_dir = replay_tools()
    folder.mkdir(parents=True, exist_ok=True)
    run = {"cwd": folder, "capture_output": True, "text": True, "timeout": 300, "check": False}
    for argv in (["init", COLLECTION], ["add", "--unpack-wacz", COLLECTION, str(wacz)]):
        done = subprocess.run([str(bin_dir / "wb-manager"), *argv], **run)  # type: ignore[call-overload]
        assert done.returncode == 0, done.stdout + done.stderr
    port = free_port()
    process = start_process(
        [str(bin_dir / "wayback"), "--directory", str(folder), "--bind", "127.0.0.1", "--port", str(port)],
        folder / "wayback.log",
        f"http://127.0.0.1:{port}/",
        timeout=60,
    )
    return Wayback(f"http://127.0.0.1:{port}", process)


def stop_wayback(wayback: Wayback) -> None:
    stop_process(wayback.process)
