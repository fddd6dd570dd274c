"""``SpecOptions``: an :class:`~adapters.registry.AdapterSpec` checked against what one
adapter accepts, and the common arguments of the :class:`~adapters.oci.OCIClient` it
builds (URL, credentials, timeout, clock).

Every error is a ``ValueError`` that names the upstream type and the offending option, so
a configuration mistake is reported before any request is made.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from .auth import Credentials

if TYPE_CHECKING:
    from .registry import AdapterSpec

__all__ = ["SpecOptions"]

#: the read timeout of registry requests; ``AdapterSpec.timeout`` is the connect timeout
READ_TIMEOUT = 30.0


class SpecOptions:
    """``spec.options`` validated against ``allowed`` (option name -> its Python type).

    ``default_url`` is used when ``spec.url`` is empty (public registries); without either
    the spec is refused. ``repr`` never shows the password.
    """

    def __init__(
        self, spec: AdapterSpec, allowed: Mapping[str, type], *, default_url: str = ""
    ) -> None:
        self.spec = spec
        kind = spec.type
        unknown = sorted(set(spec.options) - set(allowed))
        if unknown:
            known = ", ".join(sorted(allowed)) or "none"
            raise ValueError(
                f"upstream type {kind!r}: unknown option(s) {', '.join(unknown)} (known: {known})"
            )
        for key, value in spec.options.items():
            wanted = allowed[key]
            if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
                raise ValueError(
                    f"upstream type {kind!r}: option {key!r} must be a {wanted.__name__},"
                    f" not {type(value).__name__}"
                )
        self.url = (spec.url or default_url).rstrip("/")
        if not self.url:
            raise ValueError(f"upstream type {kind!r}: url is required")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"upstream type {kind!r}: url must start with http:// or https://")

    def __repr__(self) -> str:
        return f"SpecOptions({self.spec.type!r}, {self.url!r}, {sorted(self.spec.options)})"

    def get_str(self, key: str, default: str | None = None) -> str | None:
        value = self.spec.options.get(key, default)
        return str(value) if value is not None else None

    def get_int(self, key: str) -> int | None:
        value = self.spec.options.get(key)
        if value is None:
            return None
        if value < 1:
            raise ValueError(f"upstream type {self.spec.type!r}: option {key!r} must be >= 1")
        return int(value)

    def credentials(self, default_username: str | None = None) -> Credentials | None:
        """The spec's username and password; a password alone takes ``default_username``
        (registries that take a token as the password of any user), else it is refused."""
        username, password = self.spec.username, self.spec.password
        if not username and not password:
            return None
        if not password:
            raise ValueError(f"upstream type {self.spec.type!r}: username given without password")
        if not username:
            if default_username is None:
                raise ValueError(
                    f"upstream type {self.spec.type!r}: password given without username"
                )
            username = default_username
        return Credentials(username, password)

    @property
    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(READ_TIMEOUT, connect=self.spec.timeout)

    def client_args(
        self,
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.monotonic,
        *,
        default_username: str | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments for :class:`~adapters.oci.OCIClient` (or a subclass)."""
        return {
            "base_url": self.url,
            "http": http,
            "credentials": self.credentials(default_username),
            "timeout": self.timeout,
            "clock": clock,
        }
