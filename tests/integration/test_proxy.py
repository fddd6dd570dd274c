"""Pull-through with real registries: docker-registry upstream, skopeo and podman clients.

A node proxies a docker-registry through a proxy project (``/v2/hub/<repo>``) and through
containerd's mirror mode (``?ns=docker.io``); a second node chains to the first.
"""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from support.clients import digest_of, skopeo_copy, skopeo_inspect_raw
from support.images import MiB, layout_tag_digest, write_image, write_multiarch_image
from support.servers import Server, podman_env, run_docker_registry, run_node, run_tool
from support.tls import make_tls

pytestmark = pytest.mark.integration

OCI_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def write_config(path: Path, upstream: Server, **settings: object) -> Path:
    lines = ["[[upstream]]", 'name = "hub"', f'url = "{upstream.url}"', 'project = "hub"']
    lines.append('namespaces = ["docker.io"]')
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


async def push(skopeo: str, layout: Path, tag: str, server: Server, repo: str) -> None:
    await skopeo_copy(
        skopeo, f"oci:{layout}:{tag}", f"docker://{server.address}/{repo}:{tag}", all_images=True
    )


async def test_proxy_project_pull_keeps_digests(
    docker_registry: Server, skopeo: str, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "src", "v1", layer_sizes=(2 * MiB,))
    index = write_multiarch_image(tmp_path / "multi", "v2")
    await push(skopeo, image.layout, "v1", docker_registry, "team/app")
    await push(skopeo, index.layout, "v2", docker_registry, "team/multi")
    config = write_config(tmp_path / "node.toml", docker_registry)
    async with run_node(tmp_path / "node", "--config", str(config)) as node:
        for repo, tag, expected in (
            ("team/app", "v1", image.manifest_digest),
            ("team/multi", "v2", index.index_digest),
        ):
            out = tmp_path / f"out-{tag}"
            await skopeo_copy(
                skopeo,
                f"docker://{node.address}/hub/{repo}:{tag}",
                f"oci:{out}:{tag}",
                all_images=True,
            )
            assert layout_tag_digest(out, tag) == expected
            through = await skopeo_inspect_raw(skopeo, f"docker://{node.address}/hub/{repo}:{tag}")
            direct = await skopeo_inspect_raw(
                skopeo, f"docker://{docker_registry.address}/{repo}:{tag}"
            )
            assert through == direct, "the index is cached whole, byte for byte"
        async with httpx.AsyncClient(base_url=node.url) as client:
            repos = (await client.get("/v2/_catalog")).json()["repositories"]
            assert "hub/team/app" in repos and "hub/team/multi" in repos
            tags = (await client.get("/v2/hub/team/app/tags/list")).json()
            assert tags == {"name": "hub/team/app", "tags": ["v1"]}
            denied = await client.post("/v2/hub/team/app/blobs/uploads/")
            assert denied.status_code == 403
            assert denied.json()["errors"][0]["code"] == "DENIED"


async def test_podman_pulls_through_the_node(
    docker_registry: Server, skopeo: str, podman: str, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "src", "v1", layer_sizes=(1 * MiB,))
    await push(skopeo, image.layout, "v1", docker_registry, "team/app")
    config = write_config(tmp_path / "node.toml", docker_registry)
    async with run_node(tmp_path / "node", "--config", str(config)) as node:
        env = podman_env(tmp_path / "podman", [node.address])
        ref = f"{node.address}/hub/team/app:v1"
        await run_tool([podman, "pull", "--quiet", ref], env=env)
        out = await run_tool(
            [podman, "image", "inspect", "--format", "{{json .RepoDigests}}", ref], env=env
        )
        assert image.manifest_digest in out.decode()


async def test_mirror_mode_maps_ns_to_the_upstream(
    docker_registry: Server, skopeo: str, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "src", "v1", layer_sizes=(1 * MiB,))
    await push(skopeo, image.layout, "v1", docker_registry, "library/alpine")
    config = write_config(tmp_path / "node.toml", docker_registry, library_prefix=True)
    async with (
        run_node(tmp_path / "node", "--config", str(config)) as node,
        httpx.AsyncClient(base_url=node.url) as client,
    ):
        # containerd asks for "alpine" with ?ns=docker.io: Docker Hub's library/ applies.
        r = await client.get(
            "/v2/alpine/manifests/v1",
            params={"ns": "docker.io"},
            headers={"Accept": OCI_ACCEPT},
        )
        assert r.status_code == 200, r.text
        assert r.headers["Docker-Content-Digest"] == image.manifest_digest
        for digest in image.blob_digests:
            blob = await client.get(f"/v2/alpine/blobs/{digest}", params={"ns": "docker.io"})
            assert blob.status_code == 200 and digest_of(blob.content) == digest
        # The same cache entry serves the proxy-project name without asking upstream
        # (once the fill that served the last byte has also committed the blob).
        states = []
        for _ in range(100):
            r = await client.head(f"/v2/hub/library/alpine/blobs/{image.layers[0].digest}")
            states.append(r.headers["X-Portmesh-Cache"])
            if states[-1] == "hit":
                break
            await trio.sleep(0.05)
        assert states[-1] == "hit", states
        # Without ns and without a default upstream, the name is a local one.
        r = await client.get("/v2/alpine/manifests/v1", headers={"Accept": OCI_ACCEPT})
        assert r.status_code == 404


