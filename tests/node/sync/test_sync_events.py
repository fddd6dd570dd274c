"""Node events: their encoding, the recorder (pushes and deletes in the change's
transaction, pulls coalesced in memory), and the registry emitting them."""

from __future__ import annotations

import json

import pytest

from node.registry import Registry
from node.storage.memory import MemoryBlobStore, MemoryMetadataStore
from node.sync.actor import ActorMiddleware, CacheCounts, current_actor
from node.sync.events import (
    EventError,
    EventRecorder,
    decode_event,
    encode_batch,
    encode_event,
)
from portmesh import codec
from portmesh.oci.digest import Digest
from portmesh.oci.mediatypes import OCI_MANIFEST
from portmesh.tokens import SigningKey, new_claims, sign


def bearer(subject: str) -> str:
    claims = new_claims(
        issuer="x", subject=subject, audience="edge", access=(), ttl=60, now=1_700_000_000
    )
    return "Bearer " + sign(claims, SigningKey.generate())


async def as_caller(authorization: str, method: str, fn: object) -> None:
    """Run ``fn()`` inside a request made with ``authorization`` through the middleware."""

    async def app(scope: object, receive: object, send: object) -> None:
        await fn()  # type: ignore[operator]

    scope = {
        "type": "http",
        "method": method,
        "path": "/v2/x",
        "headers": [(b"authorization", authorization.encode())] if authorization else [],
    }

    async def send(message: object) -> None:
        return None

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b""}

    await ActorMiddleware(app)(scope, receive, send)


def test_events_round_trip_and_damage_is_reported() -> None:
    event = {"type": "push", "repository": "t/a", "size": 3, "tag": None}
    assert decode_event(encode_event(event), 7) == {**event, "seq": 7}
    with pytest.raises(EventError, match="entry 9"):
        decode_event(b"\x01\x00\xc1", 9)
    with pytest.raises(EventError, match="not an event"):
        decode_event(codec.encode([1, 2]), 3)
    batch = [{**event, "seq": 1}, {**event, "seq": 2}]
    assert codec.decode(encode_batch(batch)) == batch


async def test_the_caller_comes_from_the_verified_token() -> None:
    seen: list[tuple[str, str]] = []

    async def look() -> None:
        actor = current_actor()
        seen.append((actor.username, actor.method))

    await as_caller(bearer("robot$team+ci"), "GET", look)
    await as_caller("", "PUT", look)
    await as_caller("Basic Zm9vOmJhcg==", "GET", look)
    await as_caller("Bearer not.a-token.x", "GET", look)
    await look()  # outside any request
    assert seen == [
        ("robot$team+ci", "GET"),
        ("anonymous", "PUT"),
        ("anonymous", "GET"),
        ("anonymous", "GET"),
        ("anonymous", ""),
    ]


async def test_cache_answers_are_counted_and_proxied_manifests_recorded() -> None:
    counts = CacheCounts()
    pulls: list[tuple[str, str, str, str, int]] = []

    def sink(repo: str, reference: str, digest: str, media_type: str, size: int) -> None:
        pulls.append((repo, reference, digest, media_type, size))

    def app_answering(state: bytes, status: int = 200) -> object:
        async def app(scope: object, receive: object, send: object) -> None:
            headers = [
                (b"x-portmesh-cache", state),
                (b"Docker-Content-Digest", b"sha256:" + b"a" * 64),
                (b"content-type", OCI_MANIFEST.encode()),
                (b"content-length", b"42"),
            ]
            await send({"type": "http.response.start", "status": status, "headers": headers})  # type: ignore[operator]

        return app

    async def send(message: object) -> None:
        return None

    async def receive() -> dict[str, object]:
        return {"type": "http.request"}

    def scope(method: str, path: str) -> dict[str, object]:
        return {"type": "http", "method": method, "path": path, "headers": []}

    manifest = "/v2/hub/library/nginx/manifests/1.27"
    for state in (b"hit", b"miss", b"stale", b"revalidated"):
        middleware = ActorMiddleware(app_answering(state), counts, sink)
        await middleware(scope("GET", manifest), receive, send)
    await ActorMiddleware(app_answering(b"miss"), counts, None)(
        scope("GET", manifest), receive, send
    )
    for method, path, status in [
        ("HEAD", manifest, 200),
        ("GET", "/v2/hub/library/nginx/blobs/sha256:" + "b" * 64, 200),
        ("GET", manifest, 304),
    ]:
        middleware = ActorMiddleware(app_answering(b"hit", status), counts, sink)
        await middleware(scope(method, path), receive, send)
    assert (counts.hits, counts.misses) == (6, 2)
    assert pulls == [("hub/library/nginx", "1.27", "sha256:" + "a" * 64, OCI_MANIFEST, 42)] * 4


