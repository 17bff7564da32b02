"""The ``pligt`` command: set up an instance, publish, decide requests, keep promises, serve.

Each group of commands lives in a module of its own and is registered here
with ``add_command``; none imports another, and none imports Flask or boto3
before a command needs them (``pligt serve`` loads the web app).
"""

from __future__ import annotations

import click

from pligt.cli import access
from pligt.cli import audit
from pligt.cli import catalog
from pligt.cli import deploy
from pligt.cli import instance
from pligt.cli import items
from pligt.cli import keeping
from pligt.cli import proofs
from pligt.cli import publishers
from pligt.cli import storage
from pligt.cli.common import ErrorsAsExitCodes


@click.group(cls=ErrorsAsExitCodes, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pligt")
def main() -> None:
    """Pligt: keep brochures and downloads online for the legal-deposit crawler.

    Every command works on one instance folder (config, catalog, files,
    secrets): --instance PATH, else $PLIGT_INSTANCE, else ./instance.
    """


for _module in (instance, items, access, audit, proofs, keeping, storage, catalog, deploy, publishers):
    for _command in _module.COMMANDS:
        main.add_command(_command)
