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


async def test_auth_front_checks_and_forwards(tmp_path: Path) -> None:
    import httpx
    import trio

    from support.authfront import AuthFront, FrontRequest, FrontResponse, Provider
    from support.servers import run_docker_registry

    class OneToken(Provider):
        async def endpoint(self, req: FrontRequest) -> FrontResponse | None:
            return FrontResponse.json({"token": "t"}) if req.path == "/token" else None

        def authorize(self, req: FrontRequest) -> FrontResponse | None:
            if req.headers.get("authorization") == "Bearer t":
                return None
            return FrontResponse.json({"errors": [{"code": "UNAUTHORIZED"}]}, 401)

    async with run_docker_registry(tmp_path) as registry, trio.open_nursery() as nursery:
        front = AuthFront(registry.url, OneToken())
        url = await nursery.start(front.serve)
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/v2/")).status_code == 401
            token = (await http.get("/token")).json()["token"]
            answer = await http.get("/v2/_catalog", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200
            assert answer.json() == {"repositories": []}
            assert (await http.get("/elsewhere")).status_code == 404
        assert front.hits["/v2/_catalog"] == 1
        nursery.cancel_scope.cancel()
