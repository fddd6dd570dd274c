"""Token enforcement for ``/v2``, as ASGI middleware in front of the registry routes.

Each ``/v2`` request's needed access (:func:`node.auth.scopes.required_access`) is checked
against its ``Authorization: Bearer`` token, verified locally with the keys of the current
policy snapshot plus the node's own key, for this node's audience (a token minted for
another node is refused). Answers, as the token specification describes:

- no token, or one that fails verification: 401 ``UNAUTHORIZED`` with
  ``WWW-Authenticate: Bearer realm="<external URL>/service/token",service="<audience>",
  scope="repository:<name>:pull"`` (plus ``error="invalid_token"`` for a bad token);
- a valid token without the needed access: 403 ``DENIED``.

Both bodies carry the needed access as ``detail`` (``[{"Type","Name","Action"}]``).
Tokens whose ``jti`` or robot the snapshot revokes, or whose robot is disabled, are
refused. ``/service/token`` goes to the token service and ``/service/keys`` publishes the
node's public key as JWKS; other paths outside ``/v2`` pass through unguarded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from node.auth.asgi import Receive, Scope, Send, error_body, header, send_json
from node.auth.holder import PolicyHolder
from node.auth.scopes import required_access
from node.auth.token_service import TokenService
from portmesh.tokens import Access, Claims, KeySet, TokenError, format_scope, verify

__all__ = ["AuthMiddleware"]


class AuthMiddleware:
    """Guards ``app``. ``external_url`` is the base of the realm clients are sent to
    (empty: the request's own scheme and Host)."""

    def __init__(
        self,
        app: Any,
        holder: PolicyHolder,
        tokens: TokenService,
        *,
        external_url: str = "",
        leeway: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.holder = holder
        self.tokens = tokens
        self.external_url = external_url.rstrip("/")
        self.leeway = leeway
        self.clock = clock
        self._jwks = json.dumps(KeySet.from_jwks([tokens.key.public_jwk()]).to_jwks()).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == "/service/token":
            await self.tokens(scope, receive, send)
            return
        if path == "/service/keys":
            await send_json(send, 200, self._jwks)
            return
        method = scope["method"]
        needed = required_access(method, path, bytes(scope.get("query_string", b"")))
        if needed is None:
            await self.app(scope, receive, send)
            return
        head = method == "HEAD"
        authorization = header(scope, b"authorization") or ""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            await self._challenge(scope, send, needed, "authentication required", head=head)
            return
        try:
            claims = self._verify(token.strip())
        except TokenError as exc:
            message = f"invalid token: {exc}"
            await self._challenge(scope, send, needed, message, invalid=True, head=head)
            return
        missing = [
            (entry, action)
            for entry in needed
            for action in entry.actions
            if not claims.allows(entry.type, entry.name, action)
        ]
        if missing:
            detail = [{"Type": e.type, "Name": e.name, "Action": a} for e, a in missing]
            body = error_body("DENIED", "requested access to the resource is denied", detail)
            await send_json(send, 403, body, head=head)
            return
        await self.app(scope, receive, send)

    def _verify(self, token: str) -> Claims:
        state = self.holder.current
        policy = state.policy
        claims = verify(
            token,
            state.keyset,
            audience=self.tokens.audience(),
            now=self.clock(),
            leeway=self.leeway,
            issuers=(policy.service.issuer, self.tokens.issuer),
        )
        if claims.jti in policy.revoked.jtis:
            raise TokenError("revoked", "the token has been revoked")
        robot = policy.robots.get(claims.sub)
        if claims.sub in policy.revoked.robots or (robot is not None and robot.disabled):
            raise TokenError("revoked", f"account {claims.sub!r} may no longer use tokens")
        return claims

    def _realm(self, scope: Scope) -> str:
        if self.external_url:
            return self.external_url + "/service/token"
        host = header(scope, b"host")
        if not host:
            server = scope.get("server") or ("localhost", 80)
            host = f"{server[0]}:{server[1]}"
        return f"{scope.get('scheme', 'http')}://{host}/service/token"

    async def _challenge(
        self,
        scope: Scope,
        send: Send,
        needed: list[Access],
        message: str,
        *,
        invalid: bool = False,
        head: bool = False,
    ) -> None:
        params = [
            f'realm="{_quoted(self._realm(scope))}"',
            f'service="{_quoted(self.tokens.audience())}"',
        ]
        if needed:
            scopes = " ".join(format_scope(entry) for entry in needed)
            params.append(f'scope="{_quoted(scopes)}"')
        if invalid:
            params.append('error="invalid_token"')
        challenge = ("Bearer " + ",".join(params)).encode("latin-1", "replace")
        detail = [{"Type": e.type, "Name": e.name, "Action": a} for e in needed for a in e.actions]
        body = error_body("UNAUTHORIZED", message, detail or None)
        await send_json(send, 401, body, [(b"www-authenticate", challenge)], head=head)


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
