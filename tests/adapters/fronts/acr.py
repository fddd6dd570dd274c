"""Azure Container Registry's login as the adapter meets it: Microsoft Entra's token
endpoint (``/<tenant>/oauth2/v2.0/token``, client credentials), ACR's ``/oauth2/exchange``
(AAD token -> refresh token) and ``/oauth2/token`` (Basic admin user on GET; the
``refresh_token`` grant on POST), all with ACR's and AAD's error answers. As ACR does,
``/oauth2/token`` answers only ``{"access_token": <JWT>}``: the lifetime is the JWT's
``exp`` claim (wall-clock time, ``expires_in`` seconds after issue)."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from fronts.common import TokenFlow, oci_errors
from support.authfront import FrontRequest, FrontResponse

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID, CLIENT_SECRET = "0d2a3b4c-app", "client~secret~value"
ADMIN, ADMIN_PASSWORD = "portmeshacr", "admin-password-0123"
REFRESH_USER = "00000000-0000-0000-0000-000000000000"
AAD_LIFETIME = 3599
REFRESH_LIFETIME = 3 * 3600


class ACR(TokenFlow):
    token_path = "/oauth2/token"
    service = "127.0.0.1"
    token_fields = ("access_token",)

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__({ADMIN: ADMIN_PASSWORD}, clock=clock, expires_in=1200)
        self.aad_tokens: dict[str, float] = {}
        self.refresh_tokens: dict[str, float] = {}

    def mint(self, serial: int) -> str:
        claims = {"jti": str(serial), "exp": int(time.time()) + self.expires_in}
        return ".".join(
            base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
            for part in ({"alg": "RS256", "typ": "JWT"}, claims, "signature")
        )

    def token_answer(self, value: str) -> dict[str, Any]:
        return {"access_token": value}

    def accepts(self, user: str, secret: str) -> bool:
        if user == REFRESH_USER:
            return self.clock() < self.refresh_tokens.get(secret, 0.0)
        return super().accepts(user, secret)

    def login_refused(self, user: str) -> FrontResponse:
        return FrontResponse.json(
            oci_errors(
                "UNAUTHORIZED", "authentication required, visit https://aka.ms/acr/authorization"
            ),
            401,
        )

    async def endpoint(self, req: FrontRequest) -> FrontResponse | None:
        if req.path == self.token_path and req.method == "POST":
            return self._refresh_grant(req)
        return await super().endpoint(req)

    def _refresh_grant(self, req: FrontRequest) -> FrontResponse:
        """The OAuth2 form of the token endpoint, answered as the Basic GET would be."""
        form = req.form()
        if form.get("grant_type") != "refresh_token":
            return FrontResponse.json(oci_errors("UNSUPPORTED", "grant_type not supported"), 400)
        pair = f"{REFRESH_USER}:{form.get('refresh_token', '')}".encode()
        as_get = FrontRequest(
            "GET",
            req.path,
            {"service": [form.get("service", "")], "scope": [form.get("scope", "")]},
            {"authorization": "Basic " + base64.b64encode(pair).decode()},
            b"",
            req.base_url,
        )
        return self.issue(as_get)

    async def api(self, req: FrontRequest) -> FrontResponse | None:
        form = req.form()
        if req.path == f"/{TENANT}/oauth2/v2.0/token" and req.method == "POST":
            if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
                return FrontResponse.json(
                    {
                        "error": "invalid_client",
                        "error_description": "AADSTS7000215: Invalid client secret provided.",
                    },
                    401,
                )
            if form.get("grant_type") != "client_credentials" or not form.get("scope"):
                return FrontResponse.json({"error": "invalid_request"}, 400)
            token = "aad." + secrets.token_urlsafe(16)
            self.aad_tokens[token] = self.clock() + AAD_LIFETIME
            body = {"token_type": "Bearer", "expires_in": AAD_LIFETIME, "access_token": token}
            return FrontResponse.json(body)
        if req.path == "/oauth2/exchange" and req.method == "POST":
            fresh = self.clock() < self.aad_tokens.get(form.get("access_token", ""), 0.0)
            if (
                form.get("grant_type") != "access_token"
                or form.get("service") != self.service
                or form.get("tenant") != TENANT
                or not fresh
            ):
                return FrontResponse.json(
                    {"error": "invalid_grant", "error_description": "The access token is invalid."},
                    401,
                )
            refresh = "acr-refresh." + secrets.token_urlsafe(16)
            self.refresh_tokens[refresh] = self.clock() + REFRESH_LIFETIME
            return FrontResponse.json({"refresh_token": refresh})
        return None