async def test_tags_revalidate_after_ttl_and_serve_stale_when_upstream_dies(
    skopeo: str, tmp_path: Path
) -> None:
    first = write_image(tmp_path / "a", "v1", layer_sizes=(1 * MiB,))
    second = write_image(tmp_path / "b", "v1", layer_sizes=(1 * MiB,))
    url, accept = "/v2/hub/team/app/manifests/v1", {"Accept": OCI_ACCEPT}
    async with AsyncExitStack() as outlives_upstream:
        async with run_docker_registry(tmp_path / "upstream") as upstream:
            await push(skopeo, first.layout, "v1", upstream, "team/app")
            config = write_config(tmp_path / "node.toml", upstream, tag_ttl=0.0)
            node = await outlives_upstream.enter_async_context(
                run_node(tmp_path / "node", "--config", str(config))
            )
            async with httpx.AsyncClient(base_url=node.url, timeout=30) as client:
                r = await client.get(url, headers=accept)
                assert r.headers["Docker-Content-Digest"] == first.manifest_digest
                assert r.headers["X-Portmesh-Cache"] == "miss"
                r = await client.get(url, headers=accept)
                assert r.headers["X-Portmesh-Cache"] == "revalidated"
                await push(skopeo, second.layout, "v1", upstream, "team/app")
                r = await client.get(url, headers=accept)
                assert r.headers["Docker-Content-Digest"] == second.manifest_digest
                for digest in second.blob_digests:
                    assert (await client.get(f"/v2/hub/team/app/blobs/{digest}")).status_code == 200
        # The upstream is gone (its port refuses connections): the cache answers, stale.
        async with httpx.AsyncClient(base_url=node.url, timeout=30) as client:
            r = await client.get(url, headers=accept)
            assert r.status_code == 200
            assert r.headers["Docker-Content-Digest"] == second.manifest_digest
            assert r.headers["X-Portmesh-Cache"] == "stale"
            assert "110" in r.headers["Warning"]
            blob = await client.get(f"/v2/hub/team/app/blobs/{second.layers[0].digest}")
            assert blob.status_code == 200 and digest_of(blob.content) == second.layers[0].digest
            missing = await client.get("/v2/hub/team/other/manifests/v1", headers=accept)
            assert missing.status_code == 503
            assert missing.json()["errors"][0]["code"] == "UNAVAILABLE"
            tags = await client.get("/v2/hub/team/app/tags/list")
            assert tags.json()["tags"] == ["v1"], "cached tags when the upstream cannot answer"


async def test_two_level_chain_edge_parent_upstream(
    docker_registry: Server, skopeo: str, tmp_path: Path
) -> None:
    index = write_multiarch_image(tmp_path / "multi", "v1")
    await push(skopeo, index.layout, "v1", docker_registry, "team/multi")
    parent_config = write_config(tmp_path / "parent.toml", docker_registry)
    async with run_node(tmp_path / "parent", "--config", str(parent_config)) as parent:
        edge_config = tmp_path / "edge.toml"
        edge_config.write_text(
            f'[[upstream]]\nname = "parent"\nurl = "{parent.url}"\nproject = "up"\n'
        )
        async with run_node(tmp_path / "edge", "--config", str(edge_config)) as edge:
            out = tmp_path / "out"
            await skopeo_copy(
                skopeo,
                f"docker://{edge.address}/up/hub/team/multi:v1",
                f"oci:{out}:v1",
                all_images=True,
            )
            assert layout_tag_digest(out, "v1") == index.index_digest
            async with httpx.AsyncClient() as client:
                for server, repo in ((edge, "up/hub/team/multi"), (parent, "hub/team/multi")):
                    catalog = (await client.get(f"{server.url}/v2/_catalog")).json()
                    assert repo in catalog["repositories"], "each level caches"


