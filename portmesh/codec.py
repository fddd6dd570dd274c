"""Binary framing for documents that travel between coordinator and nodes or sit on disk.

A frame is ``version (1 byte) | flags (1 byte) | payload``: ``version`` is the schema
version of the document inside (a reader refuses versions it does not know), bit 0 of
``flags`` says the payload is zstd-compressed, and the payload is msgpack. Decoding never
returns a partly read document: any damage raises :class:`CodecError`.
"""

from __future__ import annotations

from typing import Any

import msgpack
import zstandard

__all__ = ["MAX_DECODED", "SCHEMA_VERSION", "CodecError", "decode", "encode"]

SCHEMA_VERSION = 1
#: the largest payload ``decode`` inflates (a guard against decompression bombs)
MAX_DECODED = 256 * 1024 * 1024
_ZSTD = 0x01
_ZSTD_LEVEL = 3


class CodecError(ValueError):
    """The data is not a frame this reader can decode (version, flags or content)."""


def encode(obj: Any, *, compress: bool = False, version: int = SCHEMA_VERSION) -> bytes:
    """``obj`` (msgpack-serialisable) as a frame; ``compress`` uses zstd level 3."""
    if not 0 < version < 256:
        raise ValueError("version must be 1..255")
    try:
        payload = msgpack.packb(obj, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode: {exc}") from exc
    flags = 0
    if compress:
        payload = zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(payload)
        flags |= _ZSTD
    return bytes((version, flags)) + payload


def decode(data: bytes, *, version: int = SCHEMA_VERSION, max_size: int = MAX_DECODED) -> Any:
    """The object in frame ``data``; :class:`CodecError` for another schema version,
    unknown flags, a corrupt or truncated payload, or one inflating past ``max_size``."""
    if len(data) < 3:
        raise CodecError("frame too short")
    if data[0] != version:
        raise CodecError(f"schema version {data[0]} is not the supported version {version}")
    flags = data[1]
    if flags & ~_ZSTD:
        raise CodecError(f"unknown frame flags {flags:#04x}")
    payload = bytes(data[2:])
    if flags & _ZSTD:
        try:
            # ``encode`` always records the content size; a frame without one is refused
            size = zstandard.frame_content_size(payload)
            if size < 0 or size > max_size:
                raise CodecError("compressed payload of unknown or excessive size")
            payload = zstandard.ZstdDecompressor().decompress(payload)
        except zstandard.ZstdError as exc:
            raise CodecError(f"corrupt compressed payload: {exc}") from exc
    try:
        return msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError) as exc:
        raise CodecError(f"corrupt msgpack payload ({type(exc).__name__})") from exc
