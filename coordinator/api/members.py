"""``/projects/{p}/members``: who belongs to a project, with which role."""

from __future__ import annotations

from quart import Blueprint, Response, request

from coordinator.api.access import project_access
from coordinator.api.http import (
    API_PREFIX,
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
from coordinator.domain import members

__all__ = ["blueprint"]


def blueprint(services: Services) -> Blueprint:
    bp = Blueprint("members", __name__, url_prefix=API_PREFIX)
    db = services.db

    @bp.get("/projects/<ref>/members")
    async def list_members(ref: str) -> Response:
        access = await project_access(db, principal(), ref, "member", "list")
        query = list_query()
        entity_name = request.args.get("entityname")
        total, rows = await db.run(members.list_members, access.project_id, query, entity_name)
        return paged([members.to_json(row) for row in rows], total, query)

    @bp.post("/projects/<ref>/members")
    @audited("member")
    async def add_member(ref: str) -> Response:
        access = await project_access(db, principal(), ref, "member", "create")
        body = await read_json()
        user = body.get("member_user")
        who = (user.get("username") or user.get("user_id")) if isinstance(user, dict) else ""
        audit_resource(f"{access.name}/{who}", access.project_id)
        member_id = await db.run(members.add, access.project_id, body)
        location = f"{API_PREFIX}/projects/{ref}/members/{member_id}"
        return empty(201, headers={"Location": location})

    @bp.get("/projects/<ref>/members/<int:mid>")
    async def get_member(ref: str, mid: int) -> Response:
        access = await project_access(db, principal(), ref, "member", "read")
        return json_response(members.to_json(await db.run(members.get, access.project_id, mid)))

    @bp.put("/projects/<ref>/members/<int:mid>")
    @audited("member")
    async def update_member(ref: str, mid: int) -> Response:
        access = await project_access(db, principal(), ref, "member", "update")
        audit_resource(f"{access.name}/{mid}", access.project_id)
        body = await read_json()
        await db.run(members.update_role, access.project_id, mid, body.get("role_id"))
        return empty(200)

    @bp.delete("/projects/<ref>/members/<int:mid>")
    @audited("member")
    async def remove_member(ref: str, mid: int) -> Response:
        access = await project_access(db, principal(), ref, "member", "delete")
        row = await db.run(members.remove, access.project_id, mid)
        audit_resource(f"{access.name}/{row.entity_name or mid}", access.project_id)
        return empty(200)

    return bp
