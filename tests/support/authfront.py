"""A loopback auth front for adapter tests: a provider's login protocol in front of a real
docker-registry that serves the content.

The front answers the provider's own endpoints (token services, login APIs) through a
:class:`Provider` written in the test, checks every ``/v2/`` request with it, and forwards
what it allows to the registry (streaming both ways)::

    class Hub(Provider):
        async def endpoint(self, req):          # token endpoints, management APIs
            if req.path == "/token": return FrontResponse.json({"token": "t"})
            return None                         # not ours: 404
        def authorize(self, req):               # every /v2/ request
            if req.headers.get("authorization") == "Bearer t": return None
            return FrontResponse(401, {"www-authenticate": 'Bearer realm="..."'})

    front = AuthFront(registry.url, Hub())
    port = await nursery.start(front.serve)

``front.hits`` counts requests by path (query dropped), so a test can say "one login".
A provider may also rewrite the path it forwards (``rewrite``), for registries that keep a
repository key or account in the path.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

__all__ = ["AuthFront", "FrontRequest", "FrontResponse", "Provider"]

_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


@dataclass
class FrontRequest:
    """One request as the provider sees it; header names are lower case."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    base_url: str

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode("latin-1")).items()}


@dataclass
class FrontResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def json(
        cls, obj: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> FrontResponse:
        merged = {"content-type": "application/json", **(headers or {})}
        return cls(status, merged, json.dumps(obj).encode())


class Provider:
    """What a test overrides: its endpoints, its check of ``/v2/`` requests, path rewrites."""

    async def endpoint(self, req: FrontRequest) -> FrontResponse | None:
        return None

    def authorize(self, req: FrontRequest) -> FrontResponse | None:
        return None

    def rewrite(self, path: str) -> str:
        return path

    def decorate(self, req: FrontRequest, headers: dict[str, str]) -> None:
        """Add headers to a forwarded answer (rate-limit headers, say)."""


class AuthFront:
    def __init__(self, upstream_url: str, provider: Provider) -> None:
        self.upstream_url = upstream_url.rstrip("/")
        self.provider = provider
        self.hits: Counter[str] = Counter()
        self.url = ""

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``task_status.started(base_url)``."""
        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        config.errorlog = None
        async with httpx.AsyncClient(timeout=30.0) as http, trio.open_nursery() as nursery:
            self._http = http
            binds = await nursery.start(hypercorn_serve, self._app, config)
            self.url = binds[0].replace("0.0.0.0", "127.0.0.1")
            task_status.started(self.url)

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"]
                await send({"type": kind + ".complete"})
                if kind == "lifespan.shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        req = FrontRequest(
            method=scope["method"],
            path=scope["path"],
            query=parse_qs(scope["query_string"].decode(), keep_blank_values=True),
            headers=headers,
            body=body,
            base_url=self.url,
        )
        self.hits[req.path] += 1
        if req.path == "/v2" or req.path.startswith("/v2/"):
            answer = self.provider.authorize(req)
            if answer is None:
                await self._forward(req, scope["query_string"].decode(), send)
                return
        else:
            answer = await self.provider.endpoint(req)
            if answer is None:
                answer = FrontResponse.json({"errors": [{"code": "NOT_FOUND"}]}, 404)
        await _respond(send, answer)

    async def _forward(self, req: FrontRequest, query: str, send: Any) -> None:
        url = self.upstream_url + self.provider.rewrite(req.path) + (f"?{query}" if query else "")
        headers = {k: v for k, v in req.headers.items() if k not in _HOP | {"authorization"}}
        request = self._http.build_request(req.method, url, headers=headers, content=req.body)
        response = await self._http.send(request, stream=True, follow_redirects=False)
        try:
            out = {k.lower(): v for k, v in response.headers.items() if k.lower() not in _HOP}
            if "location" in out and out["location"].startswith(self.upstream_url):
                out["location"] = self.url + out["location"][len(self.upstream_url) :]
            self.provider.decorate(req, out)
            if "content-length" in response.headers:
                out["content-length"] = response.headers["content-length"]
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [(k.encode(), v.encode()) for k, v in out.items()],
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()


async def _respond(send: Any, answer: FrontResponse) -> None:
    headers = dict(answer.headers)
    headers["content-length"] = str(len(answer.body))
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        }
    )
    await send({"type": "http.response.body", "body": answer.body})
