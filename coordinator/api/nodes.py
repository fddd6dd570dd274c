"""``/nodes``: join tokens, node registration, the policy long poll, node events, the
node list (Portmesh's own resource; the wire protocol is described in ``node.sync``).

- ``POST /nodes/join-tokens`` (sysadmin) ``{"duration": seconds, "description"}`` ->
  201 ``{"id", "token", "expires_at"}``; the token is shown this once.
- ``POST /nodes/register`` ``{"join_token", "name", "public_key", "url"}`` -> 201
  ``{"id", "name", "service"}``.
- ``GET /nodes/{id}/policy?version=N&wait=S`` (node JWT) -> 200 with the snapshot as a
  codec frame when the policy version is above N, else 304 after up to S seconds. Query
  parameters ``cache_bytes``, ``cache_hits``, ``cache_misses``, ``node_version`` are the
  node's heartbeat.
- ``POST /nodes/{id}/events`` (node JWT) with a codec frame or a JSON list of events ->
  200 ``{"accepted": n}`` once they are stored (idempotent by seq).
- ``GET /nodes``, ``GET /nodes/{id}``, ``DELETE /nodes/{id}`` (sysadmin).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from quart import Blueprint, Response, request
from sqlalchemy import Connection

from coordinator import nodes
from coordinator.api.access import require_sysadmin
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
from coordinator.db.schema import iso
from coordinator.errors import NotFound
from coordinator.policy_build import for_node
from coordinator.policy_watch import PolicyWatch
from portmesh import codec

__all__ = ["FRAME_TYPE", "MAX_WAIT", "Ingest", "blueprint"]

#: content type of codec frames (policy snapshots, event batches)
FRAME_TYPE = "application/vnd.portmesh.frame"
MAX_WAIT = 60
MAX_EVENTS = 10_000

#: ``ingest(conn, node_id, events)`` stores node events (``coordinator.events``)
Ingest = Callable[[Connection, int, Sequence[Mapping[str, Any]]], Any]


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise APIError(400, f"{name} must be an integer") from exc
    if not low <= value <= high:
        raise APIError(400, f"{name} must be between {low} and {high}")
    return value


def _stats() -> nodes.NodeStats:
    big = 2**62
    return nodes.NodeStats(
        cache_bytes=_int_arg("cache_bytes", 0, 0, big),
        cache_hits=_int_arg("cache_hits", 0, 0, big),
        cache_misses=_int_arg("cache_misses", 0, 0, big),
        node_version=request.args.get("node_version", "")[:64],
    )


def _events(raw: bytes, content_type: str) -> list[Mapping[str, Any]]:
    try:
        frame = content_type.startswith(FRAME_TYPE)
        events = codec.decode(raw) if frame else json.loads(raw)
    except (codec.CodecError, ValueError, UnicodeDecodeError) as exc:
        raise APIError(400, f"the event batch cannot be decoded: {exc}") from exc
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise APIError(400, "the event batch must be a list of objects")
    if len(events) > MAX_EVENTS:
        raise APIError(400, f"at most {MAX_EVENTS} events per batch")
    return events


def blueprint(services: Services, watch: PolicyWatch, ingest: Ingest | None) -> Blueprint:
    bp = Blueprint("nodes", __name__, url_prefix=API_PREFIX)
    db = services.db

    async def authenticated(node_id: int) -> Any:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise APIError(401, "a node token is required")
        try:
            row = await db.run(nodes.get_node, node_id)
        except NotFound as exc:
            raise APIError(401, "node token refused: unknown node") from exc
        nodes.authenticate(row, token.strip(), time.time())
        return row

    @bp.post("/nodes/join-tokens")
    @audited("node-join-token")
    async def create_join_token() -> Response:
        caller = principal()
        require_sysadmin(caller)
        body = await read_json()
        created = await db.run(
            nodes.create_join_token,
            caller.username,
            ttl=body.get("duration", 24 * 3600),
            description=body.get("description") or "",
        )
        audit_resource(f"join-token/{created.id}")
        doc = {"id": created.id, "token": created.token, "expires_at": iso(created.expires_at)}
        return json_response(doc, 201)

    @bp.post("/nodes/register")
    @audited("node")
    async def register() -> Response:
        body = await read_json()
        audit_resource(str(body.get("name"))[:255])
        row = await db.run(
            nodes.register,
            body.get("join_token"),
            body.get("name"),
            body.get("public_key"),
            body.get("url") or "",
        )
        watch.poke()
        doc = {"id": int(row.node_id), "name": row.name, "service": row.service}
        return json_response(doc, 201, {"Location": f"{API_PREFIX}/nodes/{row.node_id}"})

    @bp.get("/nodes")
    async def list_all() -> Response:
        require_sysadmin(principal())
        query = list_query()
        total, rows = await db.run(nodes.list_nodes, query)
        return paged([nodes.to_json(r) for r in rows], total, query)

    @bp.get("/nodes/<int:node_id>")
    async def get_one(node_id: int) -> Response:
        require_sysadmin(principal())
        return json_response(nodes.to_json(await db.run(nodes.get_node, node_id)))

    @bp.delete("/nodes/<int:node_id>")
    @audited("node")
    async def delete(node_id: int) -> Response:
        require_sysadmin(principal())
        await db.run(nodes.delete_node, node_id)
        return empty()

    @bp.get("/nodes/<int:node_id>/policy")
    async def policy(node_id: int) -> Response:
        row = await authenticated(node_id)
        have = _int_arg("version", 0, 0, 2**62)
        wait = _int_arg("wait", 0, 0, MAX_WAIT)
        await db.run(nodes.heartbeat, node_id, _stats(), wait)
        snapshot = await watch.newer_than(have, wait)
        if snapshot is None:
            await db.run(nodes.heartbeat, node_id, _stats(), wait)
            return empty(304)
        mine = for_node(snapshot.policy, snapshot.version, row.service, time.time())
        await db.run(nodes.mark_synced, node_id, snapshot.version)
        return Response(
            mine.to_bytes(),
            content_type=FRAME_TYPE,
            headers={"X-Portmesh-Policy-Version": str(snapshot.version)},
        )

    @bp.post("/nodes/<int:node_id>/events")
    async def events(node_id: int) -> Response:
        await authenticated(node_id)
        raw = await request.get_data(as_text=False)
        body = raw if isinstance(raw, bytes) else raw.encode()
        batch = _events(body, request.content_type or "")
        if not batch:
            return json_response({"accepted": 0})
        if ingest is None:
            raise APIError(503, "this coordinator cannot store node events", code="UNAVAILABLE")
        await db.run(ingest, node_id, batch)
        return json_response({"accepted": len(batch)})

    return bp
