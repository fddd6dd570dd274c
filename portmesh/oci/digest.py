"""Digests: parsing, validation and hashers for sha256, sha512 and blake3.

A digest string is ``algorithm ":" encoded``; the encoded part is lowercase hex of the
algorithm's length. Anything else raises ``OCIError("DIGEST_INVALID")``; a well-formed
digest of an algorithm Portmesh does not implement raises ``OCIError("UNSUPPORTED")``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

import blake3

from portmesh.oci.errors import OCIError

__all__ = ["ALGORITHMS", "Digest", "Hasher", "hasher", "parse_digest"]

#: algorithm -> length of the hex encoding
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128, "blake3": 64}

# The image-spec's digest grammar: algorithm-component(+algorithm-separator ...) ":" encoded
_GRAMMAR = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+\Z")
_HEX = re.compile(r"^[a-f0-9]+\Z")


class Hasher(Protocol):
    def update(self, data: bytes, /) -> object: ...
    def hexdigest(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    encoded: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"

    def hasher(self) -> Hasher:
        return hasher(self.algorithm)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        h = hasher(algorithm)
        h.update(data)
        return cls(algorithm, h.hexdigest())


def hasher(algorithm: str = "sha256") -> Hasher:
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm == "sha512":
        return hashlib.sha512()
    if algorithm == "blake3":
        return blake3.blake3(max_threads=1)
    raise OCIError("UNSUPPORTED", f"digest algorithm {algorithm!r} is not supported")


def parse_digest(text: str) -> Digest:
    """Parse and validate ``text``; raises OCIError DIGEST_INVALID or UNSUPPORTED."""
    if not text or len(text) > 256 or not _GRAMMAR.match(text):
        raise OCIError("DIGEST_INVALID", "invalid digest", {"digest": text[:256]})
    algorithm, encoded = text.split(":", 1)
    length = ALGORITHMS.get(algorithm)
    if length is None:
        raise OCIError(
            "UNSUPPORTED", f"digest algorithm {algorithm!r} is not supported", {"digest": text}
        )
    if len(encoded) != length or not _HEX.match(encoded):
        raise OCIError("DIGEST_INVALID", "invalid digest", {"digest": text})
    return Digest(algorithm, encoded)
