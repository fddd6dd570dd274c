"""The node's identity with its coordinator: node id, name, service, and key pair.

On first start with a join token the node generates an Ed25519 key pair
(``<data>/sync/node-key``, mode 0600), registers with the coordinator and writes what it
got to ``<data>/sync/identity.json`` (mode 0600, written aside and renamed). Later starts
read both files and need no token.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import httpx

from node.auth.nodekey import load_node_key
from portmesh.tokens import SigningKey

__all__ = ["Identity", "JoinError", "ensure_identity", "load_identity", "sync_dir"]

REGISTER_PATH = "/api/v2.0/nodes/register"
IDENTITY_FILE = "identity.json"


class JoinError(Exception):
    """The node has no identity and could not get one; the message says why."""


@dataclass(frozen=True)
class Identity:
    node_id: int
    name: str
    #: the audience of the tokens issued for this node
    service: str
    coordinator_url: str


def sync_dir(data: Path) -> Path:
    return data / "sync"


def load_identity(directory: Path) -> Identity | None:
    """The stored identity, or None before the first join. Raises JoinError for a
    damaged file."""
    path = directory / IDENTITY_FILE
    try:
        doc = json.loads(path.read_text())
        return Identity(
            int(doc["node_id"]), str(doc["name"]), str(doc["service"]), str(doc["coordinator"])
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise JoinError(f"the node identity {path} is unreadable: {exc}") from exc


def _save(directory: Path, identity: Identity) -> None:
    doc = {
        "node_id": identity.node_id,
        "name": identity.name,
        "service": identity.service,
        "coordinator": identity.coordinator_url,
    }
    temp = directory / f".{IDENTITY_FILE}.{secrets.token_hex(6)}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(doc, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, directory / IDENTITY_FILE)
    finally:
        temp.unlink(missing_ok=True)


async def ensure_identity(
    http: httpx.AsyncClient,
    coordinator_url: str,
    *,
    data: Path,
    join_token: str = "",
    name: str = "",
    url: str = "",
) -> tuple[Identity, SigningKey]:
    """The node's identity and key, joining the coordinator with ``join_token`` when
    there is none yet. Raises JoinError when it cannot."""
    directory = sync_dir(data)
    directory.mkdir(parents=True, exist_ok=True)
    key = load_node_key(directory)
    existing = load_identity(directory)
    if existing is not None:
        return existing, key
    if not join_token:
        raise JoinError("this node has not joined a coordinator yet: give it a join token")
    if not name:
        raise JoinError("a node needs a name to join")
    base = coordinator_url.rstrip("/")
    body = {"join_token": join_token, "name": name, "public_key": key.public_jwk(), "url": url}
    try:
        response = await http.post(base + REGISTER_PATH, json=body)
    except httpx.HTTPError as exc:
        raise JoinError(f"cannot reach the coordinator at {base}: {exc}") from exc
    if response.status_code != 201:
        raise JoinError(f"the coordinator refused to register this node: {_message(response)}")
    try:
        doc = response.json()
        identity = Identity(int(doc["id"]), str(doc["name"]), str(doc["service"]), base)
    except (ValueError, KeyError, TypeError) as exc:
        raise JoinError("the coordinator's registration answer is malformed") from exc
    _save(directory, identity)
    return identity, key


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["errors"][0]["message"])
    except (ValueError, KeyError, IndexError, TypeError):
        return f"HTTP {response.status_code}"
