"""Docker registry tokens for an authenticated caller (the coordinator's ``/service/token``).

:meth:`TokenService.issue` grants the subset of the requested scopes the caller holds,
decided by :func:`portmesh.access.granted` from plain data read here in one transaction:
the user's roles in the projects the scopes name, which of those projects are public, a
robot's permission list, the sysadmin flag. A repository whose project does not exist
grants nothing (to anyone). Ungranted actions are dropped, never an error (the token
spec). The token is an EdDSA JWT (:mod:`portmesh.tokens`) signed with the active key of
the :class:`coordinator.keys.KeyRing`: ``iss`` is the coordinator's URL, ``aud`` the
requested ``service`` (the node's name), ``sub`` the caller's name (empty for anonymous),
a fresh ``jti`` and ``exp`` ``ttl`` seconds ahead.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from coordinator.auth.principal import Principal
from coordinator.db.engine import Database
from coordinator.db.schema import members, project_metadata, projects
from coordinator.errors import Invalid
from coordinator.keys import KeyRing
from portmesh.access import Identity, granted, project_of
from portmesh.tokens import Access, new_claims, parse_scopes, sign

__all__ = ["ProjectFacts", "TokenService", "project_facts"]

_SERVICE = re.compile(r"^[\x21-\x7e]{1,255}\Z")


@dataclass(frozen=True)
class ProjectFacts:
    """What the grant needs to know about the projects a request names: which exist,
    which are public, and the caller's role (Harbor role id) by project name."""

    existing: set[str]
    public: set[str]
    roles: dict[str, int]


def project_facts(conn: Connection, names: Iterable[str], user_id: int | None) -> ProjectFacts:
    """Which of ``names`` exist, which are public, and ``user_id``'s role in each."""
    wanted = sorted(set(names))
    if not wanted:
        return ProjectFacts(set(), set(), {})
    rows = conn.execute(
        select(projects.c.project_id, projects.c.name).where(projects.c.name.in_(wanted))
    ).all()
    by_id = {int(r.project_id): str(r.name) for r in rows}
    public = {
        by_id[int(pid)]
        for pid in conn.execute(
            select(project_metadata.c.project_id).where(
                project_metadata.c.project_id.in_(by_id),
                project_metadata.c.name == "public",
                project_metadata.c.value == "true",
            )
        ).scalars()
    }
    roles: dict[str, int] = {}
    if user_id is not None:
        for pid, role in conn.execute(
            select(members.c.project_id, members.c.role_id).where(
                members.c.project_id.in_(by_id),
                members.c.entity_type == "u",
                members.c.entity_id == user_id,
            )
        ).all():
            roles[by_id[int(pid)]] = int(role)
    return ProjectFacts(set(by_id.values()), public, roles)


class TokenService:
    """Issues registry tokens; ``issuer`` is the coordinator's external URL."""

    def __init__(
        self,
        db: Database,
        keys: KeyRing,
        *,
        issuer: str,
        ttl: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._keys = keys
        self.issuer = issuer
        self.ttl = ttl
        self._clock = clock

    async def grant(self, caller: Principal, requested: Sequence[Access]) -> list[Access]:
        """The part of ``requested`` that ``caller`` holds."""
        names = {project_of(a.name) for a in requested if a.type == "repository"}
        facts = await self._db.run(project_facts, names, caller.user_id)
        known = [
            a for a in requested if a.type != "repository" or project_of(a.name) in facts.existing
        ]
        identity = Identity(
            "" if caller.anonymous else caller.username,
            sysadmin=caller.sysadmin,
            roles=facts.roles,
            permissions=caller.permissions,
        )
        return granted(known, identity, facts.public)

    async def issue(
        self, caller: Principal, service: str, scopes: Sequence[str]
    ) -> tuple[dict[str, Any], list[Access]]:
        """(``{"token", "access_token", "expires_in", "issued_at"}``, the granted access)
        for ``caller``; Invalid for a missing or malformed ``service`` or scope."""
        if not _SERVICE.match(service):
            raise Invalid("the service parameter (the registry's name) is required")
        try:
            requested = parse_scopes(scopes)
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
        access = await self.grant(caller, requested)
        key = await self._keys.signer()
        claims = new_claims(
            issuer=self.issuer,
            subject="" if caller.anonymous else caller.username,
            audience=service,
            access=access,
            ttl=self.ttl,
            now=self._clock(),
        )
        token = sign(claims, key)
        issued = datetime.fromtimestamp(claims.iat, UTC).isoformat().replace("+00:00", "Z")
        doc = {"token": token, "access_token": token, "expires_in": self.ttl, "issued_at": issued}
        return doc, access
