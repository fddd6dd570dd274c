"""``/registries`` and ``/replication/adapters``: registry endpoints (system administrators).

- ``GET/POST /registries``; ``GET/PUT/DELETE /registries/{id}``; ``GET
  /registries/{id}/info``.
- ``POST /registries/ping`` with ``{"id"}`` (a stored registry, optionally with fields
  that override it) or a full ``RegistryPing`` body: 200 when ``GET /v2/`` through the
  adapter succeeds, else 400 saying why. A ping by id records the registry's ``status``.
- ``GET /replication/adapters`` (type names) and ``/replication/adapterinfos``.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, request

from coordinator import registries, registry_types
from coordinator.api.access import require_system
from coordinator.api.http import (
    API_PREFIX,
    APIError,
    audit_resource,
    audited,
    empty,
    json_response,
    list_query,
    paged,
    principal,
    read_json,
)
from coordinator.api.services import Services
from coordinator.db.schema import ID_MAX
from coordinator.query import Condition
from coordinator.registry_ping import PingFailed, ping
from portmesh.secrets import SecretKeys

__all__ = ["blueprint"]

_OVERRIDES = ("type", "url", "credential_type", "access_key", "access_secret", "insecure")


def _ping_values(stored: dict[str, Any] | None, body: dict[str, Any]) -> dict[str, Any]:
    """Registry values for a ping: the stored ones (secret opened) overridden by the body."""
    values: dict[str, Any] = dict(stored or {})
    for key in _OVERRIDES:
        value = body.get(key)
        if value is None or (key == "access_secret" and value == registries.MASKED):
            continue
        values[key] = value
    candidate = {
        "name": values.get("name") or "ping",
        "url": values.get("url"),
        "type": values.get("type"),
        "insecure": values.get("insecure"),
        "credential": {
            "type": values.get("credential_type"),
            "access_key": values.get("access_key"),
            "access_secret": values.get("access_secret"),
        },
    }
    return registries.check_registry(candidate)


def blueprint(services: Services, keys: SecretKeys) -> Blueprint:
    bp = Blueprint("registries", __name__, url_prefix=API_PREFIX)
    db = services.db

    @bp.get("/registries")
    async def list_all() -> Response:
        require_system(principal(), "registry", "list")
        extra = []
        if name := request.args.get("name"):
            extra.append(Condition("name", "fuzzy", name))
        query = list_query(*extra)
        total, items = await db.run(registries.list_registries, query)
        return paged(items, total, query)

    @bp.post("/registries")
    @audited("registry")
    async def create() -> Response:
        require_system(principal(), "registry", "create")
        body = await read_json()
        audit_resource(str(body.get("name"))[:255])
        values = registries.check_registry(body)
        registry_id = await db.run(registries.create, values, keys)
        return empty(201, headers={"Location": f"{API_PREFIX}/registries/{registry_id}"})

    @bp.get("/registries/<int:registry_id>")
    async def get_one(registry_id: int) -> Response:
        require_system(principal(), "registry", "read")
        return json_response(registries.to_json(await db.run(registries.get, registry_id)))

    @bp.put("/registries/<int:registry_id>")
    @audited("registry")
    async def update(registry_id: int) -> Response:
        require_system(principal(), "registry", "update")
        body = await read_json()
        await db.run(registries.update_registry, registry_id, body, keys)
        return empty(200)

    @bp.delete("/registries/<int:registry_id>")
    @audited("registry")
    async def remove(registry_id: int) -> Response:
        require_system(principal(), "registry", "delete")
        name = await db.run(registries.delete_registry, registry_id)
        audit_resource(name)
        return empty(200)

    @bp.get("/registries/<int:registry_id>/info")
    async def registry_info(registry_id: int) -> Response:
        require_system(principal(), "registry", "read")
        return json_response(registry_types.info(await db.run(registries.get, registry_id)))

    @bp.post("/registries/ping")
    async def ping_registry() -> Response:
        require_system(principal(), "registry", "create")
        body = await read_json()
        registry_id = body.get("id")
        stored = None
        if registry_id is not None:
            if isinstance(registry_id, bool) or not isinstance(registry_id, int):
                raise APIError(400, "id must be an integer")
            if not 0 < registry_id <= ID_MAX:
                raise APIError(404, f"registry {registry_id} not found")
            row = await db.run(registries.get, registry_id)
            spec = registries.spec_of(row, keys)
            stored = {
                "name": row.name,
                "type": row.type,
                "url": row.url,
                "credential_type": row.credential_type,
                "access_key": row.access_key,
                "access_secret": spec.password or "",
                "insecure": row.insecure,
            }
        values = _ping_values(stored, body)
        try:
            await ping(registries.spec_of(values, None), insecure=values["insecure"])
        except PingFailed as exc:
            if registry_id is not None:
                await db.run(registries.set_status, registry_id, "unhealthy")
            raise APIError(400, f"failed to ping the registry: {exc}") from exc
        if registry_id is not None:
            await db.run(registries.set_status, registry_id, "healthy")
        return empty(200)

    @bp.get("/replication/adapters")
    async def adapters() -> Response:
        require_system(principal(), "replication-adapter", "list")
        return json_response(registry_types.adapter_types())

    @bp.get("/replication/adapterinfos")
    async def adapter_infos() -> Response:
        require_system(principal(), "replication-adapter", "list")
        return json_response(registry_types.adapter_infos())

    return bp
