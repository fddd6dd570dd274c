"""Docker Hub as it answers: ``auth.docker.io/token`` (service ``registry.docker.io``,
``token`` and ``access_token`` in the answer), ``ratelimit-*`` headers on manifest
requests, 429 ``TOOMANYREQUESTS``, and the Hub API's ``POST /v2/auth/token`` and
``GET /v2/repositories/<namespace>/`` (``results``, ``next``)."""

from __future__ import annotations

import itertools
import json
from typing import Any

from fronts.common import TokenFlow, json_page
from support.authfront import FrontRequest, FrontResponse

__all__ = ["LIMIT", "WINDOW", "HubFront"]

LIMIT = 100
WINDOW = 21600


class HubFront(TokenFlow):
    token_path = "/token"
    service = "registry.docker.io"
    token_fields = ("token", "access_token")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.remaining = LIMIT
        #: namespace -> repository names, visible to a logged-in Hub API caller
        self.hub_repositories: dict[str, list[str]] = {}
        self._hub_tokens: set[str] = set()
        self._serial = itertools.count(1)

    def login_refused(self, user: str) -> FrontResponse:
        return FrontResponse.json({"details": "incorrect username or password"}, 401)

    def _limits(self) -> dict[str, str]:
        return {
            "ratelimit-limit": f"{LIMIT};w={WINDOW}",
            "ratelimit-remaining": f"{self.remaining};w={WINDOW}",
            "docker-ratelimit-source": "127.0.0.1",
        }

    def too_many(self) -> FrontResponse:
        message = (
            "You have reached your pull rate limit. You may increase the limit by"
            " authenticating and upgrading: https://www.docker.com/increase-rate-limit"
        )
        body = {"errors": [{"code": "TOOMANYREQUESTS", "message": message}]}
        headers = {**self._limits(), "ratelimit-remaining": f"0;w={WINDOW}"}
        headers["retry-after"] = str(self._retry_after)
        return FrontResponse.json(body, 429, headers)

    def decorate(self, req: FrontRequest, headers: dict[str, str]) -> None:
        if "/manifests/" in req.path:
            if req.method == "GET":
                self.remaining -= 1
            headers.update(self._limits())

    def authorize(self, req: FrontRequest) -> FrontResponse | None:
        # hub.docker.com's API shares the /v2/ prefix; here it shares the front's host too
        if req.path == "/v2/auth/token" or req.path.startswith("/v2/repositories/"):
            return self.hub_api(req) or FrontResponse.json({"detail": "Not found"}, 404)
        return super().authorize(req)

    def hub_api(self, req: FrontRequest) -> FrontResponse | None:
        if req.path == "/v2/auth/token" and req.method == "POST":
            doc = json.loads(req.body or b"{}")
            if not self.accepts(doc.get("identifier", ""), doc.get("secret", "")):
                refusal = {"detail": "Incorrect authentication credentials", "message": ""}
                return FrontResponse.json(refusal, 401)
            token = f"hub-jwt-{next(self._serial)}"
            self._hub_tokens.add(token)
            return FrontResponse.json({"access_token": token})
        prefix = "/v2/repositories/"
        if req.path.startswith(prefix) and req.method == "GET":
            namespace = req.path[len(prefix) :].strip("/")
            auth = req.headers.get("authorization", "")
            if auth[7:] not in self._hub_tokens:
                return FrontResponse.json({"detail": "object not found", "message": ""}, 404)
            names = self.hub_repositories.get(namespace, [])
            items = [{"name": n, "namespace": namespace, "repository_type": "image"} for n in names]
            chunk, following = json_page(req, items, "page_size")
            body: dict[str, Any] = {
                "count": len(items),
                "next": following,
                "previous": None,
                "results": chunk,
            }
            return FrontResponse.json(body)
        return None
