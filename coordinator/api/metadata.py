"""``/projects/{p}/metadatas``: a project's metadata entries (values are strings)."""

from __future__ import annotations

from quart import Blueprint, Response

from coordinator.api.access import project_access
from coordinator.api.http import (
    API_PREFIX,
    APIError,
    audit_resource,
    audited,
    empty,
    json_response,
    principal,
    read_json,
)
from coordinator.api.services import Services
from coordinator.domain import projects

__all__ = ["blueprint"]


def blueprint(services: Services) -> Blueprint:
    bp = Blueprint("metadata", __name__, url_prefix=API_PREFIX)
    db = services.db

    @bp.get("/projects/<ref>/metadatas")
    @bp.get("/projects/<ref>/metadatas/")
    async def list_metadata(ref: str) -> Response:
        access = await project_access(db, principal(), ref, "metadata", "list")
        return json_response(access.metadata)

    @bp.post("/projects/<ref>/metadatas")
    @bp.post("/projects/<ref>/metadatas/")
    @audited("project-metadata")
    async def add_metadata(ref: str) -> Response:
        access = await project_access(db, principal(), ref, "metadata", "create")
        values = projects.check_metadata(await read_json())
        audit_resource(f"{access.name}/{','.join(sorted(values))}", access.project_id)
        await db.run(projects.set_metadata, access.project_id, values)
        return empty(200)

    @bp.get("/projects/<ref>/metadatas/<name>")
    async def get_metadata(ref: str, name: str) -> Response:
        access = await project_access(db, principal(), ref, "metadata", "read")
        if name not in access.metadata:
            raise APIError(404, f"metadata {name} not found")
        return json_response({name: access.metadata[name]})

    @bp.put("/projects/<ref>/metadatas/<name>")
    @audited("project-metadata")
    async def update_metadata(ref: str, name: str) -> Response:
        access = await project_access(db, principal(), ref, "metadata", "update")
        audit_resource(f"{access.name}/{name}", access.project_id)
        body = await read_json()
        values = projects.check_metadata({k: v for k, v in body.items() if v is not None})
        if set(values) != {name}:
            raise APIError(400, f"the body must set exactly the metadata {name!r}")
        if name not in access.metadata:
            raise APIError(404, f"metadata {name} not found")
        await db.run(projects.set_metadata, access.project_id, values)
        return empty(200)

    @bp.delete("/projects/<ref>/metadatas/<name>")
    @audited("project-metadata")
    async def delete_metadata(ref: str, name: str) -> Response:
        access = await project_access(db, principal(), ref, "metadata", "delete")
        audit_resource(f"{access.name}/{name}", access.project_id)
        await db.run(projects.delete_metadata, access.project_id, name)
        return empty(200)

    return bp
