"""Test images built by Python alone, written as OCI image layout directories.

Nothing is downloaded: every layer is a tar+gzip archive of random bytes made here, so two
images never share a layer by accident. The layout is what ``skopeo copy oci:DIR:TAG``
reads and writes::

    DIR/
      oci-layout                  {"imageLayoutVersion": "1.0.0"}
      index.json                  one descriptor per tag (annotation ref.name = TAG)
      blobs/sha256/<hex>          layers, configs, manifests and indexes

Several images may share one layout directory; each write adds (or replaces) its tag.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_PLATFORMS",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER_GZIP",
    "OCI_MANIFEST",
    "Descriptor",
    "Image",
    "ImageIndex",
    "MiB",
    "layout_tag_digest",
    "read_blob",
    "sha256_digest",
    "write_image",
    "write_multiarch_image",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
DEFAULT_PLATFORMS: tuple[tuple[str, str], ...] = (("linux", "amd64"), ("linux", "arm64"))
MiB = 1024 * 1024


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor (media type, digest, size)."""

    media_type: str
    digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class Image:
    """One single-platform image written to a layout.

    ``manifest_digest`` is the digest every registry must report for it after a
    byte-preserving copy (``skopeo copy --preserve-digests``).
    """

    layout: Path
    tag: str
    manifest: bytes
    manifest_digest: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    platform: tuple[str, str]

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(OCI_MANIFEST, self.manifest_digest, len(self.manifest))

    @property
    def blob_digests(self) -> tuple[str, ...]:
        """The config and layer digests (every blob the manifest names)."""
        return (self.config.digest, *(layer.digest for layer in self.layers))


@dataclass(frozen=True)
class ImageIndex:
    """A multi-platform image: an OCI index over one :class:`Image` per platform."""

    layout: Path
    tag: str
    index: bytes
    index_digest: str
    images: tuple[Image, ...]

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(OCI_INDEX, self.index_digest, len(self.index))

    def for_platform(self, os_name: str, arch: str) -> Image:
        for image in self.images:
            if image.platform == (os_name, arch):
                return image
        raise KeyError(f"no image for {os_name}/{arch}")


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def _put_blob(layout: Path, data: bytes) -> str:
    digest = sha256_digest(data)
    path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    return digest


def read_blob(layout: Path, digest: str) -> bytes:
    """The bytes of blob ``digest`` in ``layout``; checks them against the digest.

    Raises:
        FileNotFoundError: the layout has no such blob.
        AssertionError: the stored bytes do not hash to ``digest``.
    """
    algorithm, hex_part = digest.split(":", 1)
    data = (layout / "blobs" / algorithm / hex_part).read_bytes()
    assert hashlib.new(algorithm, data).hexdigest() == hex_part, f"corrupt blob {digest}"
    return data


def _random_layer(size: int, name: str) -> tuple[bytes, str]:
    """A tar+gzip layer holding one file of ``size`` random bytes.

    Returns (compressed bytes, diff_id = digest of the uncompressed tar).
    """
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"data/{name}")
        info.size = size
        info.mode = 0o644
        info.mtime = 0
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    uncompressed = raw.getvalue()
    compressed = gzip.compress(uncompressed, compresslevel=1, mtime=0)
    return compressed, sha256_digest(uncompressed)


def _write_index_json(layout: Path, tag: str, descriptor: Descriptor) -> None:
    """Add ``tag`` -> ``descriptor`` to ``layout``'s index.json (replacing that tag)."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index_path = layout / "index.json"
    if index_path.exists():
        top = json.loads(index_path.read_text())
    else:
        top = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    top["manifests"] = [
        entry for entry in top["manifests"] if entry.get("annotations", {}).get(REF_NAME) != tag
    ]
    top["manifests"].append({**descriptor.to_json(), "annotations": {REF_NAME: tag}})
    index_path.write_text(json.dumps(top, indent=2))


def _build_image(
    layout: Path,
    tag: str,
    layer_sizes: tuple[int, ...],
    platform: tuple[str, str],
) -> Image:
    """Write the blobs of one image (layers, config, manifest); index.json is untouched."""
    layers: list[Descriptor] = []
    diff_ids: list[str] = []
    for number, size in enumerate(layer_sizes):
        data, diff_id = _random_layer(size, f"layer{number}.bin")
        layers.append(Descriptor(OCI_LAYER_GZIP, _put_blob(layout, data), len(data)))
        diff_ids.append(diff_id)
    os_name, arch = platform
    config_doc = {
        "created": "2024-01-01T00:00:00Z",
        "architecture": arch,
        "os": os_name,
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "portmesh tests"}]
        * len(layers),
    }
    config_bytes = _canonical(config_doc)
    config = Descriptor(OCI_CONFIG, _put_blob(layout, config_bytes), len(config_bytes))
    manifest_doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
        "annotations": {"org.opencontainers.image.title": tag},
    }
    manifest = _canonical(manifest_doc)
    manifest_digest = _put_blob(layout, manifest)
    return Image(layout, tag, manifest, manifest_digest, config, tuple(layers), platform)


def write_image(
    layout: Path,
    tag: str = "latest",
    layer_sizes: tuple[int, ...] = (1 * MiB, 2 * MiB),
    platform: tuple[str, str] = ("linux", "amd64"),
) -> Image:
    """Write a single-platform image with one random layer per entry of ``layer_sizes``
    (bytes of file content; the gzip of random bytes is a little larger) and tag it."""
    image = _build_image(layout, tag, layer_sizes, platform)
    _write_index_json(layout, tag, image.descriptor)
    return image


def write_multiarch_image(
    layout: Path,
    tag: str = "latest",
    layer_sizes: tuple[int, ...] = (1 * MiB,),
    platforms: tuple[tuple[str, str], ...] = DEFAULT_PLATFORMS,
) -> ImageIndex:
    """Write one image per platform plus an OCI index over them, tagged ``tag``."""
    images = tuple(_build_image(layout, tag, layer_sizes, platform) for platform in platforms)
    index_doc = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                **image.descriptor.to_json(),
                "platform": {"os": image.platform[0], "architecture": image.platform[1]},
            }
            for image in images
        ],
    }
    index = _canonical(index_doc)
    index_digest = _put_blob(layout, index)
    result = ImageIndex(layout, tag, index, index_digest, images)
    _write_index_json(layout, tag, result.descriptor)
    return result


def layout_tag_digest(layout: Path, tag: str) -> str:
    """The digest that ``layout``'s index.json gives for ``tag``.

    Raises:
        KeyError: the layout has no such tag.
    """
    top = json.loads((layout / "index.json").read_text())
    for entry in top["manifests"]:
        if entry.get("annotations", {}).get(REF_NAME) == tag:
            return str(entry["digest"])
    raise KeyError(f"{layout} has no tag {tag!r}")
