"""The ``pligt`` command, two ways: in this process (click's CliRunner) or as a real process.

Most tests call :func:`invoke`: the command runs in-process, with stdout, stderr and
the exit code kept apart, and only the ``PLIGT_*`` settings the test gives (none of
the surrounding environment's). :func:`run_cli` and :func:`run_on_terminal` start the
installed ``pligt`` script, for what needs a process boundary: ``pligt serve``,
exit codes through the real entry point, progress bars on a terminal.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from click.testing import Result

from pligt.cli import main

#: The installed ``pligt`` script of this virtual environment.
PLIGT = str(Path(sys.executable).with_name("pligt"))
ENV_PREFIX = "PLIGT_"


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run ``pligt ARGS`` in this process; return click's result (exit_code, stdout, stderr).

    ``env`` holds the settings for this one call; any ``PLIGT_*`` variable of the
    test process is hidden meanwhile, and everything is as before afterwards. An
    exception that escapes the command is raised here (a real process would print
    a traceback): only errors turned into exit codes count as an answer.
    """
    hidden: dict[str, str | None] = {name: None for name in os.environ if name.startswith(ENV_PREFIX)}
    return CliRunner().invoke(main, list(args), env={**hidden, **(env or {})}, catch_exceptions=False)


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