async def test_tls_upstreams_with_a_private_ca_or_unchecked(
    docker_registry: Server, skopeo: str, tmp_path: Path
) -> None:
    """An HTTPS upstream whose certificate a private CA signed: trusted with ``ca_file``,
    refused without it (a clear error, nothing cached), taken unchecked with ``insecure``."""
    image = write_image(tmp_path / "src", "v1", layer_sizes=(1 * MiB,))
    await push(skopeo, image.layout, "v1", docker_registry, "team/app")
    tls = make_tls(tmp_path / "tls")
    storage = tmp_path / "docker-registry" / "storage"  # the docker_registry fixture's
    async with run_docker_registry(tmp_path / "secure", storage=storage, tls=tls) as secure:
        assert secure.url.startswith("https://")
        config = tmp_path / "node.toml"
        config.write_text(
            f'[[upstream]]\nname = "private"\nurl = "{secure.url}"\nproject = "private"\n'
            f'ca_file = "{tls.ca}"\n'
            f'[[upstream]]\nname = "public"\nurl = "{secure.url}"\nproject = "public"\n'
            f'[[upstream]]\nname = "skip"\nurl = "{secure.url}"\nproject = "skip"\n'
            "insecure = true\n"
        )
        async with run_node(tmp_path / "node", "--config", str(config)) as node:
            for project in ("private", "skip"):
                out = tmp_path / f"out-{project}"
                await skopeo_copy(
                    skopeo, f"docker://{node.address}/{project}/team/app:v1", f"oci:{out}:v1"
                )
                assert layout_tag_digest(out, "v1") == image.manifest_digest
            async with httpx.AsyncClient(base_url=node.url, timeout=10) as client:
                refused = await client.get(
                    "/v2/public/team/app/manifests/v1", headers={"Accept": OCI_ACCEPT}
                )
                assert refused.status_code >= 500, refused.text
                assert refused.json()["errors"][0]["code"] == "UNAVAILABLE"
                assert "CERTIFICATE_VERIFY_FAILED" in refused.text
                repos = (await client.get("/v2/_catalog")).json()["repositories"]
                assert "public/team/app" not in repos


async def test_range_of_a_cold_blob_far_ahead_of_the_fill(
    docker_registry: Server, skopeo: str, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "src", "v1", layer_sizes=(24 * MiB,))
    await push(skopeo, image.layout, "v1", docker_registry, "team/big")
    layer = image.layers[0]
    start = layer.size - 100_000
    config = write_config(tmp_path / "node.toml", docker_registry)
    async with (
        run_node(tmp_path / "node", "--config", str(config)) as node,
        httpx.AsyncClient(base_url=node.url, timeout=60) as client,
    ):
        url = f"/v2/hub/team/big/blobs/{layer.digest}"
        part = await client.get(url, headers={"Range": f"bytes={start}-{start + 999}"})
        assert part.status_code == 206
        assert part.headers["Content-Range"] == f"bytes {start}-{start + 999}/{layer.size}"
        whole = await client.get(url)
        assert whole.status_code == 200 and digest_of(whole.content) == layer.digest
        assert part.content == whole.content[start : start + 1000]


async def _push_manifest(
    client: httpx.AsyncClient, repo: str, ref: str, doc: dict[str, Any]
) -> str:
    body = json.dumps(doc).encode()
    r = await client.put(
        f"/v2/{repo}/manifests/{ref}", content=body, headers={"Content-Type": doc["mediaType"]}
    )
    assert r.status_code == 201, r.text
    return str(r.headers["Docker-Content-Digest"])


async def test_referrers_are_proxied_from_a_parent_node(skopeo: str, tmp_path: Path) -> None:
    image = write_image(tmp_path / "src", "v1", layer_sizes=(1 * MiB,))
    async with run_node(tmp_path / "parent") as parent:
        await push(skopeo, image.layout, "v1", parent, "team/app")
        async with httpx.AsyncClient(base_url=parent.url) as client:
            empty = b"{}"
            r = await client.post(
                "/v2/team/app/blobs/uploads/", params={"digest": digest_of(empty)}, content=empty
            )
            assert r.status_code == 201
            sbom = await _push_manifest(
                client,
                "team/app",
                "sbom",
                {
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "artifactType": "application/spdx+json",
                    "config": {
                        "mediaType": "application/vnd.oci.empty.v1+json",
                        "digest": digest_of(empty),
                        "size": 2,
                    },
                    "layers": [
                        {
                            "mediaType": "application/vnd.oci.empty.v1+json",
                            "digest": digest_of(empty),
                            "size": 2,
                        }
                    ],
                    "subject": image.descriptor.to_json(),
                },
            )
        edge_config = tmp_path / "edge.toml"
        edge_config.write_text(
            f'[[upstream]]\nname = "parent"\nurl = "{parent.url}"\nproject = "up"\n'
        )
        async with (
            run_node(tmp_path / "edge", "--config", str(edge_config)) as edge,
            httpx.AsyncClient(base_url=edge.url) as client,
        ):
            url = f"/v2/up/team/app/referrers/{image.manifest_digest}"
            found = (await client.get(url)).json()["manifests"]
            assert [(m["digest"], m["artifactType"]) for m in found] == [
                (sbom, "application/spdx+json")
            ]
            r = await client.get(url, params={"artifactType": "application/vnd.example"})
            assert r.json()["manifests"] == []
            assert r.headers["OCI-Filters-Applied"] == "artifactType"
