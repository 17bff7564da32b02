"""Gunicorn's logger without client addresses, and with a lean, batched access log.

Pligt promises that no IP address is ever persisted: not in the catalog, not in
logs. Gunicorn's own messages can carry one ("Invalid request from ip=…"), so
they are redacted here; the access line is Pligt's own and has none, nor the
token of a release link.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from gunicorn.glogging import Logger

from pligt.core.batches import Batches
from pligt.links import RELEASE_PATH

#: IPv4 and IPv6 addresses, and gunicorn's ``ip=…`` (on malformed requests).
_ADDRESS = re.compile(r"ip=\S+|\b\d{1,3}(?:\.\d{1,3}){3}\b|\[?\b[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}\]?")


class _NoAddresses(logging.Filter):
    """Redact client addresses from gunicorn's own messages (e.g. 'Invalid request from ip=…')."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith("Listening at:"):  # our own bind address, not a client's
            redacted = _ADDRESS.sub("[address removed]", message)
            if redacted != message:
                record.msg, record.args = redacted, ()
        return True


def _without_secrets(uri: str) -> str:
    """The request URI as logged: a release link's token is a password in waiting, so it is left out.

    Anyone who can read the log could otherwise spend the link before the
    institution does.
    """
    if uri.startswith(RELEASE_PATH):
        rest = uri[len(RELEASE_PATH) :]
        query = rest.find("?")
        return RELEASE_PATH + "[token]" + (rest[query:] if query >= 0 else "")
    return uri


class NoAddressLogger(Logger):
    """Gunicorn's logger with client addresses kept out of the error log, and a lean access log.

    The access line has time, request line, status, size and duration, never an
    address; it is formatted directly rather than through gunicorn's atoms (a
    dictionary of every field for every request: 11 % of a download's Python
    time) and handed to the log in batches (:class:`pligt.core.batches.Batches`): one
    logging call per request, with its lock and its write, showed as 9 % of a
    download's Python time under load.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self.error_log.addFilter(_NoAddresses())
        self.access_lines: Batches[str] = Batches(self._write_access, "access-log lines", max_items=256)

    def _write_access(self, lines: list[str]) -> None:
        self.access_log.info("\n".join(lines))

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        ms = request_time.seconds * 1000 + request_time.microseconds // 1000
        uri = _without_secrets(str(environ.get("RAW_URI", "")))
        request_line = f"{environ.get('REQUEST_METHOD')} {uri} {environ.get('SERVER_PROTOCOL')}"
        size = getattr(resp, "sent", 0) or getattr(resp, "response_length", None) or "-"
        self.access_lines.add(f'{self.now()} "{request_line}" {status} {size} {ms}ms')
