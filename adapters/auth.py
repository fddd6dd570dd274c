"""Registry authentication pieces: credentials, ``WWW-Authenticate`` challenges, and the
Bearer token cache of the Docker token authentication specification.

The token cache holds one token per (realm, service, scope), refreshes it shortly before
it expires, and single-flights refreshes: N concurrent callers that miss cause one token
request, and all of them get its result (or its error).
"""

from __future__ import annotations

import base64
import copy
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import trio

__all__ = [
    "DEFAULT_EXPIRES_IN",
    "Challenge",
    "Credentials",
    "Token",
    "TokenCache",
    "TokenKey",
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


@dataclass
class _Flight:
    done: trio.Event = field(default_factory=trio.Event)
    token: Token | None = None
    error: BaseException | None = None


class TokenCache:
    """Bearer tokens per :class:`TokenKey`, refreshed before expiry, one refresh at a time.

    ``clock`` is a monotonic time source (``time.monotonic``; tests pass a fake one).
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._tokens: dict[TokenKey, Token] = {}
        self._flights: dict[TokenKey, _Flight] = {}

    def __repr__(self) -> str:
        return f"TokenCache({len(self._tokens)} tokens)"

    def peek(self, key: TokenKey) -> Token | None:
        """The cached token for ``key`` if it is still fresh (not due for refresh)."""
        token = self._tokens.get(key)
        if token is None or self.clock() >= token.refresh_at:
            return None
        return token

    def invalidate(self, key: TokenKey, token: Token | None = None) -> None:
        """Forget the token of ``key`` (only if it is still ``token``, when given)."""
        if token is None or self._tokens.get(key) is token:
            self._tokens.pop(key, None)

    async def get(self, key: TokenKey, fetch: Callable[[], Awaitable[Token]]) -> Token:
        """A fresh token for ``key``: the cached one, or the result of one ``fetch()``
        shared by every concurrent caller. ``fetch``'s error reaches all of them (each
        gets its own copy); nothing is cached then. If the leading caller is cancelled,
        the waiters are not: the next one starts a new fetch."""
        while True:
            token = self.peek(key)
            if token is not None:
                return token
            flight = self._flights.get(key)
            if flight is None:
                return await self._lead(key, fetch)
            await flight.done.wait()
            if flight.error is not None:
                raise copy.copy(flight.error).with_traceback(None) from flight.error
            if flight.token is not None and self.clock() < flight.token.expires_at:
                return flight.token
            # the leader was cancelled, or the token is already stale: go round again

    async def _lead(self, key: TokenKey, fetch: Callable[[], Awaitable[Token]]) -> Token:
        flight = _Flight()
        self._flights[key] = flight
        try:
            token = await fetch()
            flight.token = token
            if token.expires_at > self.clock():
                self._tokens[key] = token
            return token
        except trio.Cancelled:
            raise
        except Exception as exc:
            flight.error = exc
            raise
        finally:
            del self._flights[key]
            flight.done.set()
