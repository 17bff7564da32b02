"""Email through SMTP: the owner hears of requests, the requester gets the release link.

Email is a courtesy on top of the catalog: a request is stored (and shown by
``pligt requests``) whether or not its notification could be sent.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage

from pligt.core.models import AccessRequest
from pligt.settings import Settings

log = logging.getLogger("pligt.mail")


def mail_configured(settings: Settings) -> bool:
    return bool(settings.smtp_host)


def send_mail(settings: Settings, to: str, subject: str, body: str) -> bool:
    """Send one plain-text message; return False (and log why) if it could not be sent."""
    if not mail_configured(settings):
        return False
    message = EmailMessage()
    message["From"] = settings.smtp_sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=15) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as e:
        log.error("could not send mail %r through %s:%s: %s", subject, settings.smtp_host, settings.smtp_port, e)
        return False
    return True


def notify_owner(settings: Settings, request: AccessRequest) -> bool:
    """Tell the owner that a request waits for a decision."""
    if not settings.owner_email:
        return False
    body = "\n".join(
        [
            f"A new request for access to the protected material of {settings.site_name} was filed.",
            "",
            f"Request:      #{request.id}",
            f"Institution:  {request.institution}",
            f"Contact:      {request.contact_name} <{request.contact_email}>",
            f"Legal basis:  {request.legal_basis}",
            "",
            request.message or "(no message)",
            "",
            "Decide with:",
            f"  pligt approve {request.id}",
            f"  pligt deny {request.id} --reason '...'",
        ]
    )
    return send_mail(
        settings, settings.owner_email, f"Pligt: access request #{request.id} from {request.institution}", body
    )


def send_release_link(settings: Settings, request: AccessRequest, link: str, valid_until: str) -> bool:
    """Send the requester the single-use link to their credentials."""
    if not request.contact_email:
        return False
    body = "\n".join(
        [
            f"Dear {request.contact_name},",
            "",
            f"{settings.site_name} has approved your request #{request.id} for access to its protected material",
            "under the Danish Legal Deposit Act. Your crawler credentials can be fetched ONCE at:",
            "",
            f"  {link}",
            "",
            f"The link is valid until {valid_until} and works a single time. The credentials are for the",
            "legal-deposit institution alone (Pligtafleveringsloven § 10) and must not be passed on.",
        ]
    )
    return send_mail(settings, request.contact_email, f"{settings.site_name}: your access request #{request.id}", body)
