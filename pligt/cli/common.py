"""What every ``pligt`` command shares: options, opening the instance, output, error mapping.

The one place where a domain error becomes a line on stderr and an exit code.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from pligt.core.catalog import Catalog
from pligt.core.credentials.access import DEFAULT_VALID_DAYS
from pligt.core.errors import ArchiveError

F = Callable[..., Any]


class ErrorsAsExitCodes(click.Group):
    """Turn every domain error into one line on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ArchiveError as e:
            click.echo(f"pligt: error: {e.message}", err=True)
            sys.exit(e.exit_code)


def instance_option(f: F) -> F:
    """Add ``--instance PATH`` (default: $PLIGT_INSTANCE, else ./instance)."""
    return click.option(
        "--instance",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="PLIGT_INSTANCE",
        help="The instance folder (default: $PLIGT_INSTANCE, else ./instance).",
    )(f)


def json_option(f: F) -> F:
    """Add ``--json``: machine-readable output instead of text."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(f)


def valid_for_option(f: F) -> F:
    """Add ``--valid-for DAYS``: how long a new credential lasts."""
    return click.option(
        "--valid-for",
        "valid_days",
        type=int,
        default=DEFAULT_VALID_DAYS,
        show_default=True,
        help="Days until the credential expires.",
    )(f)


def show_option(f: F) -> F:
    """Add ``--show``: the password to the owner's eyes, once, instead of a release link."""
    return click.option(
        "--show",
        is_flag=True,
        help="Print the password here, once, instead of sending the single-use release link.",
    )(f)


def print_json(data: object) -> None:
    """Print ``data`` as indented JSON, non-ASCII kept as it is."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def counted(chunks: Iterator[bytes], update: Callable[[int], None]) -> Iterator[bytes]:
    """Pass ``chunks`` through, telling ``update`` each one's size (for a progress bar)."""
    for chunk in chunks:
        update(len(chunk))
        yield chunk


def progress_bar(length: int, label: str, hidden: bool) -> Any:
    """Return click's progress bar on stderr, hidden when asked or when stderr is no terminal."""
    return click.progressbar(length=length, label=label, file=sys.stderr, hidden=hidden or not sys.stderr.isatty())


def warn_unreadable(catalog: Catalog, count: int | None = None) -> int:
    """Say on stderr, plainly, how many requests' personal fields cannot be read, and why; return how many.

    :param count: how many, when the caller has counted them (else the catalog counts).
    """
    if count is None:
        report = catalog.personal_data_report()
        count = report["erased_since"] + report["without_key"]
    if count:
        keys = catalog.keys
        where = catalog.key_store_label()
        if keys is not None and not keys.exists():
            why = f"the key store {where} is missing (lost, or not restored: pligt keys restore FILE)"
        else:
            why = f"their keys are not in the key store {where} (erased after this copy was made, or keys lost)"
        click.echo(
            f"pligt: warning: the personal fields of {count} access request(s) are unreadable: {why}; "
            "versions, retention, credentials and proofs are not affected",
            err=True,
        )
    return count
