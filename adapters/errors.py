"""The one error tree every upstream adapter raises, and its translation from HTTP answers.

Callers (the pull-through proxy, replication) decide on the class alone:

- :class:`AuthFailed` - the upstream or its token service refused our credentials (401/403).
- :class:`NotFound` - the upstream says the repository, manifest or blob does not exist (404).
- :class:`RateLimited` - 429; ``retry_after`` is seconds to wait (``None`` when not given).
- :class:`Unavailable` - connection refused or reset, timeout, cut stream, 5xx.
- :class:`ProtocolError` - the answer is wrong: bad digest, malformed body or headers,
  an unexpected status.
- :class:`Unsupported` - the upstream cannot do this at all (GHCR has no catalog), or not
  as configured; no request was made.

Each keeps the upstream's HTTP ``status`` (``None`` when no answer came) and its message:
an OCI ``{"errors": [...]}`` body is parsed into ``errors`` and summarised in ``message``.
"""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

__all__ = [
    "AuthFailed",
    "NotFound",
    "ProtocolError",
    "RateLimited",
    "Unavailable",
    "Unsupported",
    "UpstreamError",
    "error_from_response",
    "error_from_transport",
    "parse_oci_errors",
    "parse_retry_after",
    "send_translated",
]

#: error bodies longer than this are not parsed (only their start is kept)
MAX_ERROR_BODY = 64 * 1024


class UpstreamError(Exception):
    """An upstream request failed. ``str()`` is a one-line message fit for a log or a client.

    ``status`` is the upstream's HTTP status or ``None``; ``errors`` the entries of its OCI
    error body (``code``, ``message``, ``detail``) when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.errors = errors or []
        super().__init__(message)

    @property
    def codes(self) -> list[str]:
        """The OCI error codes of the upstream's body, in order (may be empty)."""
        return [str(e.get("code", "")) for e in self.errors]


class AuthFailed(UpstreamError):
    """Credentials missing, wrong, or without access (upstream or token service 401/403)."""


class NotFound(UpstreamError):
    """The upstream does not have it (404)."""


class RateLimited(UpstreamError):
    """429. ``retry_after`` is the wait in seconds the upstream asked for, if any."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        errors: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, errors=errors)
        self.retry_after = retry_after


class Unavailable(UpstreamError):
    """Could not get an answer: refused, reset, timed out, cut mid-body, or 5xx."""


class ProtocolError(UpstreamError):
    """The upstream answered, but wrongly: digest mismatch, malformed body, odd status."""


class Unsupported(UpstreamError):
    """The upstream cannot do this at all (GHCR has no catalog), or not as configured."""


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date (RFC 9110 10.2.3).

    Dates in the past give 0.0; an absent or unreadable value gives ``None``. ``now`` is
    the current wall-clock time (``time.time()`` by default).
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def parse_oci_errors(body: bytes) -> list[dict[str, Any]]:
    """The entries of an OCI ``{"errors": [...]}`` body; ``[]`` when it is not one."""
    if not body or len(body) > MAX_ERROR_BODY:
        return []
    try:
        doc = json.loads(body)
    except ValueError:
        return []
    entries = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return []
    return [e for e in entries if isinstance(e, dict)]


def _summary(errors: list[dict[str, Any]], body: bytes) -> str:
    if errors:
        parts = []
        for e in errors:
            code, message = e.get("code"), e.get("message")
            parts.append(f"{code}: {message}" if code and message else str(code or message))
        return "; ".join(parts)
    text = body[:200].decode("utf-8", errors="replace").strip()
    return text


def error_from_response(
    response: httpx.Response, body: bytes, what: str, *, now: float | None = None
) -> UpstreamError:
    """The error for a non-success ``response`` whose (possibly empty) ``body`` was read.

    ``what`` names the request for the message ("manifest library/alpine:3.20"); the
    upstream's own message follows it. 401/403 -> AuthFailed, 404 -> NotFound,
    429 -> RateLimited, 5xx -> Unavailable, anything else -> ProtocolError.
    """
    status = response.status_code
    errors = parse_oci_errors(body)
    detail = _summary(errors, body)
    message = f"{what}: upstream answered {status}" + (f" ({detail})" if detail else "")
    if status in (401, 403):
        return AuthFailed(message, status=status, errors=errors)
    if status == 404:
        return NotFound(message, status=status, errors=errors)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"), now=now)
        return RateLimited(message, status=status, errors=errors, retry_after=retry_after)
    if status >= 500:
        return Unavailable(message, status=status, errors=errors)
    return ProtocolError(message, status=status, errors=errors)


def error_from_transport(exc: httpx.HTTPError, what: str) -> UpstreamError:
    """Translate an httpx transport failure (no usable answer) into :class:`Unavailable`."""
    kind = type(exc).__name__
    return Unavailable(f"{what}: {_message(exc) or kind} ({kind})")


def _message(exc: BaseException) -> str:
    """The first message along ``exc`` and what caused it: httpx's own transport errors
    often have none, while the TLS or socket error under them says what went wrong."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if str(seen):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return ""


async def send_translated(
    http: httpx.AsyncClient, request: httpx.Request, what: str, *, stream: bool = False
) -> httpx.Response:
    """``http.send(request)`` following redirects, with failures translated at the
    boundary: transport trouble is :class:`Unavailable`, any other httpx error
    :class:`ProtocolError`. A streamed response is the caller's to close."""
    try:
        return await http.send(request, stream=stream, follow_redirects=True)
    except httpx.TransportError as exc:
        raise error_from_transport(exc, what) from exc
    except httpx.HTTPError as exc:
        raise ProtocolError(f"{what}: {exc}") from exc
