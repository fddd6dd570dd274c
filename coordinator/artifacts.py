"""The artifact index: what the nodes hold, as they report it (``coordinator.events``).

Three tables (``coordinator.db.schema``)::

    repositories  project_id, name ("<project>/<path>"), pull_count, creation/update_time
    artifacts     repository_id, digest, media_type, size, push_time, pull_time
    tags          repository_id, artifact_id, name, push_time, pull_time

A repository belongs to the project named by its first path segment; names whose
project does not exist at the coordinator are not indexed. Artifacts are manifests (an
image, an index, any OCI artifact) known by digest; a tag points at one artifact of its
repository (a push of the tag elsewhere moves it). A pull of an artifact the index does
not know (content a proxy-cache project fetched from its upstream) adds it, as Harbor
does for proxy caches.

Every function runs in the caller's transaction and is safe to call again with the same
input (the event layer dedupes by sequence number; these only need to be consistent).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from coordinator.db.schema import artifacts, projects, repositories, tags

__all__ = [
    "artifact_id",
    "ensure_artifact",
    "ensure_repository",
    "project_of",
    "record_delete",
    "record_pull",
    "record_push",
    "split_name",
]


def split_name(repository: str) -> tuple[str, str]:
    """``("library", "alpine")`` for ``library/alpine``; ``("", name)`` without a slash."""
    project, sep, rest = repository.partition("/")
    return (project, rest) if sep else ("", repository)


def project_of(conn: Connection, repository: str) -> int | None:
    """The id of the project ``repository`` belongs to, or None when there is none."""
    project, path = split_name(repository)
    if not project or not path:
        return None
    found = conn.execute(select(projects.c.project_id).where(projects.c.name == project)).scalar()
    return int(found) if found is not None else None


def ensure_repository(conn: Connection, project_id: int, name: str, when: datetime) -> int:
    """The id of repository ``name``, created (in ``project_id``) if it is new."""
    found = conn.execute(
        select(repositories.c.repository_id).where(repositories.c.name == name)
    ).scalar()
    if found is not None:
        return int(found)
    result = conn.execute(
        insert(repositories).values(
            project_id=project_id, name=name, creation_time=when, update_time=when
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def artifact_id(conn: Connection, repository_id: int, digest: str) -> int | None:
    found = conn.execute(
        select(artifacts.c.id).where(
            artifacts.c.repository_id == repository_id, artifacts.c.digest == digest
        )
    ).scalar()
    return int(found) if found is not None else None


def ensure_artifact(
    conn: Connection,
    repository_id: int,
    digest: str,
    media_type: str,
    size: int,
    when: datetime,
) -> tuple[int, bool]:
    """(id of the artifact, whether it was created now)."""
    found = artifact_id(conn, repository_id, digest)
    if found is not None:
        return found, False
    result = conn.execute(
        insert(artifacts).values(
            repository_id=repository_id,
            digest=digest,
            media_type=media_type,
            size=size,
            push_time=when,
        )
    )
    return int(result.inserted_primary_key[0]), True  # type: ignore[index]


def _tag(conn: Connection, repository_id: int, name: str) -> Any:
    return conn.execute(
        select(tags).where(tags.c.repository_id == repository_id, tags.c.name == name)
    ).first()


def _point_tag(
    conn: Connection, repository_id: int, art_id: int, name: str, when: datetime
) -> None:
    row = _tag(conn, repository_id, name)
    if row is None:
        conn.execute(
            insert(tags).values(
                repository_id=repository_id, artifact_id=art_id, name=name, push_time=when
            )
        )
    elif row.artifact_id != art_id:
        conn.execute(
            update(tags)
            .where(tags.c.id == row.id)
            .values(artifact_id=art_id, push_time=when, pull_time=None)
        )


def record_push(
    conn: Connection,
    project_id: int,
    repository: str,
    digest: str,
    media_type: str,
    size: int,
    tag: str | None,
    when: datetime,
) -> None:
    """A manifest was pushed (by digest, or as ``tag``)."""
    repo_id = ensure_repository(conn, project_id, repository, when)
    art_id, created = ensure_artifact(conn, repo_id, digest, media_type, size, when)
    if not created:
        conn.execute(
            update(artifacts)
            .where(artifacts.c.id == art_id)
            .values(push_time=when, media_type=media_type or artifacts.c.media_type)
        )
    if tag:
        _point_tag(conn, repo_id, art_id, tag, when)
    conn.execute(
        update(repositories).where(repositories.c.repository_id == repo_id).values(update_time=when)
    )


def record_pull(
    conn: Connection,
    project_id: int,
    repository: str,
    digest: str,
    media_type: str,
    size: int,
    tag: str | None,
    when: datetime,
    count: int,
) -> None:
    """``count`` pulls of a manifest (the latest at ``when``)."""
    repo_id = ensure_repository(conn, project_id, repository, when)
    art_id, _ = ensure_artifact(conn, repo_id, digest, media_type, size, when)
    conn.execute(update(artifacts).where(artifacts.c.id == art_id).values(pull_time=when))
    if tag:
        if _tag(conn, repo_id, tag) is None:
            _point_tag(conn, repo_id, art_id, tag, when)
        conn.execute(
            update(tags)
            .where(tags.c.repository_id == repo_id, tags.c.name == tag)
            .values(pull_time=when)
        )
    conn.execute(
        update(repositories)
        .where(repositories.c.repository_id == repo_id)
        .values(pull_count=repositories.c.pull_count + count)
    )


def record_delete(
    conn: Connection, repository: str, tag: str | None, digest: str, when: datetime
) -> None:
    """A tag (``tag``) or a manifest (``digest``, with its tags) was deleted."""
    repo_id = conn.execute(
        select(repositories.c.repository_id).where(repositories.c.name == repository)
    ).scalar()
    if repo_id is None:
        return
    if tag:
        conn.execute(delete(tags).where(tags.c.repository_id == repo_id, tags.c.name == tag))
    else:
        conn.execute(
            delete(artifacts).where(
                artifacts.c.repository_id == repo_id, artifacts.c.digest == digest
            )
        )
    conn.execute(
        update(repositories).where(repositories.c.repository_id == repo_id).values(update_time=when)
    )
