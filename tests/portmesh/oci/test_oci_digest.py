"""Digest parsing, validation and hashing."""

from __future__ import annotations

import hashlib

import blake3
import pytest

from portmesh.oci.digest import Digest, hasher, parse_digest
from portmesh.oci.errors import OCIError

SHA256 = hashlib.sha256(b"x").hexdigest()
SHA512 = hashlib.sha512(b"x").hexdigest()
BLAKE3 = blake3.blake3(b"x").hexdigest()


@pytest.mark.parametrize(
    ("text", "algorithm", "encoded"),
    [
        (f"sha256:{SHA256}", "sha256", SHA256),
        (f"sha512:{SHA512}", "sha512", SHA512),
        (f"blake3:{BLAKE3}", "blake3", BLAKE3),
    ],
)
def test_valid_digests(text: str, algorithm: str, encoded: str) -> None:
    digest = parse_digest(text)
    assert digest == Digest(algorithm, encoded)
    assert str(digest) == text


@pytest.mark.parametrize(
    "text",
    [
        f"sha256:{SHA256[:-1]}",  # too short
        f"sha256:{SHA256}0",  # too long
        f"sha512:{SHA256}",  # sha256 length under sha512
        f"sha256:{SHA256.upper()}",  # uppercase hex
        f"sha256:{SHA256[:-1]}g",  # not hex
        "garbage",
        "",
        ":abc",
        "sha256:",
        f"SHA256:{SHA256}",
        f"sha256:{SHA256}:extra",
        f"sha256:{SHA256}\n",
        "a" * 300,
    ],
)
def test_invalid_digests(text: str) -> None:
    with pytest.raises(OCIError) as info:
        parse_digest(text)
    assert info.value.code == "DIGEST_INVALID"
    assert info.value.status == 400


@pytest.mark.parametrize("text", [f"md5:{'0' * 32}", f"sha384:{'0' * 96}", "multihash+base58:QmRZ"])
def test_well_formed_unknown_algorithm_is_unsupported(text: str) -> None:
    with pytest.raises(OCIError) as info:
        parse_digest(text)
    assert info.value.code == "UNSUPPORTED"


@pytest.mark.parametrize(
    ("algorithm", "expected"), [("sha256", SHA256), ("sha512", SHA512), ("blake3", BLAKE3)]
)
def test_digest_of_and_hashers(algorithm: str, expected: str) -> None:
    assert Digest.of(b"x", algorithm) == Digest(algorithm, expected)
    h = hasher(algorithm)
    h.update(b"")
    h.update(b"x")
    assert h.hexdigest() == expected
    assert Digest(algorithm, expected).hasher().hexdigest() == Digest.of(b"", algorithm).encoded


def test_default_algorithm_is_sha256() -> None:
    assert Digest.of(b"x") == Digest("sha256", SHA256)


def test_unknown_hasher_is_unsupported() -> None:
    with pytest.raises(OCIError) as info:
        hasher("md5")
    assert info.value.code == "UNSUPPORTED"