async def test_cache_counts_of_every_worker_add_up_in_the_store() -> None:
    meta = MemoryMetadataStore()
    first, second = CacheCounts(hits=5, misses=1), CacheCounts(hits=2, misses=3)
    await first.flush(meta)
    assert (first.hits, first.misses) == (0, 0), "flushed counts start again"
    assert await second.totals(meta) == (7, 4), "stored ones plus its own unflushed"
    await second.flush(meta)
    first.hits += 1
    assert await first.totals(meta) == (8, 4)
    await first.flush(meta)
    await first.flush(meta)  # nothing new: nothing added twice
    assert await CacheCounts().totals(meta) == (8, 4)


async def test_pulls_are_coalesced_and_written_in_one_flush() -> None:
    meta = MemoryMetadataStore()
    recorder = EventRecorder(clock=lambda: 1000.0)

    async def pull() -> None:
        recorder.pull("t/a", "v1", "sha256:" + "a" * 64, OCI_MANIFEST, 10)

    for _ in range(3):
        await as_caller(bearer("alice"), "GET", pull)
    await as_caller(bearer("alice"), "HEAD", pull)
    await as_caller(bearer("bob"), "GET", pull)
    assert recorder.pending == 2
    assert await recorder.flush(meta) == 2
    assert await recorder.flush(meta) == 0
    events = [decode_event(p, s) for s, p in await meta.outbox_peek(10)]
    assert [(e["username"], e["count"], e["type"]) for e in events] == [
        ("alice", 3, "pull"),
        ("bob", 1, "pull"),
    ]
    assert events[0]["tag"] == "v1"
    assert events[0]["time"] == 1000.0


async def test_registry_emits_push_delete_and_pull_events() -> None:
    meta = MemoryMetadataStore()
    recorder = EventRecorder(clock=lambda: 5.0)
    registry = Registry(MemoryBlobStore(), meta, events=recorder)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": str(Digest.of(b"{}")),
                "size": 2,
            },
            "layers": [],
        }
    ).encode()
    digest = Digest.of(body)

    async def push() -> None:
        async def chunks():  # type: ignore[no-untyped-def]
            yield b"{}"

        await registry.put_blob("t/a", Digest.of(b"{}"), chunks(), 2)
        await registry.put_manifest("t/a", "v1", body, OCI_MANIFEST)

    async def pull() -> None:
        await registry.get_manifest("t/a", "v1")

    async def untag() -> None:
        await registry.delete_manifest("t/a", "v1")

    await as_caller(bearer("robot$t+ci"), "PUT", push)
    await as_caller("", "GET", pull)
    await as_caller(bearer("alice"), "DELETE", untag)
    await recorder.flush(meta)
    events = [decode_event(p, s) for s, p in await meta.outbox_peek(10)]
    assert [(e["seq"], e["type"], e["username"]) for e in events] == [
        (1, "push", "robot$t+ci"),
        (2, "delete", "alice"),
        (3, "pull", "anonymous"),
    ]
    push_event = events[0]
    assert push_event["repository"] == "t/a"
    assert push_event["tag"] == "v1"
    assert push_event["digest"] == str(digest)
    assert push_event["size"] == len(body)
    assert push_event["media_type"] == OCI_MANIFEST
    assert events[1]["digest"] == str(digest)
    assert events[1]["reference"] == "v1"
