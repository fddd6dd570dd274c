"""Registry endpoints (Harbor's ``/registries``): upstream registries that proxy-cache
projects pull through and replication reads from or writes to.

A registry has Harbor's fields: ``name``, ``url``, ``type`` (Harbor's type names, mapped to
Portmesh adapter types by ``registry_types.HARBOR_TYPES``), a credential (``type`` basic, oauth or
secret; ``access_key``; ``access_secret``), ``insecure``, ``description`` and ``status``
(the outcome of the last ping by id: healthy, unhealthy or unknown).

The access secret is stored sealed with :mod:`portmesh.secrets` (the coordinator's key
file) and is never returned: :func:`to_json` shows it as ``*****``, as Harbor does. It is
opened only to build an adapter spec (:func:`spec_of`) for a ping or a node's policy
snapshot (:func:`policy_upstreams`).

``projects.registry_id`` refers to a registry: :func:`require_registry` checks it when a
project is created (Invalid, 400) and :func:`delete_registry` refuses to remove a registry a
project uses (PreconditionFailed, 412). Functions take a ``conn`` and run inside the
caller's transaction (``db.run``); none does network I/O (see ``registry_ping``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import ColumnElement, Connection, Row, delete, insert, select, update

from adapters.registry import AdapterSpec, validate_spec
from coordinator.db.filters import fetch_page
from coordinator.db.schema import ID_MAX, iso, now, projects, registries
from coordinator.errors import Conflict, Invalid, NotFound, PreconditionFailed
from coordinator.query import ListQuery
from coordinator.registry_types import HARBOR_TYPES
from portmesh.secrets import SecretError, SecretKeys

__all__ = [
    "CREDENTIAL_TYPES",
    "MASKED",
    "SECRETS_FILE",
    "check_registry",
    "create",
    "delete_registry",
    "get",
    "list_registries",
    "load_keys",
    "policy_upstreams",
    "require_registry",
    "set_status",
    "spec_of",
    "to_json",
    "update_registry",
]

log = logging.getLogger("portmesh.coordinator.registries")

CREDENTIAL_TYPES = ("basic", "oauth", "secret")
MASKED = "*****"
#: the key file (in the coordinator's data directory) that seals registry secrets
SECRETS_FILE = "secrets.key"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,254}\Z")
_DOCKER_HUB_SITES = frozenset({"hub.docker.com", "docker.io", "index.docker.io"})

_COLUMNS: Mapping[str, ColumnElement[Any]] = {
    "id": registries.c.id,
    "name": registries.c.name,
    "type": registries.c.type,
    "url": registries.c.url,
    "description": registries.c.description,
    "status": registries.c.status,
    "creation_time": registries.c.creation_time,
    "update_time": registries.c.update_time,
}


def load_keys(data: Path) -> SecretKeys:
    """The coordinator's secret keys (``<data>/secrets.key``, created on first use)."""
    data.mkdir(parents=True, exist_ok=True)
    return SecretKeys.load(data / SECRETS_FILE)


# ------------------------------------------------------------------------- checking


def _text(body: Mapping[str, Any], key: str, limit: int, default: str = "") -> str:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise Invalid(f"{key} must be a string")
    if len(value) > limit:
        raise Invalid(f"{key} is longer than {limit} characters")
    return value


def _check_type(value: object) -> str:
    if not isinstance(value, str) or value not in HARBOR_TYPES:
        known = ", ".join(HARBOR_TYPES)
        raise Invalid(f"unsupported registry type {value!r} (supported: {known})")
    return value


