"""Storage backends, chosen by URL scheme and imported only when used.

Each scheme names the module of its backend and the module that checks its
URL and options; both are imported on first use, so an instance on local
files never loads boto3, and checking a configuration loads no backend at all.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING
from typing import cast
from urllib.parse import urlsplit

from pligt.core.errors import ConfigurationError
from pligt.core.storage.base import Storage
from pligt.core.storage.base import StoredObject
from pligt.core.storage.local import LocalStorage

if TYPE_CHECKING:
    from pligt.core.storage.s3 import S3Storage


@dataclass(frozen=True)
class Backend:
    """Where a scheme's backend class and its configuration check live (``module:name``)."""

    cls: str
    check: str

    def load_class(self) -> type[Storage]:
        """Import and return the backend class."""
        return cast(type[Storage], _load(self.cls))

    def load_check(self) -> Callable[..., None]:
        """Import and return the function that checks a URL and its options."""
        return cast(Callable[..., None], _load(self.check))


#: The backends known by scheme (read-only).
registry = MappingProxyType(
    {
        "file": Backend("pligt.core.storage.local:LocalStorage", "pligt.core.storage.local:check_url"),
        "s3": Backend("pligt.core.storage.s3:S3Storage", "pligt.core.storage.s3_options:check_url"),
    }
)


def _load(target: str) -> object:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _backend(url: str) -> Backend:
    try:
        scheme = urlsplit(url).scheme
    except ValueError as e:
        raise ConfigurationError(f"storage URL {url!r} is malformed: {e}") from None
    try:
        return registry[scheme]
    except KeyError:
        known = ", ".join(f"{s}://" for s in sorted(registry))
        raise ConfigurationError(f"storage URL {url!r}: unknown scheme (known: {known})") from None


def check_backend(url: str, **options: object) -> None:
    """Check a storage URL and its options as its backend would, without opening it.

    :raises ConfigurationError: for an unknown scheme, a malformed URL or a bad option.
    """
    _backend(url).load_check()(url, **options)


def open_backend(url: str, **options: object) -> Storage:
    """Return the backend for ``url``; unknown schemes are a configuration error."""
    return _backend(url).load_class().from_url(url, **options)


def __getattr__(name: str) -> object:
    """``S3Storage`` on demand, so that importing this package does not load boto3."""
    if name == "S3Storage":
        return registry["s3"].load_class()
    raise AttributeError(name)


__all__ = [
    "Backend",
    "LocalStorage",
    "S3Storage",
    "Storage",
    "StoredObject",
    "check_backend",
    "open_backend",
    "registry",
]
