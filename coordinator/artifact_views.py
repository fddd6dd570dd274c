"""Read views of the artifact index, shaped as Harbor's ``Repository``, ``Artifact`` and
``Tag``: listings with ``q``/``sort``/pagination, and lookups by name and reference.

Visibility is the caller's business for one project (``api.access.project_access``);
:func:`list_repositories` across projects takes the caller and keeps to the projects
they can see (public ones and their own; all of them for a system administrator).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    delete,
    exists,
    func,
    not_,
    or_,
    select,
)

from coordinator.db.filters import fetch_page
from coordinator.db.schema import (
    artifacts,
    iso,
    members,
    project_metadata,
    repositories,
    tags,
)
from coordinator.errors import Invalid, NotFound
from coordinator.query import Condition, ListQuery, SortKey

__all__ = [
    "NEVER",
    "artifact_json",
    "artifact_with_tags",
    "delete_repository",
    "get_artifact",
    "get_repository",
    "list_artifacts",
    "list_repositories",
    "list_tags",
    "repository_json",
    "tag_json",
]

#: Harbor's time for "never" (an artifact nobody pulled yet)
NEVER = "0001-01-01T00:00:00.000Z"
_IMAGE_TYPES = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)

_ARTIFACT_COUNT = (
    select(func.count())
    .where(artifacts.c.repository_id == repositories.c.repository_id)
    .correlate(repositories)
    .scalar_subquery()
)
_REPO_SELECT = select(repositories, _ARTIFACT_COUNT.label("artifact_count"))
_REPO_COLUMNS: Mapping[str, ColumnElement[Any]] = {
    "id": repositories.c.repository_id,
    "name": repositories.c.name,
    "project_id": repositories.c.project_id,
    "pull_count": repositories.c.pull_count,
    "artifact_count": _ARTIFACT_COUNT,
    "creation_time": repositories.c.creation_time,
    "update_time": repositories.c.update_time,
}
_ARTIFACT_COLUMNS: Mapping[str, ColumnElement[Any]] = {
    "id": artifacts.c.id,
    "digest": artifacts.c.digest,
    "media_type": artifacts.c.media_type,
    "size": artifacts.c.size,
    "push_time": artifacts.c.push_time,
    "pull_time": artifacts.c.pull_time,
}
_TAG_COLUMNS: Mapping[str, ColumnElement[Any]] = {
    "id": tags.c.id,
    "name": tags.c.name,
    "push_time": tags.c.push_time,
    "pull_time": tags.c.pull_time,
}


def _time(value: datetime | None) -> str:
    return iso(value) if value is not None else NEVER


def repository_json(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.repository_id,
        "project_id": row.project_id,
        "name": row.name,
        "description": row.description,
        "artifact_count": int(row.artifact_count),
        "pull_count": int(row.pull_count),
        "creation_time": iso(row.creation_time),
        "update_time": iso(row.update_time),
    }


def tag_json(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "repository_id": row.repository_id,
        "artifact_id": row.artifact_id,
        "name": row.name,
        "push_time": iso(row.push_time),
        "pull_time": _time(row.pull_time),
        "immutable": False,
    }


def artifact_json(
    row: Row[Any], repo: Row[Any], tag_rows: Sequence[Row[Any]] | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row.id,
        "type": "IMAGE" if row.media_type in _IMAGE_TYPES else "UNKNOWN",
        "media_type": row.media_type,
        "manifest_media_type": row.media_type,
        "project_id": repo.project_id,
        "repository_id": repo.repository_id,
        "repository_name": repo.name,
        "digest": row.digest,
        "size": int(row.size),
        "push_time": iso(row.push_time),
        "pull_time": _time(row.pull_time),
        "extra_attrs": {},
        "annotations": {},
        "references": [],
        "labels": [],
        "addition_links": {},
    }
    if tag_rows is not None:
        body["tags"] = [tag_json(t) for t in tag_rows]
    return body


def _visible(user_id: int | None) -> ColumnElement[bool]:
    public = exists().where(
        project_metadata.c.project_id == repositories.c.project_id,
        project_metadata.c.name == "public",
        project_metadata.c.value == "true",
    )
    if user_id is None:
        return public
    member = exists().where(
        members.c.project_id == repositories.c.project_id,
        members.c.entity_type == "u",
        members.c.entity_id == user_id,
    )
    return or_(public, member)


def list_repositories(
    conn: Connection,
    query: ListQuery,
    *,
    project_id: int | None = None,
    user_id: int | None = None,
    sysadmin: bool = False,
) -> tuple[int, list[dict[str, Any]]]:
    """(total, page) of repositories: of ``project_id``, or of every project the caller
    can see when it is None."""
    stmt = _REPO_SELECT
    if project_id is not None:
        stmt = stmt.where(repositories.c.project_id == project_id)
    elif not sysadmin:
        stmt = stmt.where(_visible(user_id))
    total, rows = fetch_page(conn, stmt, query, _REPO_COLUMNS, repositories.c.repository_id)
    return total, [repository_json(row) for row in rows]


def get_repository(conn: Connection, project_id: int, name: str) -> Row[Any]:
    """Repository ``name`` (the full ``<project>/<path>``) of ``project_id``."""
    row = conn.execute(
        _REPO_SELECT.where(repositories.c.project_id == project_id, repositories.c.name == name)
    ).first()
    if row is None:
        raise NotFound(f"repository {name} not found")
    return row


def delete_repository(conn: Connection, project_id: int, name: str) -> None:
    row = get_repository(conn, project_id, name)
    conn.execute(delete(repositories).where(repositories.c.repository_id == row.repository_id))


def _tags_of(conn: Connection, artifact_ids: Sequence[int]) -> dict[int, list[Row[Any]]]:
    found: dict[int, list[Row[Any]]] = {i: [] for i in artifact_ids}
    if artifact_ids:
        rows = conn.execute(
            select(tags).where(tags.c.artifact_id.in_(artifact_ids)).order_by(tags.c.name)
        )
        for row in rows:
            found[row.artifact_id].append(row)
    return found


def _tag_clause(cond: Condition) -> ColumnElement[bool]:
    tagged = exists().where(tags.c.artifact_id == artifacts.c.id)
    if cond.kind == "exact" and cond.value == "*":
        return tagged
    if cond.kind == "exact" and cond.value == "nil":
        return not_(tagged)
    if cond.kind == "exact":
        return exists().where(tags.c.artifact_id == artifacts.c.id, tags.c.name == str(cond.value))
    if cond.kind == "fuzzy":
        text = str(cond.value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return exists().where(
            tags.c.artifact_id == artifacts.c.id, tags.c.name.ilike(f"%{text}%", escape="\\")
        )
    raise Invalid("tags takes *, nil, a tag, or ~part of a tag")


def list_artifacts(
    conn: Connection, repo: Row[Any], query: ListQuery, *, with_tag: bool
) -> tuple[int, list[dict[str, Any]]]:
    """(total, page) of the repository's artifacts, newest push first unless sorted;
    ``q`` also takes ``tags=*`` (tagged), ``tags=nil`` (untagged), ``tags=v``, ``tags=~v``."""
    stmt = select(artifacts).where(artifacts.c.repository_id == repo.repository_id)
    rest = []
    for cond in query.conditions:
        if cond.key == "tags":
            stmt = stmt.where(_tag_clause(cond))
        else:
            rest.append(cond)
    query = replace(query, conditions=tuple(rest), sort=query.sort or (SortKey("push_time", True),))
    total, rows = fetch_page(conn, stmt, query, _ARTIFACT_COLUMNS, artifacts.c.id.desc())
    tag_map = _tags_of(conn, [row.id for row in rows]) if with_tag else {}
    return total, [
        artifact_json(row, repo, tag_map.get(row.id) if with_tag else None) for row in rows
    ]


def get_artifact(conn: Connection, repo: Row[Any], reference: str) -> Row[Any]:
    """The artifact ``reference`` (a digest, or a tag) names in ``repo``."""
    stmt = select(artifacts).where(artifacts.c.repository_id == repo.repository_id)
    if ":" in reference:
        stmt = stmt.where(artifacts.c.digest == reference)
    else:
        stmt = stmt.join(tags, tags.c.artifact_id == artifacts.c.id).where(tags.c.name == reference)
    row = conn.execute(stmt).first()
    if row is None:
        raise NotFound(f"artifact {repo.name}:{reference} not found")
    return row


def artifact_with_tags(conn: Connection, repo: Row[Any], reference: str) -> dict[str, Any]:
    row = get_artifact(conn, repo, reference)
    return artifact_json(row, repo, _tags_of(conn, [row.id])[row.id])


def list_tags(
    conn: Connection, artifact_id: int, query: ListQuery
) -> tuple[int, list[dict[str, Any]]]:
    stmt = select(tags).where(tags.c.artifact_id == artifact_id)
    total, rows = fetch_page(conn, stmt, query, _TAG_COLUMNS, tags.c.name)
    return total, [tag_json(row) for row in rows]
