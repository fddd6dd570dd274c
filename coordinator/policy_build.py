"""The policy snapshot nodes receive, built from the database, and its version.

:func:`build_policy` assembles a :class:`portmesh.policy.Policy` from the projects table
(name, id, public) and the :class:`PolicySources` the composition root wires in: the
token issuer, the signing keys (``policy_keys``), robot accounts and revocations
(``policy_robots``) and proxy-cache upstreams (``policy_upstreams``). A node's copy differs
only in ``service.audience`` (:func:`for_node`).

The version: ``policy_state`` (one row) holds the version and the sha256 of the
snapshot's content at that version. :func:`sync_version` compares the content built now
with it and bumps the version in the same transaction when they differ, so any change to
projects, robots, registries or keys yields a new version, with no writer having to
remember to bump it, and several coordinator replicas on one database agree (the bump is
a conditional UPDATE; the loser re-reads).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, insert, select, update

from coordinator.db.schema import now, policy_state, projects
from coordinator.domain.projects import metadata_of
from portmesh import codec
from portmesh.policy import Policy, Project, Revocations, Robot, ServiceInfo

__all__ = ["PolicySources", "build_policy", "content_digest", "for_node", "sync_version"]

_STATE_ID = 1


@dataclass(frozen=True)
class PolicySources:
    """Where the parts of the snapshot come from (functions over ``conn``); a missing
    source contributes nothing."""

    issuer: str
    keys: Callable[[Connection], Sequence[Mapping[str, str]]] | None = None
    robots: Callable[[Connection], Iterable[Robot]] | None = None
    revoked: Callable[[Connection], Revocations] | None = None
    #: proxy-cache upstreams, each a mapping; ``project`` and ``name`` keys (when
    #: present) mark the project as a proxy of that upstream
    upstreams: Callable[[Connection], Sequence[Mapping[str, Any]]] | None = None


def build_policy(conn: Connection, sources: PolicySources) -> Policy:
    """The snapshot as of now, with version 0, no audience and ``issued_at`` 0."""
    upstreams = [dict(u) for u in sources.upstreams(conn)] if sources.upstreams else []
    proxies = {
        str(u["project"]): str(u.get("name", u["project"])) for u in upstreams if u.get("project")
    }
    rows = conn.execute(
        select(projects.c.project_id, projects.c.name).order_by(projects.c.project_id)
    ).all()
    meta = metadata_of(conn, [r.project_id for r in rows])
    found = {
        r.name: Project(
            r.name,
            int(r.project_id),
            meta.get(r.project_id, {}).get("public") == "true",
            proxies.get(r.name),
        )
        for r in rows
    }
    robots = sorted(sources.robots(conn), key=lambda r: r.name) if sources.robots else []
    revoked = sources.revoked(conn) if sources.revoked else Revocations()
    keys = tuple(dict(k) for k in sources.keys(conn)) if sources.keys else ()
    return Policy(
        version=0,
        issued_at=0.0,
        service=ServiceInfo(sources.issuer, ""),
        keys=keys,
        projects=found,
        robots={r.name: r for r in robots},
        revoked=revoked,
        upstreams=tuple(upstreams),
    )


def content_digest(policy: Policy) -> str:
    """sha256 of the snapshot's content (everything but version, time and audience)."""
    doc = replace(policy, version=0, issued_at=0.0, service=replace(policy.service, audience=""))
    return hashlib.sha256(codec.encode(doc.to_doc())).hexdigest()


def sync_version(conn: Connection, digest: str) -> int:
    """The policy version for content ``digest``: the stored one if the content is
    unchanged, else the next one (stored with ``digest``)."""
    for _ in range(5):
        row = conn.execute(select(policy_state).where(policy_state.c.id == _STATE_ID)).first()
        if row is None:
            conn.execute(
                insert(policy_state).values(
                    id=_STATE_ID, version=1, digest=digest, update_time=now()
                )
            )
            return 1
        if row.digest == digest:
            return int(row.version)
        bumped = conn.execute(
            update(policy_state)
            .where(policy_state.c.id == _STATE_ID, policy_state.c.version == row.version)
            .values(version=row.version + 1, digest=digest, update_time=now())
        )
        if bumped.rowcount == 1:
            return int(row.version) + 1
    raise RuntimeError("the policy version keeps changing under this transaction")


def for_node(policy: Policy, version: int, service: str, issued_at: float) -> Policy:
    """The snapshot as node ``service`` receives it."""
    return replace(
        policy,
        version=version,
        issued_at=issued_at,
        service=ServiceInfo(policy.service.issuer, service),
    )
