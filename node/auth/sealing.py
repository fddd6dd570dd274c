"""The policy snapshot sealed at rest, with the key file ``<data>/auth/secrets.key``.

A snapshot carries the credentials of the node's proxy upstreams, so the node never
writes it to its metadata store in the clear: the stored value is the snapshot's bytes
sealed by :class:`portmesh.secrets.SecretKeys` (``pm1:<key id>:<data>``, text). A stored
value that is not sealed (an older node wrote it) still opens; the next write seals it.

Every worker process of a node uses the same key file: the first to start creates it
atomically (written aside with mode 0600, then hard-linked into place, which fails if
another process won), the others read it. A sealed value the key file cannot open (the
file was replaced, or belongs to another node) raises :class:`SealError`, which names
the file: the node refuses to start rather than serve without its upstream credentials.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from pathlib import Path

from portmesh.secrets import PREFIX, SecretError, SecretKeys

__all__ = ["KEY_FILE", "SealError", "SnapshotSeal"]

#: the key file's name in the node's ``<data>/auth`` directory
KEY_FILE = "secrets.key"
_SEALED = (PREFIX + ":").encode("ascii")


class SealError(Exception):
    """A stored snapshot cannot be opened with the node's key file, or that file is
    unusable. The message names the file; it never contains key material."""


class SnapshotSeal:
    """Seals and opens stored snapshots with the keys of one key file."""

    def __init__(self, keys: SecretKeys) -> None:
        self._keys = keys

    def __repr__(self) -> str:
        return f"SnapshotSeal({str(self.path)!r})"

    @property
    def path(self) -> Path:
        return self._keys.path

    @classmethod
    def load(cls, directory: Path) -> SnapshotSeal:
        """The seal of ``directory/secrets.key``, creating the file (mode 0600, one key)
        when it is missing. Raises SealError when the file exists but is unusable."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / KEY_FILE
        if not path.exists():
            _create_key_file(directory, path)
        try:
            return cls(SecretKeys.load(path))
        except (SecretError, OSError) as exc:
            raise SealError(f"cannot use the node's key file {path}: {exc}") from exc

    @staticmethod
    def is_sealed(stored: bytes) -> bool:
        """True for a value :meth:`seal` wrote (an older unsealed snapshot is False)."""
        return stored.startswith(_SEALED)

    def seal(self, data: bytes) -> bytes:
        """``data`` sealed with the newest key of the file."""
        text = base64.b64encode(data).decode("ascii")
        return self._keys.seal(text).encode("ascii")

    def open(self, stored: bytes) -> bytes:
        """The bytes :meth:`seal` sealed. Raises SealError (naming the key file) when the
        value is not sealed, was sealed with a key the file lacks, or does not verify."""
        if not self.is_sealed(stored):
            raise SealError("the stored value is not sealed")
        try:
            text = self._keys.open(stored.decode("ascii"))
            return base64.b64decode(text, validate=True)
        except (SecretError, UnicodeDecodeError, ValueError) as exc:
            raise SealError(
                f"the stored policy snapshot does not open with the node's key file "
                f"{self.path} ({exc}); restore the key file this node sealed it with, "
                "or remove the node's metadata to start over from its policy source"
            ) from exc


def _create_key_file(directory: Path, path: Path) -> None:
    temp = directory / f".{KEY_FILE}.{secrets.token_hex(6)}"
    try:
        SecretKeys.load(temp)  # creates it, mode 0600, with one new key
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    except (SecretError, OSError) as exc:
        raise SealError(f"cannot create the node's key file {path}: {exc}") from exc
    finally:
        temp.unlink(missing_ok=True)
