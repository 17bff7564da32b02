"""What every benchmark module uses: sizes, the error, the log line, running a tool."""

from __future__ import annotations

import subprocess
import sys
import time

MiB = 1024 * 1024
#: Every child process runs at most this long (a safety net; each step is shorter).
STEP_TIMEOUT = 600


class Failed(Exception):
    """The benchmark could not complete, or the bytes did not survive the round trip."""


def log(message: str) -> None:
    """Say on stderr, with the time, what the benchmark is doing."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(
    args: list[str], *, timeout: float = STEP_TIMEOUT, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a tool to its end; raise :class:`subprocess.CalledProcessError` if it fails."""
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, input=input, check=True)
