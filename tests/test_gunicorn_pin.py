"""The gunicorn code the server's worker stands on is the code it was read against.

pligt/server/worker.py, heads.py and bodies.py override parts of gunicorn's
gthread worker and read its connection, parser and response state; pacing.py
subclasses its socket reader. They were written against gunicorn 27.0.1 (pinned
exactly in pyproject.toml). If an upgrade changes any of the functions below,
this test fails and names them: read the new code, adapt the worker, then
record the new digests (the message says how).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from importlib.metadata import version

#: The release the worker was read against.
GUNICORN = "27.0.1"

#: The start of the SHA-256 of the source of each function the worker overrides, copies from or relies on.
READ_AGAINST = {
    "gunicorn.workers.gthread.ThreadWorker.accept": "f8dcead3dce5c851",
    "gunicorn.workers.gthread.ThreadWorker.on_client_socket_readable": "aead1a3ea7b7daff",
    "gunicorn.workers.gthread.ThreadWorker.murder_pending": "7bf11f46454296e1",
    "gunicorn.workers.gthread.ThreadWorker.finish_request": "616e7bb15a009ff7",
    "gunicorn.workers.gthread.ThreadWorker.handle": "ca85c9be3df75da4",
    "gunicorn.workers.gthread.ThreadWorker.handle_request": "6d0de5b919102efc",
    "gunicorn.workers.gthread.ThreadWorker._keepalive_after": "4ebdbbc8bf5aafa5",
    "gunicorn.workers.gthread.ThreadWorker.enqueue_req": "c9f428953d24acef",
    "gunicorn.workers.gthread.TConn.__init__": "c8763d7c65974e1b",
    "gunicorn.workers.gthread.TConn.init": "5ff3d4ba451cfdf3",
    "gunicorn.workers.gthread.TConn.set_timeout": "03938b63c8bb570e",
    "gunicorn.workers.gthread.TConn.close": "6d1c334ed1979fcb",
    "gunicorn.http.wsgi.Response.__init__": "904d95d8358a3a76",
    "gunicorn.http.wsgi.Response.process_headers": "496d84a357b028ae",
    "gunicorn.http.wsgi.Response.send_headers": "7aff3b7d004fc17b",
    "gunicorn.http.wsgi.Response.can_sendfile": "24f6012251a62814",
    "gunicorn.http.wsgi.Response.is_chunked": "741304718d0b52cf",
    "gunicorn.http.wsgi.Response.should_close": "3888d47a96e289b3",
    "gunicorn.http.wsgi.Response.write_file": "dbbc6333931219cc",
    "gunicorn.http.wsgi.Response.sendfile": "417ea65fb9a19f5b",
    "gunicorn.http.wsgi.Response.force_close": "656092cce3c31f66",
    "gunicorn.http.wsgi.Response.close": "1e78fc7777ff09ae",
    "gunicorn.http.unreader.SocketUnreader.__init__": "e8f9de555670946f",
    "gunicorn.http.unreader.SocketUnreader.chunk": "9f62532259f8468e",
    "gunicorn.http.unreader.Unreader.read": "cbfeead6687ff48b",
    "gunicorn.http.unreader.Unreader.unread": "8e325744dfcaca7f",
    "gunicorn.http.wsgi.create": "2c35d4a2dc629ede",
    "gunicorn.util.close_graceful": "0e5925bfc017bc4e",
    "gunicorn.util.has_fileno": "1faf7f2155242928",
    "gunicorn.http.unreader.Unreader.take_buffered": "89cef5e60e6f09e1",
}


def _source_digest(dotted: str) -> str:
    owner, _, name = dotted.rpartition(".")
    try:
        found = importlib.import_module(owner)
    except ImportError:
        module, _, cls = owner.rpartition(".")
        found = getattr(importlib.import_module(module), cls)
    return hashlib.sha256(inspect.getsource(getattr(found, name)).encode()).hexdigest()[:16]


def test_gunicorn_is_the_release_the_worker_was_read_against() -> None:
    assert version("gunicorn") == GUNICORN


def test_the_gunicorn_code_the_worker_overrides_or_reads_is_unchanged() -> None:
    changed = sorted(name for name, digest in READ_AGAINST.items() if _source_digest(name) != digest)
    assert changed == [], (
        f"gunicorn changed where pligt/server/ stands on it: {changed}. Read the new code, adapt the worker, "
        "then record the new digests: the first 16 digits of sha256(inspect.getsource(obj)) (see _source_digest)."
    )
