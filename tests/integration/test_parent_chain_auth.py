"""An edge node pulling through a parent node that enforces tokens, with a robot's
credentials, and the edge's sealed policy snapshot on disk.

The parent is started from a policy file (the one of ``test_node_auth`` plus a robot
``robot$team+edge`` with pull only on ``team``); images are pushed to it with the push
robot. A fault proxy sits between edge and parent (passing everything through) and counts
the parent's requests by path, token requests included: the parent's challenges name the
Host they were asked on, so the edge's logins go through the proxy too.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from integration.test_node_auth import SECRET, attempt, skopeo_copy_args, write_policy
from node.auth.holder import POLICY_KEY
from node.auth.sealing import SnapshotSeal
from node.storage.lmdb_meta import LmdbMetadataStore
from portmesh.access import Permission
from portmesh.passwords import hash_secret
from portmesh.policy import Policy, Project, Robot, ServiceInfo
from portmesh.tokens import SigningKey
from support.faults import FaultProxy
from support.images import Image, MiB, layout_tag_digest, write_image
from support.servers import Server, free_port, portmesh_command, run_node, run_server, run_tool

pytestmark = pytest.mark.integration

EDGE_ROBOT = "robot$team+edge"
EDGE_SECRET = "edge-pull-secret-5be1c0"
PUSHER = f"robot$team+ci:{SECRET}"


def parent_policy(path: Path) -> None:
    """``test_node_auth``'s policy, plus the edge's pull-only robot."""
    write_policy(path, SigningKey.generate("coord-1"))
    policy = Policy.from_bytes(path.read_bytes())
    robot = Robot(
        EDGE_ROBOT,
        hash_secret(EDGE_SECRET),
        permissions=(Permission("team", "repository", ("pull",)),),
    )
    path.write_bytes(
        dataclasses.replace(policy, robots={**policy.robots, EDGE_ROBOT: robot}).to_bytes()
    )


def edge_policy(path: Path, parent_url: str, password: str) -> None:
    """An edge policy whose public proxy project ``up`` pulls from the parent."""
    upstream = {
        "name": "parent",
        "type": "portmesh",
        "url": parent_url,
        "project": "up",
        "username": EDGE_ROBOT,
        "password": password,
    }
    policy = Policy(
        version=1,
        issued_at=time.time(),
        service=ServiceInfo("coordinator", "edge-2"),
        keys=(SigningKey.generate("coord-2").public_jwk(),),
        projects={"up": Project("up", 1, public=True, proxy="parent")},
        upstreams=(upstream,),
    )
    path.write_bytes(policy.to_bytes())


def auth_node_command(data: Path, port: int, policy_file: Path) -> list[str]:
    return [
        *portmesh_command(),
        "node",
        "--listen",
        f"127.0.0.1:{port}",
        "--data",
        str(data),
        "--policy-file",
        str(policy_file),
    ]


@asynccontextmanager
async def auth_node(workdir: Path, policy_file: Path) -> AsyncIterator[Server]:
    port = free_port()
    command = auth_node_command(workdir / "data", port, policy_file)
    async with run_server("portmesh", command, port, workdir / "node.log", ready=401) as server:
        yield server


@asynccontextmanager
async def parent_with_images(
    tmp_path: Path, skopeo: str, *tags: str
) -> AsyncIterator[tuple[FaultProxy, dict[str, Image]]]:
    """The parent, ``team/app:<tag>`` pushed to it for each tag, and a counting proxy."""
    policy_file = tmp_path / "parent-policy.bin"
    parent_policy(policy_file)
    images = {tag: write_image(tmp_path / f"src-{tag}", tag, (1 * MiB, 8192)) for tag in tags}
    async with auth_node(tmp_path / "parent", policy_file) as parent:
        for tag, image in images.items():
            await run_tool(
                skopeo_copy_args(
                    skopeo,
                    f"oci:{image.layout}:{tag}",
                    f"docker://{parent.address}/team/app:{tag}",
                    PUSHER,
                )
            )
        proxy = FaultProxy(parent.address)
        async with trio.open_nursery() as nursery:
            await nursery.start(proxy.serve)
            yield proxy, images
            nursery.cancel_scope.cancel()


def pull_args(skopeo: str, source: str, dest: str) -> list[str]:
    return [skopeo, "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false",
            "--src-no-creds", "--preserve-digests", source, dest]  # fmt: skip


def token_requests(proxy: FaultProxy) -> int:
    return sum(n for path, n in proxy.requests.items() if path.endswith("/service/token"))


async def test_edge_pulls_through_the_parent_with_the_sealed_snapshot_credentials(
    skopeo: str, tmp_path: Path
) -> None:
    async with parent_with_images(tmp_path, skopeo, "v1", "v2") as (proxy, images):
        edge_file = tmp_path / "edge-policy.bin"
        edge_policy(edge_file, proxy.url, EDGE_SECRET)
        async with auth_node(tmp_path / "edge", edge_file) as edge:
            for tag, image in images.items():
                out = tmp_path / f"out-{tag}"
                await run_tool(
                    pull_args(
                        skopeo, f"docker://{edge.address}/up/team/app:{tag}", f"oci:{out}:{tag}"
                    )
                )
                assert layout_tag_digest(out, tag) == image.manifest_digest
        # two images, manifests and blobs: one login at the parent for the whole lot
        assert token_requests(proxy) == 1, dict(proxy.requests)
        fetched = [path for path in proxy.forwarded if "/blobs/" in path]
        assert len(fetched) == 6, fetched  # per image: two layers and a config

    # the upstream password sits in the edge's data only sealed
    data = tmp_path / "edge" / "data"
    holding = [p for p in data.rglob("*") if p.is_file() and EDGE_SECRET.encode() in p.read_bytes()]
    assert holding == []
    assert (data / "auth" / "secrets.key").stat().st_mode & 0o777 == 0o600
    meta = LmdbMetadataStore.open(data / "meta", 64 * MiB)
    try:
        stored = await meta.get_setting(POLICY_KEY)
    finally:
        await meta.aclose()
    assert stored is not None and SnapshotSeal.is_sealed(stored)
    reopened = Policy.from_bytes(SnapshotSeal.load(data / "auth").open(stored))
    assert reopened.upstreams[0]["password"] == EDGE_SECRET

    # with another key file the edge refuses to start, and says which file
    key_file = data / "auth" / "secrets.key"
    key_file.unlink()
    command = auth_node_command(data, free_port(), edge_file)
    code, stderr = await attempt(command)
    assert code == 2, stderr
    assert (
        f"portmesh: the stored policy snapshot does not open with the node's key file {key_file}"
        in stderr
    )
    assert EDGE_SECRET not in stderr


async def test_a_wrong_secret_in_the_edge_config_is_a_clear_client_error(
    skopeo: str, tmp_path: Path
) -> None:
    async with parent_with_images(tmp_path, skopeo, "v1") as (proxy, _images):
        config = tmp_path / "edge.toml"
        upstream = {"name": "parent", "type": "portmesh", "url": proxy.url, "project": "up",
                    "username": EDGE_ROBOT, "password": "not-the-secret"}  # fmt: skip
        lines = ["[[upstream]]", *(f"{k} = {json.dumps(v)}" for k, v in upstream.items())]
        config.write_text("\n".join(lines) + "\n")
        async with run_node(tmp_path / "edge", "--config", str(config)) as edge:
            started = time.monotonic()
            code, stderr = await attempt(
                pull_args(
                    skopeo, f"docker://{edge.address}/up/team/app:v1", f"oci:{tmp_path / 'out'}:v1"
                )
            )
            assert code != 0
            assert time.monotonic() - started < 30, "no hang"
            async with httpx.AsyncClient(base_url=edge.url, timeout=30) as client:
                answer = await client.get("/v2/up/team/app/manifests/v1")
        # the client learns the upstream refused the edge's login, not an internal error
        assert "received unexpected HTTP status: 503" in stderr, stderr
        assert answer.status_code == 503, answer.text
        error = answer.json()["errors"][0]
        assert error["code"] == "UNAVAILABLE"
        assert "upstream parent refused the node's credentials" in error["message"]
        assert "invalid robot account credentials" in error["message"]
        # one login attempt per client request, none retried in a loop
        assert token_requests(proxy) == 2, dict(proxy.requests)
        assert not [path for path in proxy.forwarded if "/blobs/" in path]
        assert "not-the-secret" not in (tmp_path / "edge" / "node.log").read_text()
