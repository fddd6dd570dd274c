"""Ping a registry endpoint for real: build its adapter and ``GET /v2/`` through it.

The adapter's session does the authentication dance (Basic, or a token from the
registry's token service), so a ping proves the URL, the TLS setting and the credential
together. :func:`ping` returns nothing on success and raises :class:`PingFailed` with a
message fit for the API client otherwise (never containing the secret).
"""

from __future__ import annotations

import httpx
import trio

from adapters.errors import AuthFailed, UpstreamError, error_from_response
from adapters.oci import OCIClient
from adapters.registry import AdapterSpec, create_upstream

__all__ = ["PING_TIMEOUT", "PingFailed", "ping"]

#: the whole ping (connect, authentication, answer) must finish within this many seconds
PING_TIMEOUT = 15.0


class PingFailed(Exception):
    """The registry cannot be reached or refused the credential; ``str()`` says why."""


async def _base_check(upstream: OCIClient) -> None:
    url = f"{upstream.base_url}/v2/"
    response = await upstream.session.send("GET", url, "", "GET /v2/")
    try:
        if response.status_code >= 300:
            body = await upstream.session.read_error(response)
            raise error_from_response(response, body, "GET /v2/")
    finally:
        await response.aclose()


async def ping(spec: AdapterSpec, *, insecure: bool, seconds: float = PING_TIMEOUT) -> None:
    """``GET /v2/`` on the registry ``spec`` describes; PingFailed unless it answers 2xx
    (after authenticating with the spec's credential when it asks for one) within
    ``seconds``."""
    where = spec.url or spec.type
    async with httpx.AsyncClient(verify=not insecure, timeout=spec.timeout) as http:
        try:
            upstream = create_upstream(spec, http=http)
        except ValueError as exc:
            raise PingFailed(str(exc)) from exc
        try:
            if not isinstance(upstream, OCIClient):
                raise PingFailed(f"registry type {spec.type!r} cannot be pinged")
            with trio.fail_after(seconds):
                await _base_check(upstream)
        except trio.TooSlowError as exc:
            raise PingFailed(f"{where} did not answer within {seconds:g} seconds") from exc
        except AuthFailed as exc:
            raise PingFailed(f"{where} refused the credential: {exc}") from exc
        except UpstreamError as exc:
            raise PingFailed(f"{where} is not reachable or not a registry: {exc}") from exc
        finally:
            await upstream.aclose()
