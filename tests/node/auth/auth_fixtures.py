"""A policy world for the node auth unit tests: keys, projects, robots, a guarded app."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from node.auth.holder import PolicyHolder
from node.auth.middleware import AuthMiddleware
from node.auth.robots import RobotVerifier
from node.auth.token_service import TokenService
from node.storage.memory import MemoryMetadataStore
from portmesh.access import Permission
from portmesh.passwords import hash_secret
from portmesh.policy import Policy, Project, Revocations, Robot, ServiceInfo
from portmesh.tokens import Access, KeySet, SigningKey, new_claims, sign

NOW = 1_700_000_000.0
SECRET = "s3cret-robot-secret"
_HASH = hash_secret(SECRET)


def make_policy(coordinator: SigningKey, version: int = 1, **changes: Any) -> Policy:
    values: dict[str, Any] = {
        "version": version,
        "issued_at": NOW,
        "service": ServiceInfo("coordinator", "edge-1"),
        "keys": (coordinator.public_jwk(),),
        "projects": {"pub": Project("pub", 1, public=True), "team": Project("team", 2)},
        "robots": {
            "robot$team+ci": Robot(
                "robot$team+ci",
                _HASH,
                permissions=(Permission("team", "repository", ("pull", "push")),),
            ),
            "robot$off": Robot("robot$off", _HASH, disabled=True),
            "robot$old": Robot("robot$old", _HASH, expires_at=NOW - 1),
            "robot$gone": Robot("robot$gone", _HASH),
        },
        "revoked": Revocations(frozenset({"robot$gone"}), frozenset({"revoked-jti"})),
    }
    values.update(changes)
    return Policy(**values)


async def echo_app(scope: Any, receive: Any, send: Any) -> None:
    """Stands for the registry routes: answers 200 with the path it got."""
    body = json.dumps({"reached": scope["path"]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@dataclass
class World:
    coordinator: SigningKey
    node_key: SigningKey
    holder: PolicyHolder
    tokens: TokenService
    app: AuthMiddleware
    meta: MemoryMetadataStore
    forwarded: list[httpx.Request] = field(default_factory=list)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://node.test"
        )

    def coordinator_token(self, *scopes: Access, aud: str = "edge-1", **claims: Any) -> str:
        made = new_claims(
            issuer="coordinator",
            subject="alice",
            audience=aud,
            access=scopes,
            ttl=300,
            now=claims.pop("now", NOW),
        )
        return sign(made, claims.pop("key", self.coordinator))


async def make_world(
    coordinator_handler: Callable[[httpx.Request], httpx.Response] | None = None,
    clock: Callable[[], float] = lambda: NOW,
) -> World:
    coordinator = SigningKey.generate("coord-1")
    node_key = SigningKey.generate("node-1")
    local = KeySet()
    local.add(node_key.kid, node_key.key.verify_key)
    meta = MemoryMetadataStore()
    holder = await PolicyHolder.open(meta, local, make_policy(coordinator))
    forwarded: list[httpx.Request] = []
    http = None
    if coordinator_handler is not None:
        handler = coordinator_handler

        def record(request: httpx.Request) -> httpx.Response:
            forwarded.append(request)
            return handler(request)

        http = httpx.AsyncClient(transport=httpx.MockTransport(record))
    tokens = TokenService(
        holder,
        node_key,
        RobotVerifier(),
        audience=lambda: holder.current.policy.service.audience,
        issuer="portmesh-node:node-1",
        ttl=300,
        coordinator_url="http://coordinator.test" if http else "",
        http=http,
        clock=clock,
    )
    app = AuthMiddleware(echo_app, holder, tokens, clock=clock)
    return World(coordinator, node_key, holder, tokens, app, meta, forwarded)
