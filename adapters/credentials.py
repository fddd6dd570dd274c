"""Helpers for the cloud logins that yield short-lived registry credentials: one JSON API
call with its errors translated, and expiry times moved onto the adapter's monotonic clock.

A provider's API error names a code (AWS ``__type``, Alibaba ``Code``, OAuth2 ``error``);
codes that mean "your key is wrong" become :class:`AuthFailed` whatever the status, and
throttling codes :class:`RateLimited`; the rest follow the HTTP status as in
:func:`adapters.errors.error_from_response`. Secrets never reach the messages: only the
provider's code and message do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

import httpx

from .auth import Credentials
from .errors import (
    MAX_ERROR_BODY,
    AuthFailed,
    ProtocolError,
    RateLimited,
    UpstreamError,
    error_from_response,
    parse_retry_after,
    send_translated,
)

__all__ = [
    "ApiErrors",
    "CloudApi",
    "auth_mode",
    "call_json",
    "deadline_at",
    "deadline_in",
]


def auth_mode(kind: str, value: str | None, modes: Sequence[str]) -> str:
    """The ``auth`` option of an adapter: ``value``, or the first of ``modes`` when unset;
    ValueError naming the choices when it is none of them."""
    mode = value or modes[0]
    if mode not in modes:
        choices = ", ".join(modes)
        raise ValueError(f"upstream type {kind!r}: auth must be one of {choices}, not {mode!r}")
    return mode


def deadline_in(clock: Callable[[], float], seconds: float) -> float:
    """The monotonic time ``seconds`` from now."""
    return clock() + max(0.0, seconds)


def deadline_at(
    clock: Callable[[], float], epoch: float, *, wall_now: float | None = None
) -> float:
    """The monotonic time at which the wall-clock time ``epoch`` (POSIX seconds) comes."""
    current = time.time() if wall_now is None else wall_now
    return clock() + max(0.0, epoch - current)


class CloudApi:
    """A cloud login API at ``endpoint`` (kept with one trailing ``/``), reached with the
    caller's HTTP client; ``clock`` is the adapter's monotonic clock. Subclasses are the
    session's credential providers: ``await api()`` gives a :meth:`lease`."""

    def __init__(
        self, http: httpx.AsyncClient, *, endpoint: str, clock: Callable[[], float]
    ) -> None:
        self.endpoint = endpoint.rstrip("/") + "/"
        self._http = http
        self._clock = clock

    def lease(
        self, credentials: Credentials, expires_at: float | None, default_lifetime: float
    ) -> tuple[Credentials, float]:
        """``credentials`` with the monotonic time they expire: at the wall-clock time
        ``expires_at`` (POSIX seconds), or ``default_lifetime`` seconds from now when the
        provider's answer did not say."""
        if expires_at is None:
            return credentials, deadline_in(self._clock, default_lifetime)
        return credentials, deadline_at(self._clock, expires_at)


class ApiErrors:
    """How one provider's API reports errors: ``code_field`` / ``message_field`` of its
    JSON error body, and which codes mean bad credentials or throttling."""

    def __init__(
        self,
        code_field: str,
        message_field: str,
        *,
        auth_codes: Collection[str] = (),
        throttle_codes: Collection[str] = (),
    ) -> None:
        self.code_field = code_field
        self.message_field = message_field
        self.auth_codes = frozenset(auth_codes)
        self.throttle_codes = frozenset(throttle_codes)

    def translate(self, response: httpx.Response, body: bytes, what: str) -> UpstreamError:
        """The UpstreamError for a failed API answer whose body was read."""
        generic = error_from_response(response, body, what)
        try:
            doc = json.loads(body) if body else None
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            return generic
        code = str(doc.get(self.code_field) or "").rsplit("#", 1)[-1]
        message = str(doc.get(self.message_field) or doc.get("message") or "")
        detail = ": ".join(part for part in (code, message) if part)
        text = f"{what}: upstream answered {response.status_code}" + (
            f" ({detail})" if detail else ""
        )
        status = response.status_code
        if code in self.throttle_codes or status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            return RateLimited(text, status=status, retry_after=retry_after)
        if code in self.auth_codes:
            return AuthFailed(text, status=status)
        return type(generic)(text, status=status)


async def call_json(
    http: httpx.AsyncClient,
    request: httpx.Request,
    what: str,
    errors: ApiErrors,
) -> dict[str, Any]:
    """Send ``request``; a 2xx answer's JSON object, else the translated error.
    Transport failures are :class:`~adapters.errors.Unavailable`."""
    response = await send_translated(http, request, what)
    body = response.content
    if not 200 <= response.status_code < 300:
        raise errors.translate(response, body[:MAX_ERROR_BODY], what)
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise ProtocolError(f"{what}: answer is not JSON", status=response.status_code) from exc
    if not isinstance(doc, dict):
        raise ProtocolError(f"{what}: answer is not a JSON object", status=response.status_code)
    return doc
