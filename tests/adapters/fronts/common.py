"""The Docker token flow as hosted registries run it, for the provider fronts.

:class:`TokenFlow` is an :class:`~support.authfront.Provider` with a token endpoint at the
provider's path: Basic credentials checked against ``users`` (refused with the provider's
own error answer), tokens that grant exactly the scopes asked for and expire on ``clock``
(the clock the adapter under test uses), and ``/v2/`` requests refused with a Bearer
challenge unless they carry a live token for their repository. :meth:`TokenFlow.throttle`
answers the next ``/v2/`` request with the provider's 429 and a ``Retry-After``.

Subclasses set the class attributes (paths, service, answers) and add their management
API in :meth:`TokenFlow.api`.
"""

from __future__ import annotations

import base64
import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from support.authfront import FrontRequest, FrontResponse, Provider

__all__ = ["Clock", "Grant", "TokenFlow", "basic_user", "json_page", "oci_errors"]

V2_PATH = re.compile(r"^/v2/(?P<name>.+)/(?:manifests|blobs|tags|referrers)/")


class Clock:
    """A monotonic clock the test moves by hand, shared by the adapter and the front."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Grant:
    subject: str
    scopes: frozenset[str]
    expires_at: float


def oci_errors(code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message, "detail": None}]}


def basic_user(req: FrontRequest) -> tuple[str, str] | None:
    """The Basic credentials of ``req`` (None when it has none or they are malformed)."""
    value = req.headers.get("authorization", "")
    if not value.lower().startswith("basic "):
        return None
    try:
        user, _, secret = base64.b64decode(value[6:]).decode().partition(":")
    except ValueError:
        return None
    return user, secret


class TokenFlow(Provider):
    """A provider whose registry wants Bearer tokens from ``token_path``."""

    token_path = "/token"
    service = "registry.test"
    #: JSON field names of the token answer
    token_fields: tuple[str, ...] = ("token",)

    def __init__(
        self,
        users: dict[str, str],
        *,
        clock: Callable[[], float] = time.monotonic,
        expires_in: int = 300,
        anonymous_pull: bool = False,
        api_token: str = "",
    ) -> None:
        self.users = users
        #: the token the management API (:meth:`api`) takes, where it takes one
        self.api_token = api_token
        self.clock = clock
        self.expires_in = expires_in
        self.anonymous_pull = anonymous_pull
        self.grants: dict[str, Grant] = {}
        self.logins: list[str] = []
        self._serial = itertools.count(1)
        self._throttled = 0
        self._retry_after = 0

    # -- what providers answer differently ------------------------------------------

    def login_refused(self, user: str) -> FrontResponse:
        return FrontResponse.json(oci_errors("UNAUTHORIZED", "authentication required"), 401)

    def too_many(self) -> FrontResponse:
        body = oci_errors("TOOMANYREQUESTS", "too many requests")
        return FrontResponse.json(body, 429, {"retry-after": str(self._retry_after)})

    async def api(self, req: FrontRequest) -> FrontResponse | None:
        """The provider's management API (listing); None: not found."""
        return None

    def accepts(self, user: str, secret: str) -> bool:
        """Whether the token endpoint takes these Basic credentials."""
        return self.users.get(user) == secret

    # -- the flow ---------------------------------------------------------------------

    def throttle(self, retry_after: int, times: int = 1) -> None:
        self._retry_after = retry_after
        self._throttled = times

    async def endpoint(self, req: FrontRequest) -> FrontResponse | None:
        if req.path == self.token_path:
            return self.issue(req)
        return await self.api(req)

    def issue(self, req: FrontRequest) -> FrontResponse:
        if req.arg("service") != self.service:
            return FrontResponse.json(oci_errors("DENIED", "unknown service"), 400)
        creds = basic_user(req)
        subject = ""
        if creds is not None:
            user, secret = creds
            if not self.accepts(user, secret):
                return self.login_refused(user)
            subject = user
        elif not self.anonymous_pull:
            return self.login_refused("")
        self.logins.append(subject)
        scopes = frozenset(req.query.get("scope", []))
        value = self.mint(next(self._serial))
        self.grants[value] = Grant(subject, scopes, self.clock() + self.expires_in)
        return FrontResponse.json(self.token_answer(value))

    def mint(self, serial: int) -> str:
        """The value of the ``serial``-th token."""
        return f"{self.service}-token-{serial}"

    def token_answer(self, value: str) -> dict[str, Any]:
        """The token endpoint's JSON answer for a new token ``value``."""
        issued = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        body: dict[str, Any] = {name: value for name in self.token_fields}
        body.update({"expires_in": self.expires_in, "issued_at": issued})
        return body

    def authorize(self, req: FrontRequest) -> FrontResponse | None:
        if req.path == self.token_path:  # Quay's /v2/auth shares the registry's prefix
            return self.issue(req)
        if self._throttled:
            self._throttled -= 1
            return self.too_many()
        match = V2_PATH.match(req.path)
        if match:
            scope = f"repository:{match['name']}:pull"
        elif req.path.rstrip("/") == "/v2/_catalog":
            scope = "registry:catalog:*"
        else:
            scope = ""
        auth = req.headers.get("authorization", "")
        grant = self.grants.get(auth[7:]) if auth.lower().startswith("bearer ") else None
        live = grant is not None and grant.expires_at > self.clock()
        if live and grant is not None and (not scope or scope in grant.scopes):
            return None
        return self.challenge(req, scope)

    def challenge(self, req: FrontRequest, scope: str) -> FrontResponse:
        realm = req.base_url + self.token_path
        header = f'Bearer realm="{realm}",service="{self.service}"'
        if scope:
            header += f',scope="{scope}"'
        body = oci_errors("UNAUTHORIZED", "authentication required")
        return FrontResponse.json(body, 401, {"www-authenticate": header})


#: the most items a front puts on one page, whatever the client asks (so paging shows)
PAGE_CAP = 2


def json_page(
    req: FrontRequest, items: list[Any], size_arg: str, page_arg: str = "page"
) -> tuple[list[Any], str | None]:
    """Page ``items`` by ``?<page_arg>=N&<size_arg>=M`` (at most PAGE_CAP); the next
    page's URL or None."""
    size = min(int(req.arg(size_arg, "20") or 20), PAGE_CAP)
    page = int(req.arg(page_arg, "1") or 1)
    chunk = items[(page - 1) * size : page * size]
    if page * size >= len(items):
        return chunk, None
    return chunk, f"{req.base_url}{req.path}?{size_arg}={size}&{page_arg}={page + 1}"
