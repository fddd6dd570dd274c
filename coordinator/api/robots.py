"""``/robots`` (Harbor's robot API v2.0) and ``/projects/{p}/robots``.

System robots are managed by system administrators; a project robot by whoever holds
the ``robot`` permission for the action in its project (project admins: everything;
maintainers, developers and guests: read and list). The secret is shown once, in the
answer of ``POST /robots`` and ``PATCH /robots/{id}`` (refresh: the given secret, or a
generated one).
"""

from __future__ import annotations

from typing import Any

import trio
from quart import Blueprint, Response
from sqlalchemy import Connection, Row, select

from coordinator.api.access import (
    holds_system,
    project_access,
    require_system,
    require_user,
    within_own,
)
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
from coordinator.auth import rbac
from coordinator.auth.principal import Principal
from coordinator.db.schema import iso, members
from coordinator.robot_rules import check_create, check_secret
from coordinator.robots import (
    create,
    delete_robot,
    generate_secret,
    get,
    list_robots,
    set_secret_hash,
    to_json,
    update_robot,
)
from portmesh.passwords import hash_secret

__all__ = ["blueprint"]


def _listable_projects(conn: Connection, user_id: int | None) -> list[int]:
    """The projects whose robots user ``user_id`` may list."""
    if user_id is None:
        return []
    rows = conn.execute(
        select(members.c.project_id, members.c.role_id).where(
            members.c.entity_type == "u", members.c.entity_id == user_id
        )
    ).all()
    return [int(r.project_id) for r in rows if rbac.allowed(r.role_id, "robot", "list")]


def blueprint(services: Services) -> Blueprint:
    bp = Blueprint("robots", __name__, url_prefix=API_PREFIX)
    db = services.db

    async def guard(caller: Principal, row: Row[Any], action: str) -> None:
        require_user(caller)
        if row.level == "system" or row.project_id is None:
            require_system(caller, "robot", action)
        else:
            await project_access(db, caller, str(row.project_id), "robot", action, is_name=False)

    async def hashed(secret: str) -> str:
        return await trio.to_thread.run_sync(hash_secret, secret)

    @bp.post("/robots")
    @audited("robot")
    async def create_robot() -> Response:
        caller = principal()
        require_user(caller)
        body = await read_json()
        spec = await db.run(check_create, body)
        audit_resource(spec.name, spec.project_id)
        if spec.project_id is None:
            require_system(caller, "robot", "create")
        else:
            await project_access(db, caller, str(spec.project_id), "robot", "create", is_name=False)
        if not within_own(caller, spec.permissions):
            raise APIError(403, "a robot cannot grant permissions it does not hold")
        secret = spec.secret or generate_secret()
        row = await db.run(create, spec, await hashed(secret), caller.user_id or 0)
        created = {
            "id": row.id,
            "name": row.name,
            "secret": secret,
            "creation_time": iso(row.creation_time),
            "expires_at": row.expires_at,
        }
        return json_response(created, 201, {"Location": f"{API_PREFIX}/robots/{row.id}"})

    @bp.get("/robots")
    async def list_all() -> Response:
        caller = principal()
        require_user(caller)
        query = list_query()
        every = caller.sysadmin or holds_system(caller, "robot", "list")
        scope = None if every else await db.run(_listable_projects, caller.user_id)
        total, rows = await db.run(list_robots, query, project_ids=scope)
        return paged([to_json(row) for row in rows], total, query)

    @bp.get("/projects/<ref>/robots")
    async def list_of_project(ref: str) -> Response:
        access = await project_access(db, principal(), ref, "robot", "list")
        query = list_query()
        total, rows = await db.run(list_robots, query, project_ids=[access.project_id])
        return paged([to_json(row) for row in rows], total, query)

    @bp.get("/robots/<int:robot_id>")
    async def get_robot(robot_id: int) -> Response:
        row = await db.run(get, robot_id)
        await guard(principal(), row, "read")
        return json_response(to_json(row))

    @bp.put("/robots/<int:robot_id>")
    @audited("robot")
    async def put_robot(robot_id: int) -> Response:
        row = await db.run(get, robot_id)
        audit_resource(str(row.name), row.project_id)
        caller = principal()
        await guard(caller, row, "update")
        body = await read_json()
        if not within_own(caller, body.get("permissions")):
            raise APIError(403, "a robot cannot grant permissions it does not hold")
        await db.run(update_robot, robot_id, body)
        return empty(200)

    @bp.patch("/robots/<int:robot_id>")
    @audited("robot")
    async def refresh_secret(robot_id: int) -> Response:
        row = await db.run(get, robot_id)
        audit_resource(str(row.name), row.project_id)
        await guard(principal(), row, "update")
        body = await read_json()
        given = body.get("secret")
        secret = generate_secret() if given in (None, "") else check_secret(given)
        await db.run(set_secret_hash, robot_id, await hashed(secret))
        return json_response({"secret": secret})

    @bp.delete("/robots/<int:robot_id>")
    @audited("robot")
    async def remove_robot(robot_id: int) -> Response:
        row = await db.run(get, robot_id)
        audit_resource(str(row.name), row.project_id)
        await guard(principal(), row, "delete")
        await db.run(delete_robot, robot_id)
        return empty(200)

    return bp
