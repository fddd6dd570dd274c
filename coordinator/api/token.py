"""The Docker token service and its keys.

- ``GET /service/token?service=<node>&scope=...&scope=...``: a registry token for the
  caller as resolved by the app (Basic user or robot credentials, a session, or
  anonymous; wrong credentials are a 401 before this handler runs).
- ``POST /service/token``: the OAuth2 form (``grant_type=password``, ``username``,
  ``password``, ``service``, space-separated ``scope``); its answer adds ``scope``.
- ``GET /service/jwks`` and ``/.well-known/jwks.json``: the published public keys.
- ``GET /api/v2.0/system/token-keys`` and ``POST /api/v2.0/system/token-keys/rotate``
  (system administrators): the signing keys, and rotating them.
"""

from __future__ import annotations

from quart import Blueprint, Response, request

from coordinator.api.access import require_sysadmin
from coordinator.api.http import (
    API_PREFIX,
    APIError,
    audit_resource,
    audited,
    json_response,
    principal,
)
from coordinator.api.services import Services
from coordinator.auth.token_service import TokenService
from coordinator.keys import KeyRing
from portmesh.tokens import format_scope

__all__ = ["blueprint"]

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def blueprint(services: Services, tokens: TokenService, keys: KeyRing) -> Blueprint:
    bp = Blueprint("token", __name__)

    @bp.get("/service/token")
    async def get_token() -> Response:
        service = request.args.get("service", "")
        doc, _ = await tokens.issue(principal(), service, request.args.getlist("scope"))
        return json_response(doc, headers=_NO_STORE)

    @bp.post("/service/token")
    async def post_token() -> Response:
        form = await request.form
        grant_type = form.get("grant_type", "")
        if grant_type != "password":
            raise APIError(400, f"unsupported grant_type {grant_type[:40]!r}: use 'password'")
        username, password = form.get("username", ""), form.get("password", "")
        if not username:
            raise APIError(400, "username is required")
        caller = await services.authenticator.basic(username, password)
        doc, granted = await tokens.issue(caller, form.get("service", ""), [form.get("scope", "")])
        doc["scope"] = " ".join(format_scope(entry) for entry in granted)
        return json_response(doc, headers=_NO_STORE)

    @bp.get("/service/jwks")
    @bp.get("/.well-known/jwks.json")
    async def jwks() -> Response:
        return json_response(await keys.jwks(), headers={"Cache-Control": "max-age=30"})

    @bp.get(f"{API_PREFIX}/system/token-keys")
    async def list_keys() -> Response:
        require_sysadmin(principal())
        return json_response(await keys.describe())

    @bp.post(f"{API_PREFIX}/system/token-keys/rotate")
    @audited("token-key")
    async def rotate() -> Response:
        require_sysadmin(principal())
        kid = await keys.rotate()
        audit_resource(kid)
        return json_response({"kid": kid})

    return bp
