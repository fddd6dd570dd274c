"""A registered node as the coordinator tests need it: join with a join token, then post
event batches the way a node does (``POST /nodes/{id}/events`` with its own EdDSA JWT,
as a compressed codec frame or as JSON)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from coordinator.api.nodes import FRAME_TYPE
from portmesh import codec
from portmesh.tokens import SigningKey, new_claims, sign

__all__ = ["DIGEST_A", "DIGEST_B", "OCI_MANIFEST", "EventNode", "epoch", "event"]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def epoch(text: str) -> float:
    """``2026-03-01 10:00:00`` (UTC) as epoch seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def event(
    kind: str,
    seq: int,
    repository: str,
    *,
    tag: str | None = None,
    digest: str = DIGEST_A,
    username: str = "alice",
    when: float | None = None,
    size: int = 1234,
    count: int = 1,
) -> dict[str, Any]:
    """An event shaped as ``coordinator.events`` documents it."""
    return {
        "type": kind,
        "seq": seq,
        "repository": repository,
        "reference": tag or digest,
        "tag": tag,
        "digest": digest,
        "media_type": OCI_MANIFEST if kind != "delete" else "",
        "size": size if kind != "delete" else 0,
        "username": username,
        "time": time.time() if when is None else when,
        "count": count,
    }


@dataclass
class EventNode:
    api: str  # http://127.0.0.1:PORT/api/v2.0
    node_id: int
    key: SigningKey

    @classmethod
    async def join(cls, admin_http: httpx.AsyncClient, name: str) -> EventNode:
        made = await admin_http.post("/nodes/join-tokens", json={"duration": 600})
        assert made.status_code == 201, made.text
        key = SigningKey.generate()
        async with httpx.AsyncClient(base_url=admin_http.base_url) as anonymous:
            reg = await anonymous.post(
                "/nodes/register",
                json={
                    "join_token": made.json()["token"],
                    "name": name,
                    "public_key": key.public_jwk(),
                    "url": "",
                },
            )
        assert reg.status_code == 201, reg.text
        return cls(str(admin_http.base_url).rstrip("/"), int(reg.json()["id"]), key)

    def _token(self) -> str:
        claims = new_claims(
            issuer=f"portmesh-node:{self.node_id}",
            subject=str(self.node_id),
            audience="portmesh-coordinator",
            access=(),
            ttl=60,
            now=time.time(),
        )
        return sign(claims, self.key)

    async def post(self, events: list[dict[str, Any]], *, frame: bool = True) -> httpx.Response:
        """Send one batch; frames are how nodes ship, JSON is accepted too."""
        headers = {"Authorization": f"Bearer {self._token()}"}
        async with httpx.AsyncClient(base_url=self.api, timeout=30) as http:
            if frame:
                body = codec.encode(events, compress=True)
                headers["Content-Type"] = FRAME_TYPE
                return await http.post(
                    f"/nodes/{self.node_id}/events", content=body, headers=headers
                )
            return await http.post(f"/nodes/{self.node_id}/events", json=events, headers=headers)

    async def send(self, events: list[dict[str, Any]], *, frame: bool = True) -> None:
        response = await self.post(events, frame=frame)
        assert response.status_code == 200, response.text
