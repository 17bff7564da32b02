"""``pligt init`` and ``pligt serve``: make an instance, and serve it."""

from __future__ import annotations

from pathlib import Path

import click

from ..instance import init_instance
from ..instance import is_initialised
from ..instance import open_instance
from ..settings import load_settings
from .common import instance_option
from .common import json_option
from .common import print_json


@click.command()
@instance_option
@json_option
@click.option("--exist-ok", is_flag=True, help="Do nothing (and succeed) if the instance exists.")
def init(instance: Path | None, as_json: bool, exist_ok: bool) -> None:
    """Create an instance: config file, catalog, storage and the owner account.

    The owner's password is printed once and stored only as a slow hash.
    """
    settings = load_settings(instance)
    if exist_ok and is_initialised(settings):
        if as_json:
            print_json({"instance": str(settings.instance), "created": False})
        return
    made = init_instance(settings)
    if as_json:
        print_json({"instance": made.instance, "created": True, "username": made.username, "password": made.password})
        return
    click.echo(f"Initialised {made.instance}")
    click.echo(f"Owner username: {made.username}")
    click.echo(f"Owner password: {made.password}")
    click.echo("Keep the password now: it is shown only this once.")


@click.command()
@instance_option
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8000).")
@click.option("--workers", type=int, help="Worker processes (default 2).")
@click.option("--threads", type=int, help="Threads per worker (default 32).")
def serve(instance: Path | None, host: str | None, port: int | None, workers: int | None, threads: int | None) -> None:
    """Serve the instance with gunicorn until stopped."""
    overrides = {
        k: v for k, v in {"host": host, "port": port, "workers": workers, "threads": threads}.items() if v is not None
    }
    settings, archive = open_instance(instance, overrides)
    archive.catalog.migrate()
    archive.check()
    archive.catalog.close()
    from ..server import check_port_free  # Flask and gunicorn load only here
    from ..server import serve as run

    check_port_free(settings.host, settings.port)
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    click.echo(f"Pligt serves {settings.instance} at http://{shown}:{settings.port}/", err=True)
    run(settings)


COMMANDS = (init, serve)
