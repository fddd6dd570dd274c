"""Units of refreshing credentials: a provider's credentials cached until shortly before
they expire, one login for concurrent callers, a refused credential replaced once, the
OAuth2 refresh-token grant, and provider API errors translated."""

from __future__ import annotations

import httpx
import pytest
import trio
from upstream_fakes import REGISTRY, FakeRegistry, manifest_body

from adapters.auth import CREDENTIAL_REFRESH_MARGIN, CredentialLease, Credentials
from adapters.credentials import ApiErrors, deadline_at, deadline_in
from adapters.errors import AuthFailed, NotFound, RateLimited, Unavailable
from adapters.oci import OCIClient
from adapters.registry import Capability
from adapters.session import RegistrySession


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Login:
    """A provider that issues a new password per login and tells the registry about it."""

    def __init__(self, fake: FakeRegistry, clock: FakeClock, lifetime: float = 3600) -> None:
        self.fake, self.clock, self.lifetime = fake, clock, lifetime
        self.calls = 0
        self.fail: Exception | None = None
        self.register = True

    async def __call__(self) -> tuple[Credentials, float]:
        self.calls += 1
        await trio.sleep(0.01)  # let concurrent callers pile up
        if self.fail is not None:
            raise self.fail
        password = f"pw-{self.calls}"
        if self.register:
            self.fake.users = {"robot": password}
        return Credentials("robot", password), self.clock() + self.lifetime


def setup(auth: str = "basic") -> tuple[FakeRegistry, FakeClock, Login, OCIClient]:
    fake = FakeRegistry(auth=auth, anonymous_tokens=False)
    fake.add_manifest("team/app", "v1", manifest_body())
    clock = FakeClock()
    login = Login(fake, clock)
    client = OCIClient(REGISTRY, http=fake.client(), credentials=login, clock=clock)
    return fake, clock, login, client


async def test_cached_until_shortly_before_expiry_with_one_login_for_many() -> None:
    _, clock, login, client = setup()
    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(client.resolve, "team/app", "v1")
    assert login.calls == 1
    clock.now += 3600 - CREDENTIAL_REFRESH_MARGIN - 1
    await client.resolve("team/app", "v1")
    assert login.calls == 1
    clock.now += 2  # inside the margin: refreshed before it expires
    await client.resolve("team/app", "v1")
    assert login.calls == 2
    assert "pw-" not in repr(client) and "pw-" not in repr(client.session)


async def test_a_refused_credential_is_replaced_once_then_auth_failed() -> None:
    fake, _, login, client = setup(auth="bearer")
    await client.fetch_manifest("team/app", "v1")
    fake.users = {"robot": "rotated"}  # revoked upstream
    fake.revoked.update(fake.issued)  # and its registry tokens with it
    await client.fetch_manifest("team/app", "v1")
    assert login.calls == 2, "one new login after the refusal"

    login.register = False  # the provider now hands out what the registry refuses
    fake.users = {"robot": "elsewhere"}
    fake.revoked.update(fake.issued)
    with pytest.raises(AuthFailed, match="incorrect username or password"):
        await client.fetch_manifest("team/app", "v1")
    assert login.calls == 3, "exactly one retry with fresh credentials"


async def test_provider_errors_reach_every_waiter_and_are_not_cached() -> None:
    _, _, login, client = setup()
    login.fail = AuthFailed("login refused: InvalidSignatureException", status=400)
    results: list[BaseException] = []

    async def attempt() -> None:
        try:
            await client.resolve("team/app", "v1")
        except AuthFailed as exc:
            results.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(attempt)
    assert len(results) == 3 and login.calls == 1
    login.fail = None
    await client.resolve("team/app", "v1")
    assert login.calls == 2


async def test_refresh_token_grant_posts_the_oauth2_form() -> None:
    fake = FakeRegistry(auth="bearer", anonymous_tokens=False)
    fake.add_manifest("team/app", "v1", manifest_body())
    forms: list[dict[str, str]] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            assert request.method == "POST" and "authorization" not in request.headers
            form = dict(httpx.QueryParams(request.content.decode()))
            forms.append(form)
            fake.issued["acr-access"] = form["scope"]
            return httpx.Response(200, json={"access_token": "acr-access"})
        return await fake.handle(request)

    session = RegistrySession(
        http=httpx.AsyncClient(transport=httpx.MockTransport(handle)),
        credentials=Credentials("00000000-0000-0000-0000-000000000000", "refresh-tok"),
        timeout=None,
        tokens=OCIClient(REGISTRY, http=httpx.AsyncClient()).tokens,
        token_grant="refresh_token",
    )
    client = OCIClient(REGISTRY, http=httpx.AsyncClient(), session=session)
    assert (await client.fetch_manifest("team/app", "v1")).body == manifest_body()
    assert forms == [
        {
            "grant_type": "refresh_token",
            "refresh_token": "refresh-tok",
            "service": "registry.test",
            "scope": "repository:team/app:pull",
        }
    ]
    with pytest.raises(ValueError, match="token grant"):
        RegistrySession(
            http=httpx.AsyncClient(),
            credentials=None,
            timeout=None,
            tokens=session.tokens,
            token_grant="password",
        )


