"""Password and secret hashing (argon2id, pynacl) for user passwords and robot secrets.

Hashes are the standard ``$argon2id$v=19$m=...,t=...,p=...$salt$hash`` strings, so a node
can verify a robot secret from a policy snapshot with the same function the coordinator
used. Verification costs about 50 ms by design: callers that verify often cache results.
"""

from __future__ import annotations

import nacl.exceptions
import nacl.pwhash

__all__ = ["hash_secret", "verify_secret"]

_OPS = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
_MEM = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE


def hash_secret(secret: str) -> str:
    """The argon2id hash string of ``secret``."""
    return nacl.pwhash.argon2id.str(secret.encode(), opslimit=_OPS, memlimit=_MEM).decode("ascii")


def verify_secret(hashed: str, secret: str) -> bool:
    """Whether ``secret`` matches ``hashed``; False (never an exception) for a malformed hash."""
    try:
        return bool(nacl.pwhash.verify(hashed.encode("ascii"), secret.encode()))
    except (nacl.exceptions.InvalidkeyError, nacl.exceptions.CryptoError, ValueError):
        return False
