"""``/projects/{p}/repositories`` and ``/repositories``: the artifact index as Harbor's
repository and artifact API (read-only views of what the nodes reported, plus delete).

Repository names in paths are URL-encoded twice, as Harbor wants (``a/b`` is sent as
``a%252Fb``; the server sees ``a%2Fb`` and decodes it once more).

- ``GET /projects/{p}/repositories``; ``GET/DELETE /projects/{p}/repositories/{r}``
  (``DELETE`` removes the repository from the coordinator's index; the content the nodes
  hold is theirs to delete).
- ``GET /projects/{p}/repositories/{r}/artifacts`` (``with_tag``, ``q`` incl. ``tags=``);
  ``GET .../artifacts/{reference}`` (a digest or a tag); ``GET .../{reference}/tags``.
- ``GET /repositories``: repositories of every project the caller can see (``q``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from quart import Blueprint, Response, request
from sqlalchemy import Connection

from coordinator import artifact_views as views
from coordinator.api.access import ProjectAccess, project_access
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
)
from coordinator.api.services import Services

__all__ = ["blueprint"]

_REPO = "/projects/<ref>/repositories/<repo>"


def _full_name(access: ProjectAccess, repo: str) -> str:
    path = unquote(repo)
    if not path or path.startswith("/") or "//" in path:
        raise APIError(400, f"invalid repository name {path!r}")
    return f"{access.name}/{path}"


def _with_tag() -> bool:
    value = request.args.get("with_tag", "true").lower()
    if value not in ("true", "false", "1", "0"):
        raise APIError(400, "with_tag must be true or false")
    return value in ("true", "1")


def blueprint(services: Services) -> Blueprint:
    bp = Blueprint("repositories", __name__, url_prefix=API_PREFIX)
    db = services.db

    @bp.get("/repositories")
    async def search() -> Response:
        caller = principal()
        query = list_query()
        total, items = await db.run(
            lambda conn: views.list_repositories(
                conn, query, user_id=caller.user_id, sysadmin=caller.sysadmin
            )
        )
        return paged(items, total, query)

    @bp.get("/projects/<ref>/repositories")
    async def list_in_project(ref: str) -> Response:
        access = await project_access(db, principal(), ref, "repository", "list")
        query = list_query()
        total, items = await db.run(
            lambda conn: views.list_repositories(conn, query, project_id=access.project_id)
        )
        return paged(items, total, query)

    @bp.get(_REPO)
    async def get_one(ref: str, repo: str) -> Response:
        access = await project_access(db, principal(), ref, "repository", "read")
        row = await db.run(views.get_repository, access.project_id, _full_name(access, repo))
        return json_response(views.repository_json(row))

    @bp.delete(_REPO)
    @audited("repository")
    async def delete(ref: str, repo: str) -> Response:
        access = await project_access(db, principal(), ref, "repository", "delete")
        name = _full_name(access, repo)
        audit_resource(name, access.project_id)
        await db.run(views.delete_repository, access.project_id, name)
        return empty(200)

    @bp.get(f"{_REPO}/artifacts")
    async def artifacts(ref: str, repo: str) -> Response:
        access = await project_access(db, principal(), ref, "artifact", "list")
        name = _full_name(access, repo)
        query = list_query()
        with_tag = _with_tag()

        def page(conn: Connection) -> tuple[int, list[dict[str, Any]]]:
            row = views.get_repository(conn, access.project_id, name)
            return views.list_artifacts(conn, row, query, with_tag=with_tag)

        total, items = await db.run(page)
        return paged(items, total, query)

    @bp.get(f"{_REPO}/artifacts/<reference>")
    async def artifact(ref: str, repo: str, reference: str) -> Response:
        access = await project_access(db, principal(), ref, "artifact", "read")
        name = _full_name(access, repo)
        body = await db.run(
            lambda conn: views.artifact_with_tags(
                conn, views.get_repository(conn, access.project_id, name), reference
            )
        )
        return json_response(body)

    @bp.get(f"{_REPO}/artifacts/<reference>/tags")
    async def artifact_tags(ref: str, repo: str, reference: str) -> Response:
        access = await project_access(db, principal(), ref, "tag", "list")
        name = _full_name(access, repo)
        query = list_query()
        total, items = await db.run(
            lambda conn: views.list_tags(
                conn,
                views.get_artifact(
                    conn, views.get_repository(conn, access.project_id, name), reference
                ).id,
                query,
            )
        )
        return paged(items, total, query)

    return bp
