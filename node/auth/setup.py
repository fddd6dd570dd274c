"""Wiring of the node's token authentication, for the composition root (``node/app.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from node.auth.holder import PolicyHolder
from node.auth.middleware import AuthMiddleware
from node.auth.nodekey import load_node_key
from node.auth.robots import RobotVerifier
from node.auth.sealing import SnapshotSeal
from node.auth.token_service import TokenService
from node.config import AuthConfig
from node.storage.base import MetadataStore
from portmesh.policy import Policy, ServiceInfo, load_policy_file
from portmesh.tokens import KeySet

__all__ = ["Auth", "open_auth"]


class Auth:
    """The node's auth parts: ``holder`` (for the policy sync to ``replace``) and
    ``wrap`` (puts the middleware around an ASGI app)."""

    def __init__(self, holder: PolicyHolder, tokens: TokenService, config: AuthConfig) -> None:
        self.holder = holder
        self.tokens = tokens
        self.config = config

    def wrap(self, app: Any) -> AuthMiddleware:
        return AuthMiddleware(app, self.holder, self.tokens, external_url=self.config.external_url)


@asynccontextmanager
async def open_auth(
    config: AuthConfig, meta: MetadataStore, data: Path
) -> AsyncIterator[Auth | None]:
    """The node's auth (None when ``config`` turns it off): its key under ``data/auth``,
    the policy from ``meta`` (sealed there with ``data/auth/secrets.key``) or
    ``config.policy_file``, and an HTTP client for the coordinator, closed on exit.
    Raises PolicyError when there is no usable policy, SealError when the stored one does
    not open with the key file."""
    if not config.enabled:
        yield None
        return
    key = load_node_key(data / "auth")
    seal = SnapshotSeal.load(data / "auth")
    local = KeySet()
    local.add(key.kid, key.key.verify_key)
    initial = load_policy_file(Path(config.policy_file)) if config.policy_file else None
    if initial is None:
        # Until the first snapshot arrives, logins go to the coordinator and nothing
        # but its tokens (and the node's own) verify.
        initial = Policy(version=0, issued_at=0.0, service=ServiceInfo("", config.service))
    holder = await PolicyHolder.open(meta, local, initial, seal=seal)
    audience: Callable[[], str] = (
        (lambda: config.service)
        if config.service
        else (lambda: holder.current.policy.service.audience)
    )
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=3.0)) as http:
        tokens = TokenService(
            holder,
            key,
            RobotVerifier(),
            audience=audience,
            issuer=f"portmesh-node:{key.kid}",
            ttl=config.token_ttl,
            coordinator_url=config.coordinator_url,
            http=http if config.coordinator_url else None,
        )
        yield Auth(holder, tokens, config)
