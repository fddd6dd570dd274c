"""Registry authentication pieces: credentials, ``WWW-Authenticate`` challenges, and the
Bearer token cache of the Docker token authentication specification.

The token cache holds one token per (realm, service, scope), refreshes it shortly before
it expires, and single-flights refreshes: N concurrent callers that miss cause one token
request, and all of them get its result (or its error). The same machinery
(:class:`LeaseCache`) holds the short-lived credentials a :data:`CredentialProvider` (a
cloud login: ECR, Google, Azure, Alibaba) yields, as :class:`CredentialLease`.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Protocol, TypeVar

import trio

__all__ = [
    "CREDENTIAL_REFRESH_MARGIN",
    "DEFAULT_EXPIRES_IN",
    "Challenge",
    "CredentialLease",
    "CredentialProvider",
    "Credentials",
    "Lease",
    "LeaseCache",
    "Token",
    "TokenCache",
    "TokenKey",
    "jwt_expiry",
    "parse_challenges",
    "parse_issued_at",
]

#: the spec's default lifetime when a token answer has no ``expires_in``
DEFAULT_EXPIRES_IN = 60.0
#: refresh this long before expiry at most (and at most a quarter of the lifetime)
REFRESH_MARGIN = 10.0


@dataclass(frozen=True, slots=True)
class Credentials:
    """A username and secret (password, token). ``repr`` never shows the secret."""

    username: str
    password: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=***)"

    def basic_header(self) -> str:
        """The ``Authorization`` value for HTTP Basic."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: ``scheme`` lowercased, its params
    with lowercased names (``realm``, ``service``, ``scope``, ``error``)."""

    scheme: str
    params: dict[str, str]


# auth-scheme, or one auth-param (name=token or name="quoted string"), or a comma
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_LEXER = re.compile(
    rf"""\s*(?:
        (?P<param>{_TOKEN})\s*=\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<value>[^\s,"]+))
      | (?P<comma>,)
      | (?P<scheme>{_TOKEN})
    )""",
    re.VERBOSE,
)


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value (RFC 9110 11.6.1) into its challenges.

    Several challenges may share one header (``Basic realm="x", Bearer realm="y"``).
    Unparseable text ends parsing; what was read so far is returned.
    """
    challenges: list[Challenge] = []
    pos = 0
    while pos < len(header):
        match = _LEXER.match(header, pos)
        if match is None or match.end() == pos:
            break
        pos = match.end()
        if match["scheme"] is not None:
            challenges.append(Challenge(match["scheme"].lower(), {}))
        elif match["param"] is not None and challenges:
            quoted = match["quoted"]
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else match["value"]
            challenges[-1].params[match["param"].lower()] = value
    return challenges


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim (POSIX seconds) of a JWT, read without verifying it (only to know
    when our cached copy goes stale: the issuer verifies it); None when ``token`` is not
    a JWT or has no numeric ``exp``."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


def parse_issued_at(text: object) -> float | None:
    """An RFC 3339 ``issued_at`` as a POSIX timestamp, or None if absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return when.timestamp()


@dataclass(frozen=True, slots=True)
class TokenKey:
    realm: str
    service: str
    scope: str


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer token and the monotonic-clock time after which it must not be used.

    ``refresh_at`` is when the cache starts asking for a new one. ``repr`` hides the value.
    """

    value: str = field(repr=False)
    expires_at: float
    refresh_at: float

    @classmethod
    def issued(
        cls,
        value: str,
        *,
        now: float,
        expires_in: float | None,
        issued_at: float | None = None,
        wall_now: float | None = None,
    ) -> Token:
        """A token received at monotonic time ``now``, valid ``expires_in`` seconds
        (default 60) from ``issued_at`` (wall clock; when given and in the past, its age
        is taken off the lifetime, never more than the lifetime)."""
        lifetime = DEFAULT_EXPIRES_IN if expires_in is None else max(0.0, expires_in)
        if issued_at is not None:
            current = time.time() if wall_now is None else wall_now
            age = min(max(0.0, current - issued_at), lifetime)
            lifetime -= age
        margin = min(REFRESH_MARGIN, lifetime / 4)
        return cls(value, now + lifetime, now + lifetime - margin)


class Lease(Protocol):
    """Something cached until ``refresh_at`` and unusable after ``expires_at`` (monotonic)."""

    @property
    def expires_at(self) -> float: ...

    @property
    def refresh_at(self) -> float: ...


K = TypeVar("K", bound=Hashable)
V = TypeVar("V", bound=Lease)


@dataclass
class _Flight(Generic[V]):
    done: trio.Event = field(default_factory=trio.Event)
    value: V | None = None
    error: BaseException | None = None


class LeaseCache(Generic[K, V]):
    """Leases (tokens, credentials) per key, refreshed before expiry, one refresh at a time.

    ``clock`` is a monotonic time source (``time.monotonic``; tests pass a fake one).
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._leases: dict[K, V] = {}
        self._flights: dict[K, _Flight[V]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self._leases)} cached)"

    def peek(self, key: K) -> V | None:
        """The cached lease for ``key`` if it is still fresh (not due for refresh)."""
        lease = self._leases.get(key)
        if lease is None or self.clock() >= lease.refresh_at:
            return None
        return lease

    def invalidate(self, key: K, lease: V | None = None) -> None:
        """Forget the lease of ``key`` (only if it is still ``lease``, when given)."""
        if lease is None or self._leases.get(key) is lease:
            self._leases.pop(key, None)

    async def get(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        """A fresh lease for ``key``: the cached one, or the result of one ``fetch()``
        shared by every concurrent caller. ``fetch``'s error reaches all of them (each
        gets its own copy); nothing is cached then. If the leading caller is cancelled,
        the waiters are not: the next one starts a new fetch."""
        while True:
            lease = self.peek(key)
            if lease is not None:
                return lease
            flight = self._flights.get(key)
            if flight is None:
                return await self._lead(key, fetch)
            await flight.done.wait()
            if flight.error is not None:
                raise copy.copy(flight.error).with_traceback(None) from flight.error
            if flight.value is not None and self.clock() < flight.value.expires_at:
                return flight.value
            # the leader was cancelled, or the lease is already stale: go round again

    async def _lead(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        flight: _Flight[V] = _Flight()
        self._flights[key] = flight
        try:
            lease = await fetch()
            flight.value = lease
            if lease.expires_at > self.clock():
                self._leases[key] = lease
            return lease
        except trio.Cancelled:
            raise
        except Exception as exc:
            flight.error = exc
            raise
        finally:
            del self._flights[key]
            flight.done.set()


class TokenCache(LeaseCache[TokenKey, Token]):
    """Bearer tokens per :class:`TokenKey` (see :class:`LeaseCache`)."""


@dataclass(frozen=True, slots=True)
class CredentialLease:
    """Credentials from a :data:`CredentialProvider`, usable until ``expires_at``."""

    credentials: Credentials
    expires_at: float
    refresh_at: float

    @classmethod
    def until(cls, credentials: Credentials, expires_at: float, *, now: float) -> CredentialLease:
        """Refreshed :data:`CREDENTIAL_REFRESH_MARGIN` before ``expires_at`` (at most a
        quarter of the remaining lifetime before it)."""
        margin = min(CREDENTIAL_REFRESH_MARGIN, max(0.0, expires_at - now) / 4)
        return cls(credentials, expires_at, expires_at - margin)


#: ``async () -> (credentials, expires_at)``: a login that yields short-lived credentials;
#: ``expires_at`` is on the monotonic clock the adapter was given (``clock() + lifetime``).
CredentialProvider = Callable[[], Awaitable[tuple[Credentials, float]]]
#: refresh provider credentials this long before they expire (at most)
CREDENTIAL_REFRESH_MARGIN = 300.0
