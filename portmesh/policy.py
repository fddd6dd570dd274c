"""The policy snapshot a node receives from the coordinator and serves from, even offline.

A snapshot is immutable and versioned (``version`` only grows). It carries what a node
needs to authenticate and authorise clients without asking anyone: the token issuer and
this node's audience name, the public keys tokens are signed with, projects, robot
accounts (with argon2id secret hashes, never secrets), revocations, and the upstream
configuration (opaque here, passed through to the proxy).

On the wire and on disk it is a :mod:`portmesh.codec` frame (zstd-compressed) of the
plain document :meth:`Policy.to_doc` returns; a JSON file of that document is accepted too
(:func:`load_policy_file`), for air-gapped nodes configured by hand.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portmesh import codec
from portmesh.access import Permission
from portmesh.tokens import KeySet

__all__ = [
    "Policy",
    "PolicyError",
    "Project",
    "Revocations",
    "Robot",
    "ServiceInfo",
    "load_policy_file",
]


class PolicyError(ValueError):
    """A snapshot that cannot be read or does not have the required shape."""


@dataclass(frozen=True)
class ServiceInfo:
    #: ``iss`` of the coordinator's tokens
    issuer: str
    #: ``aud`` of tokens meant for this node (the ``service`` of its challenges)
    audience: str


@dataclass(frozen=True)
class Project:
    name: str
    id: int
    public: bool = False
    #: the upstream a proxy project pulls through, else None
    proxy: str | None = None


@dataclass(frozen=True)
class Robot:
    """A robot account, ``robot$<project>+<name>`` or ``robot$<name>`` (system level)."""

    name: str
    secret_hash: str = field(repr=False)
    disabled: bool = False
    #: Unix time after which the robot is refused; None: never
    expires_at: float | None = None
    permissions: tuple[Permission, ...] = ()

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


@dataclass(frozen=True)
class Revocations:
    robots: frozenset[str] = frozenset()
    jtis: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Policy:
    version: int
    issued_at: float
    service: ServiceInfo
    #: JWKS-shaped public keys (``{"kty": "OKP", "crv": "Ed25519", "x", "kid"}``)
    keys: tuple[Mapping[str, str], ...] = ()
    projects: Mapping[str, Project] = field(default_factory=dict)
    robots: Mapping[str, Robot] = field(default_factory=dict)
    revoked: Revocations = Revocations()
    upstreams: tuple[Any, ...] = ()

    def keyset(self) -> KeySet:
        """The keys as a :class:`KeySet`; raises PolicyError for a malformed key."""
        try:
            return KeySet.from_jwks(list(self.keys))
        except ValueError as exc:
            raise PolicyError(f"policy keys: {exc}") from exc

    @property
    def public_projects(self) -> frozenset[str]:
        return frozenset(name for name, p in self.projects.items() if p.public)

    # ------------------------------------------------------------------ documents

    def to_doc(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "issued_at": self.issued_at,
            "service": {"issuer": self.service.issuer, "audience": self.service.audience},
            "keys": [dict(key) for key in self.keys],
            "projects": [
                {"name": p.name, "id": p.id, "public": p.public, "proxy": p.proxy}
                for p in self.projects.values()
            ],
            "robots": [
                {
                    "name": r.name,
                    "secret_hash": r.secret_hash,
                    "disabled": r.disabled,
                    "expires_at": r.expires_at,
                    "permissions": [
                        {
                            "namespace": p.namespace,
                            "resource": p.resource,
                            "actions": list(p.actions),
                        }
                        for p in r.permissions
                    ],
                }
                for r in self.robots.values()
            ],
            "revoked": {
                "robots": sorted(self.revoked.robots),
                "jtis": sorted(self.revoked.jtis),
            },
            "upstreams": list(self.upstreams),
        }

    @classmethod
    def from_doc(cls, doc: Any) -> Policy:
        """Raises PolicyError naming the first field that is missing or of the wrong type."""
        try:
            return _from_doc(doc)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, PolicyError):
                raise
            raise PolicyError(f"invalid policy snapshot: {type(exc).__name__}: {exc}") from exc

    def to_bytes(self) -> bytes:
        return codec.encode(self.to_doc(), compress=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> Policy:
        try:
            doc = codec.decode(data)
        except codec.CodecError as exc:
            raise PolicyError(f"invalid policy snapshot: {exc}") from exc
        return cls.from_doc(doc)


def _typed(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise PolicyError(f"policy field {what} has the wrong type")
    return value


def _from_doc(doc: Any) -> Policy:
    _typed(doc, dict, "(document)")
    service = _typed(doc["service"], dict, "service")
    projects = {}
    for entry in _typed(doc.get("projects", []), list, "projects"):
        name = _typed(entry["name"], str, "projects.name")
        proxy = entry.get("proxy")
        projects[name] = Project(
            name,
            _typed(entry["id"], int, "projects.id"),
            _typed(entry.get("public", False), bool, "projects.public"),
            None if proxy is None else _typed(proxy, str, "projects.proxy"),
        )
    robots = {}
    for entry in _typed(doc.get("robots", []), list, "robots"):
        name = _typed(entry["name"], str, "robots.name")
        expires = entry.get("expires_at")
        permissions = tuple(
            Permission(
                _typed(p["namespace"], str, "permissions.namespace"),
                _typed(p.get("resource", "repository"), str, "permissions.resource"),
                tuple(_typed(a, str, "permissions.actions") for a in p["actions"]),
            )
            for p in _typed(entry.get("permissions", []), list, "robots.permissions")
        )
        robots[name] = Robot(
            name,
            _typed(entry["secret_hash"], str, "robots.secret_hash"),
            _typed(entry.get("disabled", False), bool, "robots.disabled"),
            None if expires is None else float(_typed(expires, (int, float), "expires_at")),
            permissions,
        )
    revoked = _typed(doc.get("revoked", {}), dict, "revoked")
    keys = tuple(_typed(k, dict, "keys[]") for k in _typed(doc.get("keys", []), list, "keys"))
    policy = Policy(
        version=_typed(doc["version"], int, "version"),
        issued_at=float(_typed(doc["issued_at"], (int, float), "issued_at")),
        service=ServiceInfo(
            _typed(service["issuer"], str, "service.issuer"),
            _typed(service["audience"], str, "service.audience"),
        ),
        keys=keys,
        projects=projects,
        robots=robots,
        revoked=Revocations(
            frozenset(_typed(r, str, "revoked.robots") for r in revoked.get("robots", [])),
            frozenset(_typed(j, str, "revoked.jtis") for j in revoked.get("jtis", [])),
        ),
        upstreams=tuple(_typed(doc.get("upstreams", []), list, "upstreams")),
    )
    policy.keyset()  # the keys must parse
    return policy


def load_policy_file(path: Path) -> Policy:
    """A snapshot from a file: a codec frame, or the JSON document (first byte ``{``)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc}") from exc
    if data.lstrip()[:1] == b"{":
        try:
            return Policy.from_doc(json.loads(data))
        except json.JSONDecodeError as exc:
            raise PolicyError(f"policy file {path} is not valid JSON: {exc}") from exc
    return Policy.from_bytes(data)
