"""Files that hold personal data or secrets: readable by the instance's user alone, whatever the umask.

The catalog holds requesters' names and email addresses, the secrets sign
sessions and checkpoints, and a backup holds both: each is made 0600 (a folder
0700) when Pligt creates it. The mode is set explicitly after creating, since
the creating call's mode is only an upper bound that the umask narrows.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def private_folder(path: Path) -> Path:
    """Create ``path`` (and missing parents) if needed; a folder Pligt makes is left owner-only.

    An existing folder keeps its mode: it may be one the administrator chose (a mount point).
    """
    if not path.is_dir():
        path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        os.chmod(path, FOLDER_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty and owner-only if it does not exist (before a library writes into it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return path
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new owner-only file (never replaces one).

    :raises FileExistsError: if ``path`` exists.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), FILE_MODE)
        out.write(data)
