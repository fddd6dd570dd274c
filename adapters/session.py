"""``RegistrySession``: authenticated requests to one registry, as the Docker token
authentication specification describes the dance.

A token answer without ``expires_in`` lasts until its JWT ``exp`` claim when the token is a
JWT (read unverified: it only bounds our cache), else the specification's 60 seconds.

A request goes out anonymously first; a 401 names the scheme in ``WWW-Authenticate``.
``Basic`` is answered with the configured credentials; ``Bearer realm=...,service=...``
sends the session to the token service (``GET realm?service=..&scope=..``, with Basic
credentials when configured) for a token cached per scope (see :class:`TokenCache`). The
scheme learnt is kept, so later requests carry credentials from the start. A 401 to a
request that carried a token invalidates that token and is retried once with a fresh one.

Credentials are static, or come from a :data:`~adapters.auth.CredentialProvider` (a cloud
login that yields short-lived ones): those are cached until shortly before they expire,
fetched by one task while concurrent ones wait, and when the registry or its token service
still refuses them they are dropped and the request is retried once with fresh ones.

``token_grant`` picks how tokens are asked for: ``"basic"`` is the token specification's
``GET realm?service=..&scope=..`` with Basic credentials; ``"refresh_token"`` is its OAuth2
form (``POST realm`` with ``grant_type=refresh_token``, ``service``, ``scope`` and the
credential's password as ``refresh_token``), as Azure Container Registry expects.

With ``"basic"`` and credentials, the first token request asks for an offline token
(``offline_token=true&client_id=portmesh``); when the token service answers with a
``refresh_token``, later tokens for that realm and service are asked for with it (the OAuth2
``POST`` form) instead of sending the password again. A refused refresh token is dropped
and the password used once more.

The HTTP client is the caller's (pooling, TLS, closing); timeouts are the caller's
``httpx.Timeout``. Credentials never appear in ``repr`` or in error messages.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from .auth import (
    Challenge,
    CredentialLease,
    CredentialProvider,
    Credentials,
    LeaseCache,
    Token,
    TokenCache,
    TokenKey,
    jwt_expiry,
    parse_challenges,
    parse_issued_at,
)
from .blobstream import abandon, body_chunks
from .errors import (
    MAX_ERROR_BODY,
    AuthFailed,
    ProtocolError,
    error_from_response,
    error_from_transport,
    send_translated,
)

__all__ = ["TOKEN_GRANTS", "RateLimit", "RegistrySession"]

#: the ways of asking a token service for a token (see the module docstring)
TOKEN_GRANTS = ("basic", "refresh_token")
_LOGIN = "login"
#: the ``client_id`` Portmesh names itself with to token services
CLIENT_ID = "portmesh"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Docker Hub's ``ratelimit-limit`` / ``ratelimit-remaining`` (``N;w=SECONDS``) and
    ``docker-ratelimit-source`` headers, as last seen."""

    limit: int | None
    remaining: int | None
    window: int | None
    source: str | None


def _parse_quota(value: str | None) -> tuple[int | None, int | None]:
    if not value:
        return None, None
    head, _, rest = value.partition(";")
    window = None
    if rest.strip().startswith("w="):
        window = int(rest.strip()[2:]) if rest.strip()[2:].isdigit() else None
    return (int(head) if head.strip().isdigit() else None), window


