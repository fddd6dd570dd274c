"""The node's side of the sync protocol against a scripted coordinator
(``httpx.MockTransport``): joining, shipping the outbox at least once, the policy loop
keeping the last snapshot while the coordinator is away."""

from __future__ import annotations

import itertools
import json
import stat
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import trio

from node.auth.holder import PolicyHolder
from node.storage.memory import MemoryMetadataStore
from node.sync.client import FRAME_TYPE, CoordinatorClient, SyncError
from node.sync.events import encode_event
from node.sync.identity import Identity, JoinError, ensure_identity
from node.sync.loops import Backoff, policy_loop, ship_once, ship_outbox
from portmesh import codec
from portmesh.policy import Policy, Project, ServiceInfo
from portmesh.tokens import KeySet, SigningKey, verify

Handler = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Handler, key: SigningKey | None = None) -> CoordinatorClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    identity = Identity(7, "edge", "edge", "http://coordinator")
    return CoordinatorClient(http, identity, key or SigningKey.generate())


async def test_join_once_then_reuse_the_identity(tmp_path: Path) -> None:
    seen: list[dict[str, object]] = []

    def coordinator(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        if body["join_token"] != "good":
            return httpx.Response(
                401,
                json={"errors": [{"code": "UNAUTHORIZED", "message": "the join token is unknown"}]},
            )
        return httpx.Response(201, json={"id": 3, "name": body["name"], "service": "edge"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(coordinator)) as http:
        with pytest.raises(JoinError, match="give it a join token"):
            await ensure_identity(http, "http://c", data=tmp_path, name="edge")
        with pytest.raises(JoinError, match="join token is unknown"):
            await ensure_identity(http, "http://c", data=tmp_path, join_token="bad", name="edge")
        identity, key = await ensure_identity(
            http, "http://c/", data=tmp_path, join_token="good", name="edge", url="http://n"
        )
        assert identity == Identity(3, "edge", "edge", "http://c")
        assert seen[-1]["public_key"] == key.public_jwk()
        assert seen[-1]["url"] == "http://n"
        for name in ("identity.json", "node-key"):
            mode = stat.S_IMODE((tmp_path / "sync" / name).stat().st_mode)
            assert mode == 0o600, name
        again, same_key = await ensure_identity(http, "http://c", data=tmp_path)
        assert again == identity
        assert same_key.public_jwk() == key.public_jwk()
    assert len(seen) == 2, "a node with an identity does not register again"


async def test_requests_carry_a_node_jwt_for_the_coordinator() -> None:
    key = SigningKey.generate()
    tokens: list[str] = []

    def coordinator(request: httpx.Request) -> httpx.Response:
        tokens.append(request.headers["authorization"].removeprefix("Bearer "))
        return httpx.Response(304)

    client = client_for(coordinator, key)
    assert await client.policy(4, 0, {"cache_bytes": 1}) is None
    keys = KeySet.from_jwks([key.public_jwk()])
    claims = verify(
        tokens[0],
        keys,
        audience="portmesh-coordinator",
        now=time.time(),
        issuers=["portmesh-node:7"],
    )
    assert claims.sub == "7"


async def test_outbox_is_acked_only_after_the_coordinator_took_it() -> None:
    meta = MemoryMetadataStore()
    await meta.outbox_append([encode_event({"type": "push", "n": i}) for i in range(3)])
    await meta.outbox_append([b"\x01\x00\xc1"])  # damaged: dropped, not blocking
    answers = [503, 200]
    received: list[list[dict[str, object]]] = []

    def coordinator(request: httpx.Request) -> httpx.Response:
        assert request.headers["content-type"] == FRAME_TYPE
        received.append(codec.decode(request.content))
        return httpx.Response(answers.pop(0), json={})

    client = client_for(coordinator)
    with pytest.raises(SyncError):
        await ship_once(client, meta)
    assert len(await meta.outbox_peek(10)) == 4, "nothing dropped after a refusal"
    assert await ship_once(client, meta) == 4
    assert await meta.outbox_peek(10) == []
    assert received[0] == received[1], "the same batch again (at least once)"
    assert [e["seq"] for e in received[1]] == [1, 2, 3]


async def test_shipping_retries_through_an_outage(autojump_clock: trio.abc.Clock) -> None:
    meta = MemoryMetadataStore()
    await meta.outbox_append([encode_event({"type": "push"})])
    calls: list[float] = []

    def coordinator(request: httpx.Request) -> httpx.Response:
        calls.append(trio.current_time())
        if len(calls) < 4:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json={})

    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: ship_outbox(client_for(coordinator), meta, backoff=Backoff(1, 8))
        )
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    assert await meta.outbox_peek(10) == []
    gaps = [b - a for a, b in itertools.pairwise(calls[:4])]
    assert gaps[0] < gaps[1] < gaps[2], "backoff grows"


async def test_policy_loop_swaps_snapshots_and_keeps_the_last_offline(
    autojump_clock: trio.abc.Clock,
) -> None:
    meta = MemoryMetadataStore()
    initial = Policy(version=0, issued_at=0.0, service=ServiceInfo("", ""))
    holder = await PolicyHolder.open(meta, KeySet(), initial)
    newer = Policy(
        version=5,
        issued_at=1.0,
        service=ServiceInfo("coord", "edge"),
        projects={"pub": Project("pub", 1, public=True)},
    )
    versions: list[str] = []

    def coordinator(request: httpx.Request) -> httpx.Response:
        versions.append(request.url.params["version"])
        if len(versions) == 1:
            return httpx.Response(200, content=newer.to_bytes())
        raise httpx.ConnectError("coordinator down")

    async def stats() -> dict[str, int | str]:
        return {"cache_bytes": 0}

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: policy_loop(client_for(coordinator), holder, stats, wait=1))
        await trio.sleep(120)
        nursery.cancel_scope.cancel()
    assert holder.current.policy.version == 5
    assert holder.current.policy.public_projects == {"pub"}
    assert versions[0] == "0" and set(versions[1:]) == {"5"}
    assert 4 <= len(versions) < 40, "retries back off"
    stored = Policy.from_bytes(await meta.get_setting("policy") or b"")
    assert stored.version == 5, "the snapshot survives a restart"
