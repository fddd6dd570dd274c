"""The node's token endpoint, ``GET /service/token?service=...&scope=...``.

It answers Docker's token protocol from the current policy snapshot, so logins keep
working when the coordinator is away:

- no credentials: an anonymous token (pull on public projects only);
- HTTP Basic ``robot$...`` + secret: the robot's permissions, checked against the
  snapshot (disabled, expired, revoked robots and wrong secrets get 401);
- any other Basic credentials (user accounts, and robots this snapshot does not know yet)
  are passed to the coordinator's ``/service/token`` with the same query and
  ``Authorization``, and its answer is passed back; an unreachable coordinator is a 401
  that says so.

Tokens are granted as the subset of the requested scopes the identity holds (never an
error for a partial grant), signed with the node key, for this node's audience only. The
answer is ``{"token", "access_token", "expires_in", "issued_at"}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qs

import httpx
import trio

from node.auth.asgi import Receive, Scope, Send, error_body, header, send_json
from node.auth.holder import PolicyHolder
from node.auth.robots import RobotRefused, RobotVerifier
from portmesh.access import Identity, granted
from portmesh.tokens import SigningKey, new_claims, parse_scopes, sign

__all__ = ["ROBOT_PREFIX", "TokenService"]

log = logging.getLogger("portmesh.node.auth")

ROBOT_PREFIX = "robot$"
COORDINATOR_TIMEOUT = 10.0
MAX_FORWARDED = 1024 * 1024


class TokenService:
    """Issues tokens; ``audience`` and ``issuer`` name this node in the tokens' claims.

    ``http`` is the client used to reach ``coordinator_url`` (None: no coordinator).
    """

    def __init__(
        self,
        holder: PolicyHolder,
        key: SigningKey,
        verifier: RobotVerifier,
        *,
        audience: Callable[[], str],
        issuer: str,
        ttl: int = 300,
        coordinator_url: str = "",
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.holder = holder
        self.key = key
        self.verifier = verifier
        self.audience = audience
        self.issuer = issuer
        self.ttl = ttl
        self.coordinator_url = coordinator_url.rstrip("/")
        self.http = http
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            # Docker and containerd fall back from the OAuth POST form to GET on a 404.
            await send_json(send, 404, error_body("UNSUPPORTED", "use GET for tokens"))
            return
        head = scope["method"] == "HEAD"
        query = bytes(scope.get("query_string", b""))
        args = parse_qs(query.decode("latin-1"))
        audience = self.audience()
        service = (args.get("service") or [audience])[0]
        if service != audience:
            body = error_body("DENIED", f"this node issues tokens for service {audience!r} only")
            await send_json(send, 400, body, head=head)
            return
        try:
            requested = parse_scopes(args.get("scope", []))
        except ValueError as exc:
            await send_json(send, 400, error_body("UNSUPPORTED", str(exc)), head=head)
            return
        authorization = header(scope, b"authorization")
        identity = Identity("")
        if authorization:
            known = await self._identify(authorization, scope, query, send, head)
            if known is None:
                return  # answered (refused or forwarded)
            identity = known
        policy = self.holder.current.policy
        access = granted(requested, identity, policy.public_projects)
        now = self.clock()
        claims = new_claims(
            issuer=self.issuer,
            subject=identity.name,
            audience=audience,
            access=access,
            ttl=self.ttl,
            now=now,
        )
        token = sign(claims, self.key)
        issued = datetime.fromtimestamp(claims.iat, UTC).isoformat().replace("+00:00", "Z")
        doc = {"token": token, "access_token": token, "expires_in": self.ttl, "issued_at": issued}
        await send_json(send, 200, json.dumps(doc).encode(), head=head)

    async def _identify(
        self, authorization: str, scope: Scope, query: bytes, send: Send, head: bool
    ) -> Identity | None:
        """The robot behind Basic credentials, or None once the request is answered."""
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            await _unauthorized(send, "the token endpoint takes HTTP Basic credentials", head)
            return None
        try:
            username, sep, secret = (
                base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            sep = ""
        if not sep:
            await _unauthorized(send, "malformed Basic credentials", head)
            return None
        policy = self.holder.current.policy
        local = username.startswith(ROBOT_PREFIX) and (
            username in policy.robots or not self.coordinator_url
        )
        if not local:
            await self._forward(authorization, query, send, head)
            return None
        try:
            robot = await self.verifier.check(policy, username, secret, self.clock())
        except RobotRefused as exc:
            log.info("robot login refused: %s", exc)
            await _unauthorized(send, str(exc), head)
            return None
        return Identity(robot.name, permissions=robot.permissions)

    async def _forward(self, authorization: str, query: bytes, send: Send, head: bool) -> None:
        if not self.coordinator_url or self.http is None:
            message = "no coordinator is configured: only robot accounts can log in to this node"
            await _unauthorized(send, message, head)
            return
        url = f"{self.coordinator_url}/service/token"
        if query:
            url += "?" + query.decode("latin-1")
        try:
            with trio.fail_after(COORDINATOR_TIMEOUT):
                async with self.http.stream(
                    "GET", url, headers={"Authorization": authorization}
                ) as response:
                    body = b""
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_FORWARDED:
                            break
        except (httpx.HTTPError, trio.TooSlowError) as exc:
            log.warning("coordinator %s unreachable for a login: %s", self.coordinator_url, exc)
            message = (
                f"the coordinator is unreachable ({type(exc).__name__}); user logins need it, "
                "robot accounts and anonymous pulls keep working"
            )
            await _unauthorized(send, message, head)
            return
        if len(body) > MAX_FORWARDED:
            await _unauthorized(send, "the coordinator's answer was too large", head)
            return
        extra = []
        content_type = response.headers.get("content-type", "application/json")
        challenge = response.headers.get("www-authenticate")
        if challenge:
            extra.append((b"www-authenticate", challenge.encode("latin-1")))
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [
                    (b"content-type", content_type.encode("latin-1")),
                    (b"content-length", str(len(body)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"" if head else body})


async def _unauthorized(send: Send, message: str, head: bool) -> None:
    await send_json(send, 401, error_body("UNAUTHORIZED", message), head=head)
