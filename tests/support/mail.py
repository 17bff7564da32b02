"""A real SMTP server on loopback (aiosmtpd) and the settings that send Pligt's mail to it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from typing import TYPE_CHECKING

from tests.support.net import free_port

if TYPE_CHECKING:
    from aiosmtpd.smtp import SMTP
    from aiosmtpd.smtp import Envelope
    from aiosmtpd.smtp import Session


class Mailbox:
    """Messages a real SMTP server (aiosmtpd) received."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # aiosmtpd's hook
        raw = envelope.original_content  # the bytes as received; aiosmtpd sets them before this hook
        assert raw is not None
        self.messages.append(message_from_bytes(raw, policy=default))
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 10) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


@contextmanager
def receiving_mail() -> Iterator[tuple[Mailbox, int]]:
    """Run an SMTP server on a free port of 127.0.0.1; yield its mailbox and port."""
    from aiosmtpd.controller import Controller  # started only by the tests that send mail

    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()  # returns once the server answers (aiosmtpd connects to it first)
    try:
        yield mailbox, port
    finally:
        controller.stop()


def smtp_env(port: int) -> dict[str, str]:
    """PLIGT_* settings that send mail through the test SMTP server."""
    return {
        "PLIGT_SMTP_HOST": "127.0.0.1",
        "PLIGT_SMTP_PORT": str(port),
        "PLIGT_SMTP_STARTTLS": "false",
        "PLIGT_SMTP_SENDER": "pligt@publisher.example.dk",
        "PLIGT_OWNER_EMAIL": "owner@publisher.example.dk",
    }
