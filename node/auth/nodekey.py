"""The node's own token-signing key, kept in ``<data>/auth/node-key``.

Every worker process of a node signs with the same key: the first to start creates the
file atomically (written aside, then hard-linked into place, which fails if another won),
the others read it. The file holds the kid and the 32-byte seed, and is mode 0600.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path

from portmesh.tokens import SigningKey

__all__ = ["load_node_key"]


def load_node_key(directory: Path) -> SigningKey:
    """The node key under ``directory`` (created on first use). Raises OSError or
    ValueError when the file exists but cannot be read."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "node-key"
    if not path.exists():
        key = SigningKey.generate()
        temp = directory / f".node-key.{secrets.token_hex(6)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as file:
                json.dump({"kid": key.kid, "seed": key.seed.hex()}, file)
                file.flush()
                os.fsync(file.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(temp, path)
        finally:
            temp.unlink(missing_ok=True)
    doc = json.loads(path.read_text())
    return SigningKey.from_seed(bytes.fromhex(doc["seed"]), doc["kid"])
