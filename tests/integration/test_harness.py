"""The integration harness itself: missing programs and the images it builds."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from support.images import OCI_INDEX, read_blob, write_image, write_multiarch_image
from support.servers import require_binary


def test_missing_binary_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-registry-program"):
        require_binary("no-such-registry-program")


def test_missing_binary_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no-such-registry-program"):
        require_binary("no-such-registry-program")


def test_image_layout_is_consistent(tmp_path: Path) -> None:
    image = write_image(tmp_path, "v1", layer_sizes=(1000, 2000))
    manifest = json.loads(read_blob(tmp_path, image.manifest_digest))
    config = json.loads(read_blob(tmp_path, manifest["config"]["digest"]))
    diff_ids = [
        "sha256:"
        + hashlib.sha256(gzip.decompress(read_blob(tmp_path, layer["digest"]))).hexdigest()
        for layer in manifest["layers"]
    ]
    assert config["rootfs"]["diff_ids"] == diff_ids
    assert [layer["size"] for layer in manifest["layers"]] == [
        len(read_blob(tmp_path, layer.digest)) for layer in image.layers
    ]
    top = json.loads((tmp_path / "index.json").read_text())
    assert [entry["digest"] for entry in top["manifests"]] == [image.manifest_digest]


def test_multiarch_index_names_each_platform(tmp_path: Path) -> None:
    index = write_multiarch_image(tmp_path, "multi")
    doc = json.loads(read_blob(tmp_path, index.index_digest))
    assert doc["mediaType"] == OCI_INDEX
    platforms = [(m["platform"]["os"], m["platform"]["architecture"]) for m in doc["manifests"]]
    assert platforms == [("linux", "amd64"), ("linux", "arm64")]
    for entry, image in zip(doc["manifests"], index.images, strict=True):
        assert entry["digest"] == image.manifest_digest
        config = json.loads(read_blob(tmp_path, image.config.digest))
        assert (config["os"], config["architecture"]) == image.platform
