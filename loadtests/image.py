"""Generate an OCI image layout with one large random layer, ready for ``skopeo copy oci:DIR:TAG``.

The layer is a tar archive holding one file of random bytes, wrapped in gzip made of stored
(level 0) deflate blocks: it is real gzip, so skopeo uploads it as is instead of compressing
it, and building it costs little more than producing the random bytes. Every call makes
unique content, so a push of it is always a real upload.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Layout:
    """An OCI image layout directory and the facts a benchmark needs about it."""

    path: Path
    tag: str
    layer_digest: str
    layer_size: int
    manifest_digest: str

    @property
    def skopeo_ref(self) -> str:
        """The ``oci:DIR:TAG`` reference skopeo copies from."""
        return f"oci:{self.path}:{self.tag}"


class _BlobFile:
    """Writes ``blobs/sha256/<hex>`` through a temp name, hashing as it goes."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._tmp = root / "blobs" / "sha256" / ".partial"
        self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed in finish()
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._hash.update(data)
        self._file.write(data)
        self.size += len(data)

    def finish(self) -> str:
        """Close, rename to the content address and return the digest."""
        self._file.close()
        hexd = self._hash.hexdigest()
        self._tmp.rename(self._root / "blobs" / "sha256" / hexd)
        return f"sha256:{hexd}"


def _write_json_blob(root: Path, doc: dict[str, object]) -> tuple[str, int]:
    blob = _BlobFile(root)
    blob.write(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode())
    size = blob.size
    return blob.finish(), size


def make_layout(path: Path, size_bytes: int, tag: str = "v1") -> Layout:
    """Create an OCI layout at ``path`` (must not exist) whose single layer holds
    ``size_bytes`` of fresh random data; return its description.
    """
    (path / "blobs" / "sha256").mkdir(parents=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    layer = _BlobFile(path)
    gz = zlib.compressobj(level=0, wbits=31)
    diff_id = hashlib.sha256()

    def put(raw: bytes) -> None:
        diff_id.update(raw)
        out = gz.compress(raw)
        if out:
            layer.write(out)

    info = tarfile.TarInfo("random.bin")
    info.size = size_bytes
    info.mode = 0o644
    info.mtime = 0
    put(info.tobuf(format=tarfile.PAX_FORMAT))
    left = size_bytes
    while left:
        n = min(left, _CHUNK)
        put(os.urandom(n))
        left -= n
    pad = (-size_bytes) % tarfile.BLOCKSIZE
    put(b"\0" * (pad + 2 * tarfile.BLOCKSIZE))
    layer.write(gz.flush())
    layer_size = layer.size
    layer_digest = layer.finish()

    config_digest, config_size = _write_json_blob(
        path,
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id.hexdigest()}"]},
        },
    )
    manifest_digest, manifest_size = _write_json_blob(
        path,
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {
                "mediaType": CONFIG_MEDIA_TYPE,
                "digest": config_digest,
                "size": config_size,
            },
            "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": layer_digest, "size": layer_size}],
        },
    )
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": MANIFEST_MEDIA_TYPE,
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (path / "index.json").write_text(json.dumps(index))
    return Layout(path, tag, layer_digest, layer_size, manifest_digest)
