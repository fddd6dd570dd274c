"""The msgpack frame: round trips, the version byte, and damage of every kind."""

from __future__ import annotations

import pytest
import zstandard

import portmesh.codec as codec_module
from portmesh.codec import SCHEMA_VERSION, CodecError, decode, encode

DOC = {"version": 7, "names": ["a", "b"], "blob": b"\x00\xff", "nested": {"x": [1.5, None]}}


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(compress: bool) -> None:
    frame = encode(DOC, compress=compress)
    assert frame[0] == SCHEMA_VERSION
    assert frame[1] == (1 if compress else 0)
    assert decode(frame) == DOC


def test_compression_shrinks_repetitive_documents() -> None:
    doc = {"robots": [{"name": f"robot$team+{i}", "permissions": ["pull"]} for i in range(500)]}
    assert len(encode(doc, compress=True)) * 4 < len(encode(doc))
    assert decode(encode(doc, compress=True)) == doc


def test_wrong_version_is_refused_clearly() -> None:
    frame = encode(DOC, version=2)
    with pytest.raises(CodecError, match="schema version 2"):
        decode(frame)
    assert decode(frame, version=2) == DOC
    with pytest.raises(ValueError):
        encode(DOC, version=0)


@pytest.mark.parametrize(
    "damage",
    [
        lambda f: f[:2],  # no payload
        lambda f: b"",
        lambda f: f[:-3],  # truncated compressed frame
        lambda f: f[:2] + b"\x00" * 4 + f[6:],  # corrupt zstd header
        lambda f: bytes((f[0], 0x81)) + f[2:],  # unknown flag
        lambda f: bytes((f[0], 0)) + f[2:],  # zstd bytes read as msgpack
    ],
)
def test_corrupt_compressed_frames(damage: object) -> None:
    frame = encode(DOC, compress=True)
    with pytest.raises(CodecError):
        decode(damage(frame))  # type: ignore[operator]


def test_corrupt_plain_payloads() -> None:
    frame = encode(DOC)
    for bad in (frame[:-1], frame + b"\x01", bytes((SCHEMA_VERSION, 0, 0xC1))):
        with pytest.raises(CodecError):
            decode(bad)


def test_decompression_bomb_is_refused() -> None:
    payload = zstandard.ZstdCompressor().compress(b"\x00" * (2 * 1024 * 1024))
    with pytest.raises(CodecError, match="size"):
        decode(bytes((SCHEMA_VERSION, 1)) + payload, max_size=1024 * 1024)
    # a frame that does not declare its size is refused too
    streamed = zstandard.ZstdCompressor(write_content_size=False).compress(b"\x90")
    with pytest.raises(CodecError):
        decode(bytes((SCHEMA_VERSION, 1)) + streamed)


def test_unencodable_object() -> None:
    with pytest.raises(CodecError):
        encode({"x": object()})


def test_all_names_are_exported() -> None:
    for name in codec_module.__all__:
        assert hasattr(codec_module, name)