class RegistrySession:
    """Authenticated HTTP exchanges with one registry. ``rate_limit`` holds the last
    ``ratelimit-*`` headers seen (None until a response carries them)."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        credentials: Credentials | CredentialProvider | None,
        timeout: httpx.Timeout | None,
        tokens: TokenCache,
        token_grant: str = "basic",
    ) -> None:
        if token_grant not in TOKEN_GRANTS:
            raise ValueError(f"unknown token grant {token_grant!r}")
        self.credentials: Credentials | None = None
        self.provider: CredentialProvider | None = None
        if isinstance(credentials, Credentials) or credentials is None:
            self.credentials = credentials
        else:
            self.provider = credentials
        self.tokens = tokens
        self.token_grant = token_grant
        self.logins: LeaseCache[str, CredentialLease] = LeaseCache(clock=tokens.clock)
        self.rate_limit: RateLimit | None = None
        self._http = http
        self._timeout = timeout
        self._challenge: Challenge | None = None
        # (realm, service) -> refresh token from an offline-token answer; never shown
        self._refresh: dict[tuple[str, str | None], str] = {}

    def __repr__(self) -> str:
        shown = "<provider>" if self.provider is not None else repr(self.credentials)
        return f"RegistrySession(credentials={shown})"

    async def current_credentials(self) -> CredentialLease | None:
        """The provider's credentials (cached, refreshed before expiry); None when static."""
        provider = self.provider
        if provider is None:
            return None

        async def login() -> CredentialLease:
            credentials, expires_at = await provider()
            return CredentialLease.until(credentials, expires_at, now=self.tokens.clock())

        return await self.logins.get(_LOGIN, login)

    async def send(
        self,
        method: str,
        url: str,
        scope: str,
        what: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send with authentication for ``scope`` (``repository:<name>:pull``); the
        streamed response is the caller's to close. ``what`` names it in error messages.

        Returns any status but 401; a 401 that the dance cannot get past raises AuthFailed.
        """
        lease = await self.current_credentials()
        if lease is None:
            return await self._send(method, url, scope, what, headers, params, self.credentials)
        try:
            return await self._send(method, url, scope, what, headers, params, lease.credentials)
        except AuthFailed:
            self.logins.invalidate(_LOGIN, lease)
        lease = await self.current_credentials()
        assert lease is not None
        return await self._send(method, url, scope, what, headers, params, lease.credentials)

    async def _send(
        self,
        method: str,
        url: str,
        scope: str,
        what: str,
        headers: dict[str, str] | None,
        params: dict[str, str] | None,
        credentials: Credentials | None,
    ) -> httpx.Response:
        retried_token = False
        sent_basic = False
        for _ in range(4):
            authorization, token = await self._authorization(scope, what, credentials)
            request_headers = dict(headers or {})
            if authorization is not None:
                request_headers["Authorization"] = authorization
            response = await self.exchange(
                method, url, what, headers=request_headers, params=params
            )
            if response.status_code != 401:
                return response
            body = await self.read_error(response)
            await response.aclose()
            sent_basic = sent_basic or (authorization or "").startswith("Basic ")
            challenge = _pick_challenge(response.headers.get("www-authenticate", ""))
            refused = error_from_response(response, body, what)
            if challenge is None:
                raise AuthFailed(f"{refused} with no usable WWW-Authenticate challenge", status=401)
            if credentials is None and (challenge.scheme == "basic" or retried_token):
                raise AuthFailed(
                    f"{refused}; it needs credentials and none are configured",
                    status=401,
                    errors=refused.errors,
                )
            if challenge.scheme == "basic":
                if credentials is None:
                    raise AuthFailed(
                        f"{refused}; it needs credentials and none are configured",
                        status=401,
                        errors=refused.errors,
                    )
                if sent_basic:
                    raise AuthFailed(
                        f"{refused}; the credentials of user"
                        f" {credentials.username!r} were rejected",
                        status=401,
                        errors=refused.errors,
                    )
            elif token is not None and challenge == self._challenge:
                self.tokens.invalidate(_token_key(challenge, scope), token)
                if retried_token:
                    raise AuthFailed(
                        f"{refused}; a fresh token was refused too",
                        status=401,
                        errors=refused.errors,
                    )
                retried_token = True
            self._challenge = challenge
        raise AuthFailed(f"{what}: authentication did not converge", status=401)

    async def exchange(
        self,
        method: str,
        url: str | httpx.URL,
        what: str,
        *,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        json_body: Any = None,
    ) -> httpx.Response:
        """One request as given (no authentication dance) with the session's timeout; the
        rate-limit headers are noted. Transport failures are Unavailable, other httpx
        errors ProtocolError. The streamed response is the caller's to close."""
        kwargs: dict[str, Any] = {"headers": headers, "params": params, "data": data}
        if json_body is not None:
            kwargs["json"] = json_body
        if self._timeout is not None:
            kwargs["timeout"] = self._timeout
        try:
            request = self._http.build_request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise ProtocolError(f"{what}: {exc}") from exc
        response = await send_translated(self._http, request, what, stream=True)
        self._note_rate_limit(response)
        return response

    async def _authorization(
        self, scope: str, what: str, credentials: Credentials | None
    ) -> tuple[str | None, Token | None]:
        challenge = self._challenge
        if challenge is None:
            return None, None
        if challenge.scheme == "basic":
            return (credentials.basic_header() if credentials is not None else None), None
        key = _token_key(challenge, scope)
        token = await self.tokens.get(key, lambda: self._fetch_token(key, what, credentials))
        return f"Bearer {token.value}", token

    async def _fetch_token(
        self, key: TokenKey, what: str, credentials: Credentials | None
    ) -> Token:
        """One token request to the realm; 401/403 -> AuthFailed, and so on."""
        what = f"{what}: token for {key.scope!r} from {key.realm}"
        params = {"scope": key.scope}
        if key.service:
            params["service"] = key.service
        origin = (key.realm, key.service)
        refresh = self._refresh.get(origin) if credentials is not None else None
        if self.token_grant == "refresh_token" and credentials is not None:
            refresh = credentials.password
        if refresh is not None:
            form = {**params, "grant_type": "refresh_token", "refresh_token": refresh}
            if self.token_grant == "basic":
                form["client_id"] = CLIENT_ID
            response = await self.exchange("POST", key.realm, what, headers={}, data=form)
            if response.status_code in (400, 401, 403) and self.token_grant == "basic":
                # The refresh token is no longer good: log in with the password again.
                await self.read_error(response)
                self._refresh.pop(origin, None)
                refresh = None
        if refresh is None:
            headers: dict[str, str] = {}
            if credentials is not None:
                headers["Authorization"] = credentials.basic_header()
                params.update(offline_token="true", client_id=CLIENT_ID)
            response = await self.exchange("GET", key.realm, what, headers=headers, params=params)
        try:
            if response.status_code != 200:
                raise error_from_response(response, await self.read_error(response), what)
            body = await self.read_limited(response, MAX_ERROR_BODY, what)
        finally:
            await response.aclose()
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise ProtocolError(f"{what}: answer is not JSON", status=200) from exc
        value = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(value, str) or not value:
            raise ProtocolError(f"{what}: answer has no token", status=200)
        offline = doc.get("refresh_token")
        static = self.provider is None and credentials is not None
        if self.token_grant == "basic" and static and isinstance(offline, str):
            self._refresh[origin] = offline
        expires_in = doc.get("expires_in")
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)):
            expires_in = _jwt_lifetime(value)
        issued_at = parse_issued_at(doc.get("issued_at"))
        return Token.issued(
            value, now=self.tokens.clock(), expires_in=expires_in, issued_at=issued_at
        )

    def _note_rate_limit(self, response: httpx.Response) -> None:
        headers = response.headers
        if "ratelimit-limit" not in headers and "ratelimit-remaining" not in headers:
            return
        limit, window = _parse_quota(headers.get("ratelimit-limit"))
        remaining, remaining_window = _parse_quota(headers.get("ratelimit-remaining"))
        self.rate_limit = RateLimit(
            limit, remaining, window or remaining_window, headers.get("docker-ratelimit-source")
        )

    async def read_error(self, response: httpx.Response) -> bytes:
        """The start of an error body (for its message); transport trouble gives b""."""
        data = bytearray()
        chunks = body_chunks(response)
        try:
            async for chunk in chunks:
                data += chunk
                if len(data) >= MAX_ERROR_BODY:
                    break
        except httpx.HTTPError:
            pass
        finally:
            await abandon(response, chunks)
        return bytes(data[:MAX_ERROR_BODY])

    async def read_limited(self, response: httpx.Response, limit: int, what: str) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ProtocolError(f"{what}: {declared} bytes is over the {limit} byte limit")
        data = bytearray()
        chunks = body_chunks(response)
        try:
            async for chunk in chunks:
                data += chunk
                if len(data) > limit:
                    raise ProtocolError(f"{what}: body is over the {limit} byte limit")
        except httpx.HTTPError as exc:
            raise error_from_transport(exc, what) from exc
        finally:
            await abandon(response, chunks)
        return bytes(data)


def _jwt_lifetime(token: str) -> float | None:
    """Seconds until a JWT token's ``exp`` (for answers without ``expires_in``, as Azure
    Container Registry's ``/oauth2/token`` gives); None when the token is not a JWT."""
    exp = jwt_expiry(token)
    return None if exp is None else max(0.0, exp - time.time())


def _pick_challenge(header: str) -> Challenge | None:
    """Bearer (with a realm) preferred over Basic; None if neither is offered."""
    challenges = parse_challenges(header)
    for challenge in challenges:
        if challenge.scheme == "bearer" and challenge.params.get("realm"):
            return Challenge(
                "bearer",
                {k: challenge.params[k] for k in ("realm", "service") if k in challenge.params},
            )
    for challenge in challenges:
        if challenge.scheme == "basic":
            return Challenge("basic", {})
    return None


def _token_key(challenge: Challenge, scope: str) -> TokenKey:
    return TokenKey(challenge.params.get("realm", ""), challenge.params.get("service", ""), scope)
