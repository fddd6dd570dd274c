"""Secrets at rest (upstream passwords, cloud keys): sealed with a key file, opened again
with it.

``SecretBox`` (XSalsa20-Poly1305, pynacl) with a random nonce per value. A sealed value is
text: ``pm1:<key id>:<base64url of nonce + ciphertext>``, so a value says which key sealed
it. The key file holds one key per line (``<key id> <base64url key>``), oldest first;
:meth:`SecretKeys.rotate` appends a new one: values are sealed with the newest, and every
key in the file still opens the values it sealed. The file is created with mode 0600 on
first use (never widened afterwards; a group- or world-readable key file is refused).

Errors are :class:`SecretError`: an unknown key id, a value that does not authenticate
(tampered, or sealed with another key of the same id), a malformed value or key file.
Keys and plaintexts never appear in ``repr`` or messages.
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
from pathlib import Path

import nacl.exceptions
import nacl.secret
import nacl.utils

__all__ = ["PREFIX", "SecretError", "SecretKeys"]

#: the format version of a sealed value
PREFIX = "pm1"


class SecretError(Exception):
    """A value cannot be sealed or opened (see the module docstring)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SecretKeys:
    """The keys of one key file; :meth:`seal` with the newest, :meth:`open` with any."""

    def __init__(self, path: Path, keys: list[tuple[str, bytes]]) -> None:
        self.path = path
        self._keys = dict(keys)
        self._newest = keys[-1][0]

    def __repr__(self) -> str:
        return f"SecretKeys({str(self.path)!r}, ids={list(self._keys)})"

    @property
    def key_ids(self) -> list[str]:
        """The key ids, oldest first; the last one seals."""
        return list(self._keys)

    @classmethod
    def load(cls, path: Path) -> SecretKeys:
        """The keys of ``path``, creating it (mode 0600, one new key) when it is missing."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(_key_line())
                out.flush()
                os.fsync(out.fileno())
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretError(f"key file {path} is readable by others (mode {oct(mode & 0o777)})")
        keys: list[tuple[str, bytes]] = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                key_id, encoded = line.split()
                key = _unb64(encoded)
            except ValueError:
                raise SecretError(f"key file {path}: line {number} is not '<id> <key>'") from None
            if len(key) != nacl.secret.SecretBox.KEY_SIZE:
                raise SecretError(f"key file {path}: key {key_id!r} is not 32 bytes")
            keys.append((key_id, key))
        if not keys:
            raise SecretError(f"key file {path} holds no key")
        return cls(path, keys)

    def rotate(self) -> str:
        """Append a new key to the file and seal with it from now on; its id is returned."""
        line = _key_line()
        with open(self.path, "a") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())
        key_id, encoded = line.split()
        self._keys[key_id] = _unb64(encoded)
        self._newest = key_id
        return key_id

    def seal(self, text: str) -> str:
        """``text`` encrypted with the newest key, as ``pm1:<key id>:<data>``."""
        box = nacl.secret.SecretBox(self._keys[self._newest])
        sealed = box.encrypt(text.encode("utf-8"))
        return f"{PREFIX}:{self._newest}:{_b64(bytes(sealed))}"

    def open(self, sealed: str) -> str:
        """The text of a value :meth:`seal` produced, with whichever key sealed it."""
        version, _, rest = sealed.partition(":")
        key_id, _, data = rest.partition(":")
        if version != PREFIX or not key_id or not data:
            raise SecretError(f"not a sealed secret (expected {PREFIX}:<key id>:<data>)")
        key = self._keys.get(key_id)
        if key is None:
            raise SecretError(f"sealed with key {key_id!r}, which {self.path} does not hold")
        try:
            plain = nacl.secret.SecretBox(key).decrypt(_unb64(data))
        except (ValueError, nacl.exceptions.CryptoError):
            raise SecretError(
                f"sealed value does not open with key {key_id!r}: tampered or a wrong key"
            ) from None
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretError("sealed value is not text") from None


def _key_line() -> str:
    key = nacl.utils.random(nacl.secret.SecretBox.KEY_SIZE)
    return f"k{secrets.token_hex(4)} {_b64(key)}\n"
