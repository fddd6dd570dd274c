"""The node's HTTP client for its coordinator (the protocol is in ``node.sync``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from node.sync.events import encode_batch
from node.sync.identity import Identity
from portmesh.policy import Policy, PolicyError
from portmesh.tokens import SigningKey, new_claims, sign

__all__ = ["COORDINATOR_AUDIENCE", "FRAME_TYPE", "CoordinatorClient", "SyncError"]

#: ``aud`` of the JWTs a node signs for its coordinator
COORDINATOR_AUDIENCE = "portmesh-coordinator"
FRAME_TYPE = "application/vnd.portmesh.frame"
TOKEN_TTL = 60


class SyncError(Exception):
    """The coordinator could not be reached or refused the request; ``status`` is its
    HTTP status (0 when it was not reached)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class CoordinatorClient:
    """Signs each request with the node key; ``http`` is owned by the caller."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        identity: Identity,
        key: SigningKey,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.http = http
        self.identity = identity
        self.key = key
        self.clock = clock
        self.base = f"{identity.coordinator_url.rstrip('/')}/api/v2.0/nodes/{identity.node_id}"

    def _headers(self) -> dict[str, str]:
        claims = new_claims(
            issuer=f"portmesh-node:{self.identity.node_id}",
            subject=str(self.identity.node_id),
            audience=COORDINATOR_AUDIENCE,
            access=(),
            ttl=TOKEN_TTL,
            now=self.clock(),
        )
        return {"Authorization": f"Bearer {sign(claims, self.key)}"}

    async def _send(
        self, method: str, url: str, *, extra: Mapping[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = self._headers()
        headers.update(extra or {})
        try:
            return await self.http.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise SyncError(f"coordinator unreachable: {type(exc).__name__}: {exc}") from exc

    async def policy(
        self, version: int, wait: int, stats: Mapping[str, int | str]
    ) -> Policy | None:
        """A snapshot newer than ``version``, or None when none came within ``wait``
        seconds. Raises SyncError (unreachable, refused, malformed snapshot)."""
        params = {"version": str(version), "wait": str(wait)}
        params.update({k: str(v) for k, v in stats.items()})
        response = await self._send(
            "GET", self.base + "/policy", params=params, timeout=httpx.Timeout(wait + 15.0)
        )
        if response.status_code == 304:
            return None
        if response.status_code != 200:
            raise SyncError(f"policy poll refused: {_message(response)}", response.status_code)
        try:
            return Policy.from_bytes(response.content)
        except PolicyError as exc:
            raise SyncError(f"the coordinator sent an unusable snapshot: {exc}", 200) from exc

    async def send_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Deliver a batch; returns only once the coordinator stored it (2xx). Raises
        SyncError otherwise."""
        response = await self._send(
            "POST",
            self.base + "/events",
            extra={"Content-Type": FRAME_TYPE},
            content=encode_batch(events),
        )
        if not 200 <= response.status_code < 300:
            raise SyncError(f"events refused: {_message(response)}", response.status_code)


def _message(response: httpx.Response) -> str:
    try:
        return f"HTTP {response.status_code}: {response.json()['errors'][0]['message']}"
    except (ValueError, KeyError, IndexError, TypeError):
        return f"HTTP {response.status_code}"
