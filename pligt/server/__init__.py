"""``pligt serve``: gunicorn with threaded workers, configured for crawlers.

Threaded workers (gthread) because a crawler may spend 20 minutes on one
large file at 500 KB/s: the worker's main loop keeps reporting to the
arbiter while it sends, so no timeout cuts the download off, and the threads
go on serving everyone else. Files go out with sendfile. The worker class
(``worker.py``) is gthread's with request heads gathered (``heads.py``) and
file bodies sent (``bodies.py``) by its main loop; each worker prepares its
first pages before it takes requests (``warm.py``).
"""

from __future__ import annotations

import errno
import gc
import logging
import socket
from typing import Any

from gunicorn.app.base import BaseApplication

from pligt.core.credentials.shared_checks import SharedChecks
from pligt.core.errors import ArchiveError
from pligt.core.errors import ConfigurationError
from pligt.hosting import Deployment
from pligt.server.access_log import NoAddressLogger
from pligt.server.warm import warm_up
from pligt.server.worker import PligtWorker
from pligt.settings import Settings
from pligt.web import create_app


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "bind": f"{settings.host}:{settings.port}",
        "workers": settings.workers,
        "worker_class": PligtWorker,
        "threads": settings.threads,
        # The arbiter's heartbeat timeout; gthread workers beat while threads stream.
        "timeout": 60,
        "graceful_timeout": 30,
        "keepalive": 15,
        # A listening socket per worker (SO_REUSEPORT): the kernel spreads connections
        # over the workers. On one shared socket, the worker that wakes first could take
        # a whole burst of connections and leave the other idle (measured: a third of
        # the throughput in one benchmark run in four).
        "reuse_port": True,
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": "info",
        "logger_class": NoAddressLogger,
        # Forwarded headers are ProxyFix's job, with the configured proxy count.
        "forwarded_allow_ips": "",
        "proc_name": "pligt",
        "control_socket_disable": True,
    }


def _shared_checks() -> SharedChecks | None:
    """Shared password checks, or None where the system has no shared semaphores (no /dev/shm)."""
    try:
        return SharedChecks()
    except OSError as e:
        logging.getLogger("pligt").warning(
            "workers cannot share password checks (%s): each pays the slow hash once per credential", e
        )
        return None


class PligtServer(BaseApplication):
    """A gunicorn application that builds Pligt's app in each worker."""

    def __init__(self, settings: Settings, deployment: Deployment | None = None) -> None:
        self.settings = settings
        #: With a deployment, each worker serves its publishers by host name (pligt/server/dispatch.py).
        self.deployment = deployment
        # Read by every worker forked from here (a class attribute: gunicorn builds the workers).
        PligtWorker.max_per_client = 0 if settings.trusted_proxies else settings.max_connections_per_client
        # Made here, in the master process, so that every worker forked from it shares them.
        self.shared_checks = _shared_checks()
        super().__init__()

    def load_config(self) -> None:
        for key, value in gunicorn_options(self.settings).items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self) -> Any:
        if self.deployment is not None:
            # Publishers' apps are built on their first request: a worker starts at once, whatever their number.
            from pligt.server.dispatch import Dispatcher

            dispatcher = Dispatcher(self.deployment, shared_checks=self.shared_checks)
            # One publisher's app, warmed as a single instance's is, pays once per worker for what every
            # publisher's first answer would (imports, compiled templates, Flask's first dispatch).
            first = self.deployment.any_publisher()
            try:
                if first is not None:
                    warm_up(dispatcher.app(first))
            except ArchiveError as e:  # one publisher that cannot be opened must not keep the others offline
                logging.getLogger("pligt").warning("could not prepare %s: %s", first, e.message)
            gc.collect()
            return dispatcher
        app = create_app(self.settings, shared_checks=self.shared_checks)
        warm_up(app)
        # What start-up made lives as long as the worker: out of the garbage collector's
        # sight, so that its collections stay short (they showed in the p99 latency).
        gc.collect()
        gc.freeze()
        return app


def check_port_free(host: str, port: int) -> None:
    """Refuse an address another server listens on.

    The workers' sockets share their port (SO_REUSEPORT), and so would a second
    server's: it would start and silently take part of the connections. A plain
    socket cannot bind where anyone listens, so one is tried first.

    :raises ConfigurationError: if something listens on ``host:port`` already.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as gunicorn chooses for its sockets
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn: TIME_WAIT is no obstacle
        try:
            probe.bind((host, port))
        except OSError as e:
            hint = " (is another server, or Pligt, running there?)" if e.errno == errno.EADDRINUSE else ""
            raise ConfigurationError(f"cannot listen on {host}:{port}: {e.strerror or e}{hint}") from e


def serve(settings: Settings, deployment: Deployment | None = None) -> None:
    """Run the server until it is stopped (SIGTERM or Ctrl-C); the CLI calls :func:`check_port_free` first.

    :param deployment: serve its publishers by host name, ``settings`` being the deployment's own.
    """
    PligtServer(settings, deployment).run()
