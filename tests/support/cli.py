"""The installed ``pligt`` command, run as a real process."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

#: The installed ``pligt`` script of this virtual environment.
PLIGT = str(Path(sys.executable).with_name("pligt"))


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed `pligt` command as a user would: a process of its own."""
    return subprocess.run(
        [PLIGT, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def run_on_terminal(*args: str) -> tuple[int, bytes]:
    """Run the `pligt` command with stderr on a pseudo-terminal; return its exit code and what it showed."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([PLIGT, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    seen = b""
    while True:  # read while it runs, until the child closes the terminal
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return process.wait(timeout=60), seen
