"""What every provider's adapter test shows, written once: a real docker-registry behind a
provider front, a pull through the adapter (resolve, manifest, blob), a token that
expires on the adapter's clock and is fetched again once, a refused credential, and a 429
that raises RateLimited after exactly one request upstream."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import httpx
import pytest
import trio
from registry_content import Pushed, push_image

from adapters.base import Upstream
from adapters.errors import AuthFailed, RateLimited
from adapters.registry import AdapterSpec, create_upstream
from fronts.common import Clock, TokenFlow
from portmesh.oci.digest import parse_digest
from support.authfront import AuthFront
from support.servers import Server, run_docker_registry

__all__ = [
    "Stage",
    "assert_auth_failed",
    "assert_one_login_for_a_herd",
    "assert_pull",
    "assert_rate_limited",
    "assert_refreshes",
    "assert_token_flow",
    "stage",
]


P = TypeVar("P", bound=TokenFlow)


@dataclass
class Stage(Generic[P]):
    """A docker-registry with content, the provider's front before it, and an HTTP client."""

    registry: Server
    front: AuthFront
    provider: P
    clock: Clock
    http: httpx.AsyncClient

    def client(self, kind: str, **spec: object) -> Upstream:
        """The adapter ``kind`` pointed at the front, on the stage's clock."""
        full = AdapterSpec(type=kind, url=self.front.url, **spec)  # type: ignore[arg-type]
        return create_upstream(full, http=self.http, clock=self.clock)

    async def push(self, repo: str, tag: str = "v1", size: int = 200_000) -> Pushed:
        """Push a one-layer image straight into the registry (the front is read-only)."""
        return await push_image(self.http, self.registry.url, repo, tag, os.urandom(size))


@asynccontextmanager
async def stage(tmp_path: Path, make: Callable[[Clock], P]) -> AsyncIterator[Stage[P]]:
    clock = Clock()
    provider = make(clock)
    async with (
        run_docker_registry(tmp_path / "registry") as registry,
        httpx.AsyncClient(timeout=10.0) as http,
        trio.open_nursery() as nursery,
    ):
        front = AuthFront(registry.url, provider)
        await nursery.start(front.serve)
        yield Stage(registry, front, provider, clock, http)
        nursery.cancel_scope.cancel()


async def assert_pull(client: Upstream, repo: str, pushed: Pushed) -> None:
    """resolve, fetch_manifest and open_blob give the pushed bytes."""
    resolved = await client.resolve(repo, pushed.tag)
    assert str(resolved.digest) == pushed.manifest_digest
    fetched = await client.fetch_manifest(repo, pushed.tag)
    assert fetched.body == pushed.manifest
    async with client.open_blob(repo, parse_digest(pushed.layer_digest)) as stream:
        data = b"".join([chunk async for chunk in stream])
    assert "sha256:" + hashlib.sha256(data).hexdigest() == pushed.layer_digest


async def assert_refreshes(
    stage: Stage[P], client: Upstream, repo: str, pushed: Pushed, token_path: str
) -> None:
    """While the token lives no login is repeated; once the clock passes its expiry the
    next pull logs in exactly once more."""
    await assert_pull(client, repo, pushed)
    logins = stage.front.hits[token_path]
    assert logins >= 1
    await assert_pull(client, repo, pushed)
    assert stage.front.hits[token_path] == logins, "a live token is reused"
    stage.clock.advance(stage.provider.expires_in + 1)
    await assert_pull(client, repo, pushed)
    assert stage.front.hits[token_path] == logins + 1, "one refresh after expiry"


async def assert_one_login_for_a_herd(
    stage: Stage[P],
    client: Upstream,
    repo: str,
    pushed: Pushed,
    login_path: str,
    expire_after: float,
    pulls: int = 50,
) -> None:
    """Once the token or login (lifetime ``expire_after``) has expired, ``pulls``
    concurrent pulls through ``client`` all succeed behind exactly one new login (the
    front's hits on ``login_path``)."""
    await assert_pull(client, repo, pushed)
    logins = stage.front.hits[login_path]
    stage.clock.advance(expire_after + 1)
    async with trio.open_nursery() as nursery:
        for _ in range(pulls):
            nursery.start_soon(assert_pull, client, repo, pushed)
    assert stage.front.hits[login_path] == logins + 1, "one login for the whole herd"
    assert stage.front.hits[f"/v2/{repo}/manifests/{pushed.tag}"] >= pulls


async def assert_auth_failed(client: Upstream, repo: str, tag: str, message: str) -> AuthFailed:
    """A refused credential is AuthFailed carrying the provider's ``message``."""
    with pytest.raises(AuthFailed) as info:
        await client.fetch_manifest(repo, tag)
    assert message in str(info.value), str(info.value)
    return info.value


async def assert_rate_limited(
    stage: Stage[P], client: Upstream, repo: str, tag: str, remote: str | None = None
) -> RateLimited:
    """A 429 with ``Retry-After: 17`` raises RateLimited(17) after one GET of the
    manifest (named ``remote`` upstream when the adapter renames ``repo``)."""
    path = f"/v2/{remote or repo}/manifests/{tag}"
    before = stage.front.hits[path]
    stage.provider.throttle(retry_after=17)
    with pytest.raises(RateLimited) as info:
        await client.fetch_manifest(repo, tag)
    assert info.value.retry_after == 17
    assert stage.front.hits[path] == before + 1, "no retries against a rate limit"
    return info.value


async def assert_token_flow(
    st: Stage[P],
    kind: str,
    repo: str,
    user: str,
    secret: str,
    refused: str,
    *,
    options: dict[str, str] | None = None,
    remote: str | None = None,
) -> None:
    """The whole token flow of adapter ``kind``: a pull, one refresh after expiry, a
    wrong secret refused with the provider's ``refused`` message, a 429."""
    pushed = await st.push(remote or repo)
    client = st.client(kind, username=user, password=secret, options=options or {})
    await assert_refreshes(st, client, repo, pushed, st.provider.token_path)
    assert st.provider.logins == [user, user]
    wrong = st.client(kind, username=user, password=secret + "-wrong", options=options or {})
    error = await assert_auth_failed(wrong, repo, pushed.tag, refused)
    assert secret not in str(error) and secret not in repr(wrong)
    await assert_rate_limited(st, client, repo, pushed.tag, remote)
