"""What an ``s3://`` storage may be configured with, checked without loading boto3.

The S3 backend validates its own URL and options here, so that a setting is
checked once, with one message, whether it arrives from ``pligt.toml``, the
environment or a test, and so that checking a configuration never imports
botocore (an instance on local files never does).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from pligt.core.errors import ConfigurationError
from pligt.core.errors import InvalidInput
from pligt.core.errors import InvalidOption
from pligt.core.storage.base import check_key

LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
ADDRESSING_STYLES = ("auto", "path", "virtual")
DEFAULT_ALLOWED_REGIONS = ("eu-north-1",)

# S3's own rules for bucket names (the DNS-compatible subset every provider accepts).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")


@dataclass(frozen=True)
class S3Options:
    """The checked options of an S3 backend (see :class:`pligt.core.storage.s3.S3Storage`)."""

    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: str = "auto"
    object_lock_mode: str = "GOVERNANCE"
    allowed_regions: tuple[str, ...] = DEFAULT_ALLOWED_REGIONS
    require_object_lock: bool = True
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    max_attempts: int = 3

    @classmethod
    def of(
        cls,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        addressing_style: str = "auto",
        object_lock_mode: str = "GOVERNANCE",
        allowed_regions: Sequence[str] | str = DEFAULT_ALLOWED_REGIONS,
        require_object_lock: bool = True,
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
        max_attempts: int = 3,
    ) -> S3Options:
        """Check every option and return them.

        :raises InvalidOption: naming the first option the backend cannot run with.
        """
        if addressing_style not in ADDRESSING_STYLES:
            raise InvalidOption(
                "addressing_style",
                f"must be one of {', '.join(ADDRESSING_STYLES)}, not {addressing_style!r}",
                "s3 addressing style",
            )
        mode = str(object_lock_mode).upper()
        if mode not in LOCK_MODES:
            raise InvalidOption(
                "object_lock_mode", f"must be GOVERNANCE or COMPLIANCE, not {object_lock_mode!r}", "s3 Object Lock mode"
            )
        if not isinstance(require_object_lock, bool):
            raise InvalidOption("require_object_lock", f"must be true or false, not {require_object_lock!r}")
        try:
            timeouts = float(connect_timeout), float(read_timeout)
            attempts = int(max_attempts)
        except (TypeError, ValueError) as e:
            raise InvalidOption("connect_timeout", f"timeouts and attempts must be numbers: {e}", "s3") from None
        if min(timeouts) <= 0 or attempts < 1:
            raise InvalidOption("connect_timeout", "timeouts must be positive and max_attempts at least 1", "s3")
        return cls(
            endpoint_url=_check_endpoint(endpoint_url or None),
            region=region or None,
            addressing_style=addressing_style,
            object_lock_mode=mode,
            allowed_regions=_check_regions(allowed_regions),
            require_object_lock=require_object_lock,
            connect_timeout=timeouts[0],
            read_timeout=timeouts[1],
            max_attempts=attempts,
        )


#: The options ``from_url`` accepts (besides the URL itself).
OPTIONS = frozenset(S3Options.__dataclass_fields__)


def parse_url(url: str, options: dict[str, object]) -> tuple[str, str, S3Options]:
    """Split ``s3://bucket/prefix`` and check it with its options; return bucket, prefix and options.

    :raises ConfigurationError: for a malformed URL or an unknown or bad option.
    """
    unknown = set(options) - OPTIONS
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) for s3 storage: {', '.join(sorted(unknown))} (known: {', '.join(sorted(OPTIONS))})"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ConfigurationError(f"storage URL {url!r} is malformed: {e}") from None
    if parts.scheme != "s3":
        raise ConfigurationError(f"storage URL {url!r} must look like s3://bucket/prefix")
    if "@" in parts.netloc:
        raise ConfigurationError(
            f"storage URL {url!r}: credentials never go in the URL; "
            "boto3 finds them (environment, ~/.aws, instance role)"
        )
    if port is not None or not parts.hostname:
        raise ConfigurationError(f"storage URL {url!r} must look like s3://bucket/prefix (no port)")
    if parts.query or parts.fragment:
        raise ConfigurationError(
            f"storage URL {url!r} must not have a query or fragment; set the endpoint and region as settings"
        )
    return check_bucket(parts.netloc), check_prefix(parts.path), S3Options.of(**options)  # type: ignore[arg-type]


def check_url(url: str, **options: object) -> None:
    """Check an ``s3://`` URL and its options without building a backend (or importing boto3)."""
    parse_url(url, options)


def check_bucket(bucket: str) -> str:
    """Return ``bucket`` if S3 (and every compatible provider) accepts the name."""
    if not isinstance(bucket, str) or not _BUCKET.fullmatch(bucket) or ".." in bucket or _IP_ADDRESS.fullmatch(bucket):
        raise ConfigurationError(f"{bucket!r} is not a valid S3 bucket name (3-63 of a-z, 0-9, '.', '-')")
    return bucket


def check_prefix(prefix: str) -> str:
    """Return the prefix without its slashes; each part must be a safe key segment."""
    prefix = (prefix or "").strip("/")
    if not prefix:
        return ""
    try:
        return check_key(prefix)
    except InvalidInput:
        raise ConfigurationError(
            f"S3 prefix {prefix!r} must be path segments of letters, digits, '.', '_' and '-'"
        ) from None


def _check_endpoint(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        raise InvalidOption(
            "endpoint_url", f"{url!r} must look like https://host[:port] (no credentials)", "s3 endpoint URL"
        )
    return url


def _check_regions(regions: Sequence[str] | str) -> tuple[str, ...]:
    items = regions.split(",") if isinstance(regions, str) else list(regions)
    cleaned = tuple(str(r).strip() for r in items if str(r).strip())
    if not cleaned:
        raise InvalidOption("allowed_regions", "must name at least one region (e.g. eu-north-1)")
    return cleaned
