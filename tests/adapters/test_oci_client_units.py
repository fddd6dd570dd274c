"""OCIClient against an in-memory registry (httpx.MockTransport): the auth state machine,
verification of manifests, ranges, tag pages, referrers, and the error tree."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
import trio
from upstream_fakes import REGISTRY, SERVICE, FakeRegistry, manifest_body, oci_error, sha256

from adapters.auth import Credentials, TokenCache
from adapters.base import Upstream
from adapters.errors import AuthFailed, NotFound, ProtocolError, RateLimited, Unavailable
from adapters.oci import MANIFEST_ACCEPT, OCIClient
from portmesh.oci.digest import parse_digest

SECRET = "hunter2-very-secret"


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def make(fake: FakeRegistry, creds: Credentials | None = None, **kw: object) -> OCIClient:
    return OCIClient(REGISTRY, http=fake.client(), credentials=creds, **kw)  # type: ignore[arg-type]


async def test_anonymous_resolve_fetch_and_protocol_conformance() -> None:
    fake = FakeRegistry()
    body = manifest_body()
    digest = fake.add_manifest("lib/app", "1.0", body)
    client = make(fake)
    assert isinstance(client, Upstream)
    resolved = await client.resolve("lib/app", "1.0")
    assert (str(resolved.digest), resolved.size) == (digest, len(body))
    assert resolved.media_type == "application/vnd.oci.image.manifest.v1+json"
    fetched = await client.fetch_manifest("lib/app", digest)
    assert fetched.body == body
    assert str(fetched.digest) == digest
    assert fake.requests[0].method == "HEAD"
    accept = fake.requests[0].headers["accept"]
    assert accept == MANIFEST_ACCEPT
    assert "manifest.list.v2+json" in accept
    assert "image.index.v1+json" in accept
    assert all("authorization" not in r.headers for r in fake.requests)


async def test_basic_auth_after_challenge_then_sent_up_front() -> None:
    fake = FakeRegistry(auth="basic", users={"alice": SECRET})
    fake.add_manifest("team/app", "v1", manifest_body())
    client = make(fake, Credentials("alice", SECRET))
    await client.resolve("team/app", "v1")
    await client.resolve("team/app", "v1")
    statuses = ["authorization" in r.headers for r in fake.requests]
    assert statuses == [False, True, True]  # anonymous, challenged, then up front


async def test_wrong_basic_password_is_a_clear_auth_failure_without_the_secret() -> None:
    fake = FakeRegistry(auth="basic", users={"alice": "right"})
    client = make(fake, Credentials("alice", SECRET))
    with pytest.raises(AuthFailed) as info:
        await client.resolve("team/app", "v1")
    message = str(info.value)
    assert "'alice' were rejected" in message
    assert "401" in message
    assert SECRET not in message
    assert SECRET not in repr(client)
    assert len(fake.requests) == 2  # no retry loop against a wrong password


async def test_basic_challenge_without_credentials() -> None:
    fake = FakeRegistry(auth="basic")
    with pytest.raises(AuthFailed, match="none are configured"):
        await make(fake).fetch_manifest("team/app", "v1")


async def test_bearer_token_flow_with_basic_to_token_service_and_per_scope_cache() -> None:
    fake = FakeRegistry(
        auth="bearer", users={"bob": SECRET}, anonymous_tokens=False, token_field="access_token"
    )
    fake.add_manifest("a/one", "t", manifest_body("1"))
    fake.add_manifest("a/two", "t", manifest_body("2"))
    client = make(fake, Credentials("bob", SECRET))
    for _ in range(3):
        await client.resolve("a/one", "t")
    await client.fetch_manifest("a/two", "t")
    scopes = [r.url.params["scope"] for r in fake.token_requests]
    assert scopes == ["repository:a/one:pull", "repository:a/two:pull"]
    assert all(r.url.params["service"] == SERVICE for r in fake.token_requests)
    assert all(r.headers["authorization"].startswith("Basic ") for r in fake.token_requests)
    # one anonymous probe, then every request carries its scope's token
    assert [("authorization" in r.headers) for r in fake.requests] == [False] + [True] * 4


async def test_token_refreshes_before_expiry_with_a_fake_clock() -> None:
    clock = FakeClock()
    fake = FakeRegistry(auth="bearer", expires_in=60)
    fake.add_manifest("a/b", "t", manifest_body())
    client = make(fake, clock=clock)
    await client.resolve("a/b", "t")
    clock.now += 30
    await client.resolve("a/b", "t")
    assert len(fake.token_requests) == 1
    clock.now += 25  # 5 s before expiry: refresh now, not after a 401
    await client.resolve("a/b", "t")
    assert len(fake.token_requests) == 2
    assert fake.requests[-1].headers["authorization"] == "Bearer tok-2"


async def test_concurrent_cold_callers_share_one_token_request() -> None:
    fake = FakeRegistry(auth="bearer", token_delay=0.05)
    fake.add_manifest("a/b", "t", manifest_body())
    client = make(fake)
    await client.resolve("a/b", "t")  # learns the challenge
    fake.issued.clear()  # every token is now unknown: the next requests get 401s
    client.tokens = client.session.tokens = TokenCache()
    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(client.resolve, "a/b", "t")
    assert len(fake.token_requests) == 2  # the first, and one shared by ten callers


async def test_revoked_token_is_replaced_once_then_auth_fails() -> None:
    fake = FakeRegistry(auth="bearer")
    fake.add_manifest("a/b", "t", manifest_body())
    client = make(fake)
    await client.resolve("a/b", "t")
    fake.revoked.add("tok-1")
    await client.resolve("a/b", "t")  # 401 with tok-1 -> fresh tok-2
    assert len(fake.token_requests) == 2
    assert fake.requests[-1].headers["authorization"] == "Bearer tok-2"
    fake.revoked.update({"tok-2", "tok-3", "tok-4"})
    with pytest.raises(AuthFailed):
        await client.resolve("a/b", "t")
    assert len(fake.token_requests) == 3  # exactly one retry


async def test_token_service_refusal_and_outage() -> None:
    fake = FakeRegistry(auth="bearer", users={"bob": "right"}, anonymous_tokens=False)
    with pytest.raises(AuthFailed, match="incorrect username or password") as info:
        await make(fake, Credentials("bob", SECRET)).resolve("a/b", "t")
    assert "token for 'repository:a/b:pull'" in str(info.value)
    assert SECRET not in str(info.value)

    async def down(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            return httpx.Response(503, text="maintenance")
        return await fake.handle(request)

    client = OCIClient(REGISTRY, http=httpx.AsyncClient(transport=httpx.MockTransport(down)))
    with pytest.raises(Unavailable, match="maintenance"):
        await client.resolve("a/b", "t")


def answer(response: httpx.Response) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: response


async def test_error_statuses_map_to_the_tree_with_upstream_messages() -> None:
    fake = FakeRegistry()
    client = make(fake)
    with pytest.raises(NotFound, match="MANIFEST_UNKNOWN: manifest unknown"):
        await client.fetch_manifest("a/b", "nope")
    with pytest.raises(NotFound):
        await client.resolve("a/b", "nope")
    fake.override = answer(
        oci_error(429, "TOOMANYREQUESTS", "pull rate limit", {"Retry-After": "42"})
    )
    with pytest.raises(RateLimited) as limited:
        await client.fetch_manifest("a/b", "x")
    assert limited.value.retry_after == 42.0
    assert limited.value.codes == ["TOOMANYREQUESTS"]
    fake.override = answer(httpx.Response(502, text="bad gateway"))
    with pytest.raises(Unavailable, match="502"):
        async with client.open_blob("a/b", parse_digest(sha256(b"x"))):
            pass

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    fake.override = refuse
    with pytest.raises(Unavailable, match="connection refused") as refused:
        await client.list_tags("a/b")
    assert refused.value.status is None
    assert isinstance(refused.value.__cause__, httpx.ConnectError)


async def test_manifest_digest_mismatches_are_protocol_errors() -> None:
    fake = FakeRegistry()
    body = manifest_body()
    digest = fake.add_manifest("a/b", "t", body)
    client = make(fake)

    def tampered(request: httpx.Request) -> httpx.Response | None:
        if request.method == "GET" and "/manifests/" in request.url.path:
            headers = {"Docker-Content-Digest": digest}  # the header tells the truth...
            return httpx.Response(200, content=body.replace(b"x", b"y"), headers=headers)
        return None  # ...the body does not

    fake.override = tampered
    with pytest.raises(ProtocolError, match="does not hash to"):
        await client.fetch_manifest("a/b", "t")
    with pytest.raises(ProtocolError, match=digest):
        await client.fetch_manifest("a/b", digest)
    fake.override = None
    assert (await client.fetch_manifest("a/b", digest)).body == body
    client.max_manifest_size = 10
    with pytest.raises(ProtocolError, match="limit"):
        await client.fetch_manifest("a/b", "t")


async def test_blob_ranges_honoured_or_emulated() -> None:
    fake = FakeRegistry()
    data = bytes(range(256)) * 40
    digest = parse_digest(sha256(data))
    fake.blobs[str(digest)] = data
    client = make(fake)

    async def read(offset: int = 0, length: int | None = None) -> tuple[int, int | None, bytes]:
        async with client.open_blob("a/b", digest, offset, length) as stream:
            chunks = [chunk async for chunk in stream]
            return stream.status, stream.total, b"".join(chunks)

    assert await read() == (200, len(data), data)
    assert await read(100) == (206, len(data), data[100:])
    assert await read(100, 50) == (206, len(data), data[100:150])
    assert fake.requests[-1].headers["range"] == "bytes=100-149"
    fake.honour_range = False
    assert await read(100, 50) == (200, len(data), data[100:150])
    with pytest.raises(NotFound, match="BLOB_UNKNOWN"):
        async with client.open_blob("a/b", parse_digest(sha256(b"other"))):
            pass


async def test_list_tags_pages_and_one_page() -> None:
    fake = FakeRegistry()
    fake.tags["a/b"] = [f"t{i:02d}" for i in range(7)]
    client = make(fake, tag_page_size=3)
    assert await client.list_tags("a/b") == [f"t{i:02d}" for i in range(7)]
    assert fake.counts["/v2/a/b/tags/list"] == 3
    assert await client.list_tags("a/b", n=2, last="t03") == ["t04", "t05"]
    fake.tags["empty/repo"] = []
    assert await client.list_tags("empty/repo") == []


async def test_referrers_api_and_tag_schema_fallback_with_filtering() -> None:
    fake = FakeRegistry()
    subject = parse_digest(sha256(b"subject"))
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "m", "digest": sha256(b"1"), "size": 1, "artifactType": "sig"},
            {"mediaType": "m", "digest": sha256(b"2"), "size": 1, "artifactType": "sbom"},
        ],
    }
    client = make(fake)
    empty = json.loads(await client.referrers("a/b", subject))
    assert empty["manifests"] == []
    fake.add_manifest("a/b", f"sha256-{subject.encoded}", json.dumps(index).encode())
    only_sbom = json.loads(await client.referrers("a/b", subject, artifact_type="sbom"))
    assert [m["artifactType"] for m in only_sbom["manifests"]] == ["sbom"]

    def api(request: httpx.Request) -> httpx.Response | None:
        if "/referrers/" in request.url.path:
            return httpx.Response(200, json=index)
        return None

    fake.override = api
    assert len(json.loads(await client.referrers("a/b", subject))["manifests"]) == 2
    sigs = json.loads(await client.referrers("a/b", subject, artifact_type="sig"))
    assert [m["artifactType"] for m in sigs["manifests"]] == ["sig"]
    assert fake.requests[-1].url.params["artifactType"] == "sig"


async def test_docker_hub_rate_limit_headers_are_kept() -> None:
    fake = FakeRegistry()
    headers = {
        "ratelimit-limit": "100;w=21600",
        "ratelimit-remaining": "76;w=21600",
        "docker-ratelimit-source": "203.0.113.9",
        "Docker-Content-Digest": sha256(b"{}"),
        "Content-Length": "2",
        "Content-Type": "application/vnd.oci.image.manifest.v1+json",
    }
    fake.override = answer(httpx.Response(200, headers=headers))
    client = make(fake)
    assert client.rate_limit is None
    await client.resolve("library/alpine", "3")
    limit = client.rate_limit
    assert limit is not None
    assert (limit.limit, limit.remaining, limit.window) == (100, 76, 21600)
    assert limit.source == "203.0.113.9"


async def test_timeout_given_by_the_caller_is_used() -> None:
    fake = FakeRegistry()
    seen: list[object] = []

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json={"tags": ["a"]})

    fake.override = spy
    client = make(fake, timeout=httpx.Timeout(1.5, connect=0.25))
    assert await client.list_tags("a/b") == ["a"]
    assert seen == [{"connect": 0.25, "read": 1.5, "write": 1.5, "pool": 1.5}]
