"""``/projects``: create, list, check, read, update, delete, summary."""

from __future__ import annotations

from quart import Blueprint, Response, request

from coordinator.api.access import can, project_access, require_user
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
from coordinator.domain import projects
from coordinator.query import Condition

__all__ = ["blueprint"]


def _bool_arg(name: str) -> bool | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise APIError(400, f"{name} must be true or false")


def blueprint(services: Services) -> Blueprint:
    bp = Blueprint("projects", __name__, url_prefix=API_PREFIX)
    db = services.db

    @bp.route("/projects", methods=["HEAD"])
    async def head_project() -> Response:
        require_user(principal())  # as Harbor: names are not probed anonymously
        name = request.args.get("project_name")
        if not name:
            raise APIError(400, "the project_name parameter is required")
        found = await db.run(projects.exists_by_name, name)
        return empty(200 if found else 404)

    @bp.get("/projects")
    async def list_projects() -> Response:
        caller = principal()
        extra = []
        if name := request.args.get("name"):
            extra.append(Condition("name", "fuzzy", name))
        if owner := request.args.get("owner"):
            extra.append(Condition("owner_name", "exact", owner))
        public = _bool_arg("public")
        if public is not None:
            extra.append(Condition("public", "exact", "true" if public else "false"))
        query = list_query(*extra)
        total, items = await db.run(
            lambda conn: projects.list_projects(
                conn, query, user_id=caller.user_id, sysadmin=caller.sysadmin
            )
        )
        return paged(items, total, query)

    @bp.post("/projects")
    @audited("project")
    async def create_project() -> Response:
        caller = principal()
        require_user(caller)
        if services.config.project_creation_restriction == "adminonly" and not caller.sysadmin:
            raise APIError(403, "only system administrators may create projects")
        body = await read_json()
        name = projects.check_name(body.get("project_name"))
        audit_resource(name)
        metadata = projects.check_metadata(body.get("metadata"))
        if isinstance(body.get("public"), bool) and "public" not in metadata:
            metadata["public"] = "true" if body["public"] else "false"
        if caller.user_id is None:
            raise APIError(403, "robot accounts cannot create projects")
        project_id = await db.run(
            lambda conn: projects.create(
                conn,
                name,
                caller.user_id,  # type: ignore[arg-type]
                metadata=metadata,
                storage_limit=body.get("storage_limit"),
                registry_id=body.get("registry_id"),
            )
        )
        audit_resource(name, project_id)
        by_name = request.headers.get("X-Resource-Name-In-Location", "").lower() == "true"
        location = f"{API_PREFIX}/projects/{name if by_name else project_id}"
        return empty(201, headers={"Location": location})

    @bp.get("/projects/<ref>")
    async def get_project(ref: str) -> Response:
        access = await project_access(db, principal(), ref, "project", "read")
        return json_response(projects.to_json(access.row, access.metadata, access.role))

    @bp.put("/projects/<ref>")
    @audited("project")
    async def update_project(ref: str) -> Response:
        access = await project_access(db, principal(), ref, "project", "update")
        audit_resource(access.name, access.project_id)
        body = await read_json()
        await db.run(projects.update_project, access.project_id, body)
        return empty(200)

    @bp.delete("/projects/<ref>")
    @audited("project")
    async def delete_project(ref: str) -> Response:
        access = await project_access(db, principal(), ref, "project", "delete")
        audit_resource(access.name, access.project_id)
        await db.run(projects.delete_project, access.project_id)
        return empty(200)

    @bp.get("/projects/<ref>/summary")
    async def summary(ref: str) -> Response:
        caller = principal()
        access = await project_access(db, caller, ref, "project", "read")
        with_members = can(caller, access, "member", "list")
        body = await db.run(
            lambda conn: projects.summary(conn, access.row, with_members=with_members)
        )
        return json_response(body)

    return bp
