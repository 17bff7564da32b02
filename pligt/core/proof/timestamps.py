"""RFC 3161 time stamps of checkpoints, from a time-stamping authority (TSA), with ``rfc3161-client``.

A TSA signs "these bytes' SHA-256 existed at this time". Each checkpoint's
signed note is sent, and the answer kept with the TSA's certificates and the
CA they chain to, so that the stamp can be checked later without the TSA (and
a qualified TSA's stamp has legal weight in the EU, eIDAS art. 41). Asking
never waits long (:data:`TIMEOUT`): a TSA that is down leaves the checkpoint
unstamped, to be stamped when it answers again.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from rfc3161_client import TimestampRequestBuilder
from rfc3161_client import VerificationError
from rfc3161_client import VerifierBuilder
from rfc3161_client import decode_timestamp_response

from pligt.core.errors import InvalidProof
from pligt.core.errors import StorageError

#: Seconds one request to the TSA may take: a slow TSA leaves the checkpoint for later.
TIMEOUT = 5.0
#: The most a TSA's answer may be (a token with its certificate chain is a few kilobytes).
MAX_REPLY = 1 << 20


@dataclass(frozen=True)
class Stamp:
    """A TSA's answer (DER) and the certificates, PEM, to check it with: the TSA's chain and its CA."""

    reply: bytes
    chain_pem: str
    at: datetime


def request_stamp(url: str, data: bytes, roots_pem: str = "", timeout: float = TIMEOUT) -> Stamp:
    """Ask the TSA at ``url`` to stamp ``data``; check its answer before keeping it.

    :param roots_pem: the CA certificate(s) the TSA chains to (PEM); empty: whatever
        self-signed certificate the TSA sends along (checked, but vouched for by nobody).
    :raises StorageError: when the TSA cannot be reached, is slow, or answers with no valid stamp.
    """
    request = TimestampRequestBuilder().data(data).cert_request(cert_request=True).nonce(nonce=True).build()
    http = urllib.request.Request(  # noqa: S310 - the URL is the owner's setting, http(s) checked there
        url,
        data=request.as_bytes(),
        headers={"Content-Type": "application/timestamp-query", "Accept": "application/timestamp-reply"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(http, timeout=timeout) as answer:  # noqa: S310
            reply = answer.read(MAX_REPLY + 1)
    except (OSError, urllib.error.URLError) as e:  # refused, unreachable, timed out, HTTP errors
        raise StorageError(f"the time-stamping authority {url} did not answer: {e}") from e
    if len(reply) > MAX_REPLY:
        raise StorageError(f"the time-stamping authority {url} answered more than {MAX_REPLY:,} bytes")
    try:
        response = decode_timestamp_response(reply)
    except ValueError as e:
        raise StorageError(f"the time-stamping authority {url} answered no time stamp: {e}") from e
    sent = [x509.load_der_x509_certificate(c) for c in response.signed_data.certificates]
    roots = x509.load_pem_x509_certificates(roots_pem.encode()) if roots_pem.strip() else []
    if not roots:
        roots = [c for c in sent if c.issuer == c.subject]
    chain = roots + [c for c in sent if c not in roots]
    chain_pem = "".join(c.public_bytes(Encoding.PEM).decode() for c in chain)
    try:
        at = check_stamp(reply, data, chain_pem, nonce=request.nonce)
    except InvalidProof as e:
        raise StorageError(f"the time-stamping authority {url} answered a stamp that does not verify: {e}") from e
    return Stamp(reply, chain_pem, at)


def check_stamp(
    reply: bytes, data: bytes, chain_pem: str, *, roots_pem: str = "", nonce: int | None = None
) -> datetime:
    """Check that ``reply`` stamps ``data`` and is signed by a TSA certificate chaining to a trusted CA.

    :param chain_pem: the certificates kept with the stamp: self-signed ones are its
        CAs, the others intermediates.
    :param roots_pem: the CA(s) to trust instead of those kept with it (pinned).

    :return: the time the TSA vouches for.
    :raises InvalidProof: saying what does not hold.
    """
    try:
        certs = x509.load_pem_x509_certificates(chain_pem.encode()) if chain_pem.strip() else []
        response = decode_timestamp_response(reply)
    except ValueError as e:
        raise InvalidProof(f"the time stamp cannot be read: {e}") from e
    roots = [c for c in certs if c.issuer == c.subject]
    if roots_pem.strip():
        try:
            roots = x509.load_pem_x509_certificates(roots_pem.encode())
        except ValueError as e:
            raise InvalidProof(f"the trusted CA certificates cannot be read: {e}") from e
    if not roots:
        raise InvalidProof("no CA certificate to check the time stamp against")
    builder = VerifierBuilder(roots=roots, intermediates=[c for c in certs if c.issuer != c.subject], nonce=nonce)
    try:
        builder.build().verify_message(response, data)
    except VerificationError as e:
        raise InvalidProof(f"the time stamp does not verify: {e}") from e
    gen_time: datetime = response.tst_info.gen_time
    return gen_time
