"""Storage backends, chosen by URL scheme."""

from __future__ import annotations

from types import MappingProxyType
from urllib.parse import urlsplit

from ..errors import ConfigurationError
from .base import Storage
from .base import StoredObject
from .local import LocalStorage
from .s3 import S3Storage

_registry: dict[str, type[Storage]] = {LocalStorage.scheme: LocalStorage, S3Storage.scheme: S3Storage}
#: Read-only view of the backends known by scheme.
registry = MappingProxyType(_registry)


def register_backend(cls: type[Storage]) -> None:
    """Make ``cls`` available for URLs of its scheme."""
    _registry[cls.scheme] = cls


def open_backend(url: str, **options: object) -> Storage:
    """Return the backend for ``url``; unknown schemes are a configuration error."""
    scheme = urlsplit(url).scheme
    try:
        cls = registry[scheme]
    except KeyError:
        known = ", ".join(f"{s}://" for s in sorted(registry))
        raise ConfigurationError(f"storage URL {url!r}: unknown scheme (known: {known})") from None
    return cls.from_url(url, **options)


__all__ = ["LocalStorage", "S3Storage", "Storage", "StoredObject", "open_backend", "register_backend", "registry"]