def test_leases_and_deadlines() -> None:
    lease = CredentialLease.until(Credentials("u", "p"), 4600.0, now=1000.0)
    assert (lease.expires_at, lease.refresh_at) == (4600.0, 4600.0 - CREDENTIAL_REFRESH_MARGIN)
    short = CredentialLease.until(Credentials("u", "p"), 1040.0, now=1000.0)
    assert short.refresh_at == 1030.0  # a quarter of a short lifetime
    clock = FakeClock()
    assert deadline_in(clock, 60) == 1060.0
    assert deadline_at(clock, 2_000_000_100.0, wall_now=2_000_000_000.0) == 1100.0
    assert deadline_at(clock, 5.0, wall_now=10.0) == 1000.0  # already past: now


def test_api_errors_translate_codes_and_statuses() -> None:
    errors = ApiErrors(
        "__type",
        "message",
        auth_codes={"UnrecognizedClientException"},
        throttle_codes={"ThrottlingException"},
    )
    request = httpx.Request("POST", "https://api.test/")

    def answer(status: int, body: bytes, **headers: str) -> httpx.Response:
        return httpx.Response(status, content=body, headers=headers, request=request)

    bad_key = errors.translate(
        answer(400, b'{"__type":"com.amazon#UnrecognizedClientException","message":"bad token"}'),
        b'{"__type":"com.amazon#UnrecognizedClientException","message":"bad token"}',
        "ECR login",
    )
    assert isinstance(bad_key, AuthFailed)
    assert (
        str(bad_key) == "ECR login: upstream answered 400 (UnrecognizedClientException: bad token)"
    )
    body = b'{"__type":"ThrottlingException","message":"Rate exceeded"}'
    throttled = errors.translate(answer(400, body, **{"Retry-After": "3"}), body, "x")
    assert isinstance(throttled, RateLimited) and throttled.retry_after == 3.0
    body = b'{"__type":"RepositoryNotFoundException","message":"no"}'
    assert isinstance(errors.translate(answer(404, body), body, "x"), NotFound)
    assert isinstance(errors.translate(answer(503, b"<html>"), b"<html>", "x"), Unavailable)


def test_modules_export_what_they_list() -> None:
    import importlib

    for name in ("auth", "session", "credentials", "cloudnaming", "sigv4"):
        module = importlib.import_module(f"adapters.{name}")
        assert all(hasattr(module, item) for item in module.__all__), name
    for name in ("ecr", "gcr", "acr", "swr", "alibaba"):
        module = importlib.import_module(f"adapters.{name}")
        assert all(hasattr(module, item) for item in module.__all__), name
        assert module.TYPE in {"ecr", "gcr", "acr", "swr", "alibaba-acr"}
        assert Capability.PULL in module.CAPABILITIES


async def test_offline_token_replaces_the_password_until_it_is_refused() -> None:
    fake = FakeRegistry(auth="bearer", anonymous_tokens=False)
    fake.add_manifest("team/app", "v1", manifest_body())
    clock = FakeClock()
    seen: list[tuple[str, str | None, dict[str, str]]] = []
    refresh_ok = True

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host != "auth.test":
            return await fake.handle(request)
        if request.method == "GET":
            fields = dict(request.url.params)
        else:
            fields = dict(httpx.QueryParams(request.content.decode()))
        seen.append((request.method, request.headers.get("authorization"), fields))
        if request.method == "POST" and not refresh_ok:
            return httpx.Response(401, json={"details": "refresh token expired"})
        token = f"tok-{len(seen)}"
        fake.issued[token] = fields["scope"]
        answer = {"token": token, "expires_in": 300}
        if request.method == "GET":
            answer["refresh_token"] = "offline-1"
        return httpx.Response(200, json=answer)

    client = OCIClient(
        REGISTRY,
        http=httpx.AsyncClient(transport=httpx.MockTransport(handle)),
        credentials=Credentials("ci", "s3cret"),
        clock=clock,
    )
    await client.resolve("team/app", "v1")
    method, authorization, fields = seen[0]
    assert method == "GET" and authorization == Credentials("ci", "s3cret").basic_header()
    assert fields["offline_token"] == "true" and fields["client_id"] == "portmesh"

    clock.now += 400  # the token expired: the refresh token gets the next one
    await client.resolve("team/app", "v1")
    method, authorization, fields = seen[1]
    assert method == "POST" and authorization is None
    assert fields == {
        "grant_type": "refresh_token",
        "refresh_token": "offline-1",
        "client_id": "portmesh",
        "service": "registry.test",
        "scope": "repository:team/app:pull",
    }
    assert "offline-1" not in repr(client.session)

    refresh_ok = False
    clock.now += 400  # a refused refresh token: the password once more, then on as before
    await client.resolve("team/app", "v1")
    assert [(m, a is not None) for m, a, _ in seen[2:]] == [("POST", False), ("GET", True)]