def _check_url(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid("url is required")
    url = value.strip().rstrip("/")
    if len(url) > 1024:
        raise Invalid("url is longer than 1024 characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise Invalid(f"invalid url {value!r}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise Invalid(f"invalid url {value!r}: it must be http(s)://host[:port]")
    return url


def _check_credential_type(value: object, has_key: bool) -> str:
    if value in (None, ""):
        return "basic" if has_key else ""
    if value not in CREDENTIAL_TYPES:
        raise Invalid(f"credential type must be one of {', '.join(CREDENTIAL_TYPES)}")
    return str(value)


def check_registry(body: Mapping[str, Any]) -> dict[str, Any]:
    """A ``Registry`` body (create) as column values with the secret still in clear text
    under ``access_secret``; Invalid for anything malformed or an unusable adapter spec."""
    name = body.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise Invalid(f"invalid registry name {name!r}")
    credential = body.get("credential") or {}
    if not isinstance(credential, Mapping):
        raise Invalid("credential must be an object")
    values = {
        "name": name,
        "url": _check_url(body.get("url")),
        "type": _check_type(body.get("type")),
        "access_key": _text(credential, "access_key", 1024),
        "access_secret": _text(credential, "access_secret", 4096),
        "insecure": _flag(body.get("insecure")),
        "description": _text(body, "description", 1024),
    }
    values["credential_type"] = _check_credential_type(
        credential.get("type"), bool(values["access_key"] or values["access_secret"])
    )
    _validate(values)
    return values


def _flag(value: object) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise Invalid("insecure must be true or false")
    return value


def _adapter_spec(values: Mapping[str, Any], secret: str) -> AdapterSpec:
    kind = HARBOR_TYPES[values["type"]]
    url = values["url"]
    if kind == "docker-hub" and httpx.URL(url).host in _DOCKER_HUB_SITES:
        url = ""  # Harbor names the web site; the adapter knows the registry's address
    return AdapterSpec(
        type=kind,
        url=url,
        username=values["access_key"] or None,
        password=secret or None,
        timeout=5.0,
    )


def _validate(values: Mapping[str, Any]) -> None:
    try:
        validate_spec(_adapter_spec(values, values["access_secret"]))
    except ValueError as exc:
        raise Invalid(f"registry {values['name']}: {exc}") from exc


# --------------------------------------------------------------------------- storage


def create(conn: Connection, values: Mapping[str, Any], keys: SecretKeys) -> int:
    """Insert a checked registry (see :func:`check_registry`), sealing its secret; its id."""
    if conn.execute(select(registries.c.id).where(registries.c.name == values["name"])).first():
        raise Conflict(f"the registry named {values['name']} already exists")
    stamp = now()
    row = dict(values)
    row["access_secret"] = keys.seal(values["access_secret"]) if values["access_secret"] else ""
    result = conn.execute(
        insert(registries).values(**row, status="unknown", creation_time=stamp, update_time=stamp)
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def get(conn: Connection, registry_id: int) -> Row[Any]:
    row = conn.execute(select(registries).where(registries.c.id == registry_id)).first()
    if row is None:
        raise NotFound(f"registry {registry_id} not found")
    return row


def require_registry(conn: Connection, registry_id: object) -> None:
    """Invalid unless ``registry_id`` names an existing registry (a proxy-cache project)."""
    if isinstance(registry_id, bool) or not isinstance(registry_id, int):
        raise Invalid("registry_id must be an integer")
    found = None
    if 0 < registry_id <= ID_MAX:
        query = select(registries.c.id).where(registries.c.id == registry_id)
        found = conn.execute(query).first()
    if found is None:
        raise Invalid(f"registry {registry_id} does not exist")


def list_registries(conn: Connection, query: ListQuery) -> tuple[int, list[dict[str, Any]]]:
    total, rows = fetch_page(conn, select(registries), query, _COLUMNS, registries.c.id)
    return total, [to_json(row) for row in rows]


def update_registry(
    conn: Connection, registry_id: int, body: Mapping[str, Any], keys: SecretKeys
) -> None:
    """Apply a ``RegistryUpdate`` (only the fields given change; an ``access_secret`` of
    ``*****`` keeps the stored one)."""
    row = get(conn, registry_id)
    current = {
        "name": row.name,
        "url": row.url,
        "type": row.type,
        "access_key": row.access_key,
        "insecure": row.insecure,
        "description": row.description,
        "credential_type": row.credential_type,
    }
    changes: dict[str, Any] = {}
    if body.get("name") is not None:
        if not isinstance(body["name"], str) or not _NAME.match(body["name"]):
            raise Invalid(f"invalid registry name {body['name']!r}")
        changes["name"] = body["name"]
    if body.get("url") is not None:
        changes["url"] = _check_url(body["url"])
    if body.get("description") is not None:
        changes["description"] = _text(body, "description", 1024)
    if body.get("insecure") is not None:
        changes["insecure"] = _flag(body["insecure"])
    if body.get("access_key") is not None:
        changes["access_key"] = _text(body, "access_key", 1024)
    secret = _open(keys, row.access_secret)
    new_secret = body.get("access_secret")
    if new_secret is not None and new_secret != MASKED:
        secret = _text(body, "access_secret", 4096)
        changes["access_secret"] = keys.seal(secret) if secret else ""
    merged = {**current, **changes}
    if body.get("credential_type") is not None or "access_key" in changes:
        has_key = bool(merged["access_key"] or secret)
        merged["credential_type"] = _check_credential_type(body.get("credential_type"), has_key)
        changes["credential_type"] = merged["credential_type"]
    _validate({**merged, "access_secret": secret})
    if "name" in changes and changes["name"] != row.name:
        taken = conn.execute(
            select(registries.c.id).where(registries.c.name == changes["name"])
        ).first()
        if taken:
            raise Conflict(f"the registry named {changes['name']} already exists")
    if changes.keys() & {"url", "access_key", "access_secret", "credential_type", "insecure"}:
        changes["status"] = "unknown"
    conn.execute(
        update(registries)
        .where(registries.c.id == registry_id)
        .values(**changes, update_time=now())
    )


def delete_registry(conn: Connection, registry_id: int) -> str:
    """Remove a registry no project uses (PreconditionFailed otherwise); its name."""
    row = get(conn, registry_id)
    users = conn.execute(
        select(projects.c.name).where(projects.c.registry_id == registry_id).limit(5)
    ).scalars()
    names = list(users)
    if names:
        raise PreconditionFailed(
            f"registry {row.name} is used by proxy-cache project(s) {', '.join(names)}"
        )
    conn.execute(delete(registries).where(registries.c.id == registry_id))
    return str(row.name)


def set_status(conn: Connection, registry_id: int, status: str) -> None:
    conn.execute(update(registries).where(registries.c.id == registry_id).values(status=status))


# ---------------------------------------------------------------------------- views


def _open(keys: SecretKeys, sealed: str) -> str:
    if not sealed:
        return ""
    try:
        return keys.open(sealed)
    except SecretError as exc:
        raise Invalid(f"the stored registry secret cannot be opened: {exc}") from exc


def spec_of(row: Row[Any] | Mapping[str, Any], keys: SecretKeys | None) -> AdapterSpec:
    """The adapter spec of a stored registry row (secret opened with ``keys``) or of checked
    values whose ``access_secret`` is in clear text (``keys`` None)."""
    values = dict(row._mapping) if isinstance(row, Row) else dict(row)
    secret = values["access_secret"]
    if keys is not None:
        secret = _open(keys, secret)
    return _adapter_spec(values, secret)


def to_json(row: Row[Any]) -> dict[str, Any]:
    """A registry as Harbor's ``Registry``; the secret is never shown."""
    return {
        "id": row.id,
        "name": row.name,
        "url": row.url,
        "type": row.type,
        "insecure": bool(row.insecure),
        "description": row.description,
        "status": row.status,
        "credential": {
            "type": row.credential_type,
            "access_key": row.access_key,
            "access_secret": MASKED if row.access_secret else "",
        },
        "creation_time": iso(row.creation_time),
        "update_time": iso(row.update_time),
    }


def policy_upstreams(conn: Connection, keys: SecretKeys) -> list[dict[str, Any]]:
    """The proxy-cache projects and their upstreams, for the nodes' policy snapshot: one
    mapping per project, shaped like a node's ``[[upstream]]`` table (``name`` and
    ``project`` are the project's name; ``type``, ``url``, ``username``, ``password``,
    ``insecure`` when set).
    The password is the opened secret: the snapshot travels to nodes over their
    authenticated channel."""
    rows = conn.execute(
        select(projects.c.name.label("project"), registries)
        .select_from(projects.join(registries, registries.c.id == projects.c.registry_id))
        .order_by(projects.c.name)
    ).all()
    upstreams = []
    for row in rows:
        try:
            spec = spec_of(row, keys)
        except Invalid as exc:
            log.error("project %s: its upstream is left out of the policy: %s", row.project, exc)
            continue
        entry: dict[str, Any] = {"name": row.project, "project": row.project, "type": spec.type}
        if spec.url:
            entry["url"] = spec.url
        if spec.username:
            entry["username"] = spec.username
        if spec.password:
            entry["password"] = spec.password
        if row.insecure:
            entry["insecure"] = True
        upstreams.append(entry)
    return upstreams
