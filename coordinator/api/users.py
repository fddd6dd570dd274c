"""``/users``: local user accounts (Harbor's user API)."""

from __future__ import annotations

import trio
from quart import Blueprint, Response, request

from coordinator.api.access import require_sysadmin, require_system, require_user
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
from coordinator.domain import projects, users
from portmesh.passwords import hash_secret, verify_secret

__all__ = ["blueprint"]


def _self_or_admin(user_id: int) -> None:
    caller = principal()
    require_user(caller)
    if not caller.sysadmin and caller.user_id != user_id:
        raise APIError(403, "only the user or a system administrator may do this")


def blueprint(services: Services) -> Blueprint:
    bp = Blueprint("users", __name__, url_prefix=API_PREFIX)
    db = services.db

    @bp.get("/users")
    async def list_users() -> Response:
        require_system(principal(), "user", "list")
        query = list_query()
        total, rows = await db.run(users.list_users, query)
        return paged([users.to_json(row) for row in rows], total, query)

    @bp.post("/users")
    @audited("user")
    async def create_user() -> Response:
        require_system(principal(), "user", "create")
        body = await read_json()
        username = users.check_username(body.get("username"))
        audit_resource(username)
        password = users.check_password_policy(body.get("password"))
        hashed = await trio.to_thread.run_sync(hash_secret, password)
        user_id = await db.run(
            users.create,
            username,
            hashed,
            email=body.get("email"),
            realname=body.get("realname") or "",
            comment=body.get("comment") or "",
        )
        return empty(201, headers={"Location": f"{API_PREFIX}/users/{user_id}"})

    @bp.get("/users/current")
    async def current_user() -> Response:
        caller = principal()
        require_user(caller)
        if caller.user_id is None:
            raise APIError(403, "a robot account is not a user")
        return json_response(users.to_json(await db.run(users.get, caller.user_id)))

    @bp.get("/users/current/permissions")
    async def current_permissions() -> Response:
        caller = principal()
        require_user(caller)
        scope = request.args.get("scope") or "/system"
        relative = request.args.get("relative", "").lower() == "true"
        parts = scope.strip("/").split("/")
        if parts[0] == "project" and len(parts) == 2:
            try:
                project_id = int(parts[1])
            except ValueError as exc:
                raise APIError(400, f"invalid scope {scope!r}") from exc
            role = (
                rbac.Role.PROJECT_ADMIN
                if caller.sysadmin
                else await db.run(projects.role_of, project_id, caller.user_id)
            )
            public = await db.run(projects.is_public, project_id)
            granted = rbac.permissions(role, public=public)
        elif parts == ["system"]:
            granted = sorted(rbac.SYSADMIN_POLICY) if caller.sysadmin else []
        else:
            raise APIError(400, f"invalid scope {scope!r}: use /system or /project/ID")
        prefix = "" if relative else f"/{'/'.join(parts)}/"
        return json_response([{"resource": prefix + r, "action": a} for r, a in granted])

    @bp.get("/users/search")
    async def search_users() -> Response:
        require_user(principal())
        username = request.args.get("username")
        if not username:
            raise APIError(400, "the username parameter is required")
        query = list_query()
        total, rows = await db.run(users.search, username, query)
        return paged([{"user_id": r.user_id, "username": r.username} for r in rows], total, query)

    @bp.get("/users/<int:user_id>")
    async def get_user(user_id: int) -> Response:
        _self_or_admin(user_id)
        return json_response(users.to_json(await db.run(users.get, user_id)))

    @bp.put("/users/<int:user_id>")
    @audited("user")
    async def update_user(user_id: int) -> Response:
        _self_or_admin(user_id)
        body = await read_json()
        await db.run(users.update_profile, user_id, body)
        return empty(200)

    @bp.delete("/users/<int:user_id>")
    @audited("user")
    async def delete_user(user_id: int) -> Response:
        caller = principal()
        require_system(caller, "user", "delete")
        if caller.user_id == user_id:
            raise APIError(403, "a user cannot delete itself")
        audit_resource(await db.run(users.delete_user, user_id))
        return empty(200)

    @bp.put("/users/<int:user_id>/password")
    @audited("user")
    async def set_password(user_id: int) -> Response:
        caller = principal()
        _self_or_admin(user_id)
        body = await read_json()
        new = users.check_password_policy(body.get("new_password"))
        if caller.user_id == user_id:
            old = body.get("old_password")
            current = await db.run(users.password_hash, user_id)
            if not isinstance(old, str) or not await trio.to_thread.run_sync(
                verify_secret, current, old
            ):
                raise APIError(403, "the old password is incorrect")
            if old == new:
                raise APIError(400, "the new password must differ from the old one")
        hashed = await trio.to_thread.run_sync(hash_secret, new)
        await db.run(users.set_password_hash, user_id, hashed)
        return empty(200)

    @bp.put("/users/<int:user_id>/sysadmin")
    @audited("user")
    async def set_sysadmin(user_id: int) -> Response:
        caller = principal()
        require_sysadmin(caller)
        body = await read_json()
        flag = body.get("sysadmin_flag")
        if not isinstance(flag, bool):
            raise APIError(400, "sysadmin_flag must be true or false")
        if caller.user_id == user_id:
            raise APIError(403, "a system administrator cannot change its own flag")
        await db.run(users.set_sysadmin, user_id, flag)
        return empty(200)

    return bp
