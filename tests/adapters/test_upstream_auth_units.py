"""Units of the adapters' auth and error layer: challenge parsing, token lifetimes, the
token cache (expiry with a fake clock, single-flight, errors), Retry-After, error mapping."""

from __future__ import annotations

import email.utils

import httpx
import pytest
import trio

import adapters.base
from adapters.auth import (
    Challenge,
    Credentials,
    Token,
    TokenCache,
    TokenKey,
    parse_challenges,
    parse_issued_at,
)
from adapters.errors import (
    AuthFailed,
    NotFound,
    ProtocolError,
    RateLimited,
    Unavailable,
    UpstreamError,
    error_from_response,
    parse_retry_after,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


KEY = TokenKey("https://auth.test/token", "registry.test", "repository:a/b:pull")


def test_base_exports_every_name() -> None:
    for name in adapters.base.__all__:
        assert hasattr(adapters.base, name), name
    assert issubclass(adapters.base.RateLimited, adapters.base.UpstreamError)


def test_parses_distribution_bearer_challenge_with_commas_in_scope() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull,push",error="insufficient_scope"'
    )
    assert parse_challenges(header) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.docker.io/token",
                "service": "registry.docker.io",
                "scope": "repository:library/alpine:pull,push",
                "error": "insufficient_scope",
            },
        )
    ]


def test_parses_several_challenges_tokens_and_escapes() -> None:
    header = 'Basic realm="a \\"quoted\\" realm", charset=UTF-8, BEARER Realm=https://x/t'
    assert parse_challenges(header) == [
        Challenge("basic", {"realm": 'a "quoted" realm', "charset": "UTF-8"}),
        Challenge("bearer", {"realm": "https://x/t"}),
    ]
    assert parse_challenges("") == []
    assert parse_challenges("Basic") == [Challenge("basic", {})]


def test_credentials_repr_hides_the_secret() -> None:
    creds = Credentials("robot$ci", "s3cr3t-value")
    assert "s3cr3t" not in repr(creds)
    assert "s3cr3t" not in str(creds)
    assert creds.basic_header() == "Basic cm9ib3QkY2k6czNjcjN0LXZhbHVl"
    assert "s3cr3t" not in repr(Token("s3cr3t-token", 1.0, 1.0))


def test_token_lifetime_defaults_to_60s_and_counts_issued_at_age() -> None:
    plain = Token.issued("t", now=100.0, expires_in=None)
    assert plain.expires_at == 160.0
    assert 145.0 <= plain.refresh_at < 160.0
    aged = Token.issued("t", now=100.0, expires_in=300, issued_at=1_000.0, wall_now=1_100.0)
    assert aged.expires_at == 300.0
    future = Token.issued("t", now=100.0, expires_in=300, issued_at=2_000.0, wall_now=1_100.0)
    assert future.expires_at == 400.0
    assert parse_issued_at("2024-05-01T10:00:00Z") == 1714557600.0
    assert parse_issued_at("2024-05-01T10:00:00.5+00:00") == 1714557600.5
    assert parse_issued_at("yesterday") is None
    assert parse_issued_at(12) is None


async def test_token_cache_reuses_until_shortly_before_expiry() -> None:
    clock = FakeClock()
    cache = TokenCache(clock=clock)
    fetched: list[str] = []

    async def fetch() -> Token:
        fetched.append("x")
        return Token.issued(f"t{len(fetched)}", now=clock(), expires_in=100)

    assert (await cache.get(KEY, fetch)).value == "t1"
    clock.now += 80
    assert (await cache.get(KEY, fetch)).value == "t1"
    clock.now += 12  # 8 s left: inside the refresh margin
    assert (await cache.get(KEY, fetch)).value == "t2"
    other = TokenKey(KEY.realm, KEY.service, "repository:c/d:pull")
    assert (await cache.get(other, fetch)).value == "t3"
    assert len(fetched) == 3


async def test_token_cache_single_flights_concurrent_refreshes() -> None:
    cache = TokenCache(clock=FakeClock())
    calls = 0
    got: list[str] = []

    async def fetch() -> Token:
        nonlocal calls
        calls += 1
        await trio.sleep(0.05)
        return Token.issued(f"t{calls}", now=cache.clock(), expires_in=60)

    async def one() -> None:
        got.append((await cache.get(KEY, fetch)).value)

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(one)
    assert calls == 1
    assert got == ["t1"] * 20


async def test_token_cache_gives_the_error_to_every_waiter_and_caches_nothing() -> None:
    cache = TokenCache(clock=FakeClock())
    calls = 0
    errors: list[AuthFailed] = []

    async def fetch() -> Token:
        nonlocal calls
        calls += 1
        await trio.sleep(0.05)
        raise AuthFailed("token service said no", status=401)

    async def one() -> None:
        try:
            await cache.get(KEY, fetch)
        except AuthFailed as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(one)
    assert calls == 1
    assert len(errors) == 5
    assert all(e.status == 401 and "said no" in str(e) for e in errors)
    assert cache.peek(KEY) is None


async def test_token_cache_waiter_takes_over_when_the_leader_is_cancelled() -> None:
    cache = TokenCache(clock=FakeClock())
    calls = 0

    async def fetch() -> Token:
        nonlocal calls
        calls += 1
        await trio.sleep(0.2 if calls == 1 else 0.01)
        return Token.issued(f"t{calls}", now=cache.clock(), expires_in=60)

    results: list[str] = []

    async def waiter() -> None:
        results.append((await cache.get(KEY, fetch)).value)

    async with trio.open_nursery() as nursery:
        with trio.move_on_after(0.05):
            async with trio.open_nursery() as inner:
                inner.start_soon(cache.get, KEY, fetch)
                await trio.sleep(0.01)
                nursery.start_soon(waiter)
                await trio.sleep(1)
    assert results == ["t2"]
    assert calls == 2


def test_retry_after_seconds_and_http_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120") == 120.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(30.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-5") is None


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, AuthFailed),
        (403, AuthFailed),
        (404, NotFound),
        (429, RateLimited),
        (500, Unavailable),
        (503, Unavailable),
        (400, ProtocolError),
        (416, ProtocolError),
    ],
)
def test_status_maps_to_one_error_class(status: int, kind: type[UpstreamError]) -> None:
    body = b'{"errors":[{"code":"DENIED","message":"no pulls for you","detail":null}]}'
    error = error_from_response(httpx.Response(status), body, "manifest a/b:1")
    assert type(error) is kind
    assert error.status == status
    assert error.codes == ["DENIED"]
    assert str(error) == f"manifest a/b:1: upstream answered {status} (DENIED: no pulls for you)"


def test_rate_limited_keeps_retry_after_and_plain_bodies_are_quoted() -> None:
    response = httpx.Response(429, headers={"Retry-After": "7"})
    error = error_from_response(response, b"slow down", "blob a/b@sha256:1")
    assert isinstance(error, RateLimited)
    assert error.retry_after == 7.0
    assert error.errors == []
    assert "slow down" in str(error)
