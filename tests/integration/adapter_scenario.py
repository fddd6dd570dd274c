"""The pull-through scenario every registry adapter goes through, written once.

A real docker-registry holds a multi-arch index, a provider's auth front stands before it,
and a real node proxies it through an ``[[upstream]]`` of the adapter's ``type`` with a
zero ``tag_ttl``. Through the node: ``skopeo copy --all`` keeps the index digest,
``podman pull`` gets the image, and once the front is gone the tag is served stale.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import trio

from integration.test_proxy import OCI_ACCEPT, push
from support.authfront import AuthFront, Provider
from support.clients import skopeo_copy
from support.images import ImageIndex, layout_tag_digest, write_multiarch_image
from support.servers import podman_env, run_docker_registry, run_node, run_tool

__all__ = ["pull_through_scenario"]


async def _serve_until(
    front: AuthFront,
    scope: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    with scope:
        await front.serve(task_status=task_status)


async def pull_through_scenario(
    tmp_path: Path,
    skopeo: str,
    podman: str,
    provider: Provider,
    pushed_as: str,
    node_repo: str,
    write_config: Callable[[str], Path],
) -> AuthFront:
    """Run the three steps for one adapter and return the (stopped) front.

    ``pushed_as`` is the repository in the registry behind the front, ``node_repo`` the
    same image's path under the node (project included), and ``write_config(front_url)``
    writes the node's config file (with ``tag_ttl = 0.0``) and returns its path.
    """
    index = write_multiarch_image(tmp_path / "multi", "v1", layer_sizes=(200_000,))
    front_scope = trio.CancelScope()
    async with (
        run_docker_registry(tmp_path / "registry") as registry,
        trio.open_nursery() as nursery,
    ):
        await push(skopeo, index.layout, "v1", registry, pushed_as)
        front = AuthFront(registry.url, provider)
        await nursery.start(_serve_until, front, front_scope)
        config = write_config(front.url)
        async with run_node(tmp_path / "node", "--config", str(config)) as node:
            await _steps(skopeo, podman, tmp_path, node.address, node_repo, index)
            front_scope.cancel()
            await _gone(front.url)
            await _stale(node.url, node_repo, index)
        nursery.cancel_scope.cancel()
    return front


async def _steps(
    skopeo: str,
    podman: str,
    tmp_path: Path,
    address: str,
    node_repo: str,
    index: ImageIndex,
) -> None:
    """(1) ``skopeo copy --all`` keeps the index digest; (2) ``podman pull`` works."""
    # (1) the whole index through the node, digest kept
    out = tmp_path / "out"
    source = f"docker://{address}/{node_repo}:v1"
    await skopeo_copy(skopeo, source, f"oci:{out}:v1", all_images=True)
    assert layout_tag_digest(out, "v1") == index.index_digest
    # (2) podman pulls the image for its platform
    env = podman_env(tmp_path / "podman", [address])
    ref = f"{address}/{node_repo}:v1"
    await run_tool([podman, "pull", "--quiet", ref], env=env)
    inspected = await run_tool(
        [podman, "image", "inspect", "--format", "{{json .RepoDigests}}", ref], env=env
    )
    assert index.index_digest in inspected.decode()


async def _gone(front_url: str) -> None:
    """Return once the stopped front's port refuses connections."""
    port = int(front_url.rsplit(":", 1)[1].split("/", 1)[0])
    with trio.fail_after(10):
        while True:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                return
            await stream.aclose()
            await trio.sleep(0.05)


async def _stale(base_url: str, node_repo: str, index: ImageIndex) -> None:
    """(3) With the front gone, the tag (past its TTL) is answered from the cache, stale."""
    url, accept = f"/v2/{node_repo}/manifests/v1", {"Accept": OCI_ACCEPT}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        r = await client.get(url, headers=accept)
        assert r.status_code == 200
        assert r.headers["Docker-Content-Digest"] == index.index_digest
        assert r.headers["X-Portmesh-Cache"] == "stale"
        assert "110" in r.headers["Warning"]
