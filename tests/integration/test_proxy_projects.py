"""Proxy-cache projects made on the coordinator route on a running node, no restart.

The Harbor flow: an admin adds a registry endpoint (a docker-registry that needs basic
auth), creates a public project bound to it, and pulls ``<node>/<project>/<repo>:<tag>``
at once; the node learns the upstream from its next policy snapshot. Deleting the project
takes the route away again. The node runs two worker processes: the hit count it
reports adds up the answers of both.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from integration.test_coordinator_node import (
    ADMIN,
    copy,
    run_coordinator,
    run_joined_node,
    wait_until,
)
from support.images import write_image
from support.servers import free_port, run_docker_registry

pytestmark = pytest.mark.integration

UPSTREAM_USER = ("puller", "upstream-secret")
MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json"
HIT_GETS = 20


async def test_a_new_proxy_project_routes_at_once_and_goes_with_its_deletion(
    skopeo: str, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "image", "v1", layer_sizes=(50_000, 3_000))
    creds = ":".join(UPSTREAM_USER)
    async with AsyncExitStack() as running:
        upstream = await running.enter_async_context(
            run_docker_registry(tmp_path / "upstream", users=dict([UPSTREAM_USER]))
        )
        code, out = await copy(
            skopeo, f"oci:{image.layout}:v1", f"docker://{upstream.address}/team/app:v1", creds
        )
        assert code == 0, out
        async with httpx.AsyncClient(auth=UPSTREAM_USER) as http:
            head = await http.head(
                f"{upstream.url}/v2/team/app/manifests/v1", headers={"Accept": MANIFEST_TYPES}
            )
        upstream_digest = head.headers["docker-content-digest"]

        url = await running.enter_async_context(
            run_coordinator(tmp_path / "coordinator", free_port(), tmp_path / "coordinator.log")
        )
        api = await running.enter_async_context(
            httpx.AsyncClient(base_url=f"{url}/api/v2.0", auth=ADMIN)
        )
        token = (await api.post("/nodes/join-tokens", json={})).json()["token"]
        config = tmp_path / "node.toml"
        config.write_text("[auth]\npoll_wait = 1\n")
        node = await running.enter_async_context(
            run_joined_node(
                tmp_path, url, token, free_port(), "--workers", "2", "--config", str(config)
            )
        )
        through_node = f"docker://{node.address}/cache/team/app:v1"
        code, _ = await copy(skopeo, through_node, f"oci:{tmp_path / 'early'}:v1", None)
        assert code != 0, "no project yet"

        registry = await api.post(
            "/registries",
            json={
                "name": "upstream",
                "type": "docker-registry",
                "url": upstream.url,
                "insecure": True,
                "credential": {
                    "type": "basic",
                    "access_key": UPSTREAM_USER[0],
                    "access_secret": UPSTREAM_USER[1],
                },
            },
        )
        assert registry.status_code == 201, registry.text
        registry_id = int(registry.headers["location"].rsplit("/", 1)[1])
        project = await api.post(
            "/projects",
            json={
                "project_name": "cache",
                "registry_id": registry_id,
                "metadata": {"public": "true"},
            },
        )
        assert project.status_code == 201, project.text

        pulled = tmp_path / "pulled"

        async def pulls() -> bool:
            return (await copy(skopeo, through_node, f"oci:{pulled}:v1", None))[0] == 0

        await wait_until(pulls, 15, "an anonymous pull through the new proxy project")
        async with httpx.AsyncClient(base_url=node.url) as http:
            scope = "repository:cache/team/app:pull"
            grant = await http.get("/service/token", params={"service": "edge-1", "scope": scope})
        bearer = f"Bearer {grant.json()['token']}"

        async def get_once() -> httpx.Response:
            """A manifest GET on a new connection: each worker process gets some."""
            async with httpx.AsyncClient(base_url=node.url) as http:
                return await http.get(
                    "/v2/cache/team/app/manifests/v1",
                    headers={"Accept": MANIFEST_TYPES, "Authorization": bearer},
                )

        async def both_route() -> bool:
            # a worker that does not route it yet answers from the cache's local copy,
            # without the cache's header
            return all(["x-portmesh-cache" in (await get_once()).headers for _ in range(12)])

        # the worker that did not answer the pull routes the project within its reload
        await wait_until(both_route, 10, "both workers routing the new project")
        answer = await get_once()
        assert answer.headers["docker-content-digest"] == upstream_digest
        # /nodes counts the cache answers of both workers
        for _ in range(HIT_GETS):
            again = await get_once()
            assert again.headers["x-portmesh-cache"] == "hit"

        async def counted() -> bool:
            listed = (await api.get("/nodes")).json()
            return listed[0]["cache_hits"] > HIT_GETS and listed[0]["cache_misses"] >= 1

        await wait_until(counted, 15, "the hits of both workers in /nodes")
        pushed = await copy(
            skopeo, f"oci:{image.layout}:v1", f"docker://{node.address}/cache/mine:v1", creds
        )
        assert pushed[0] != 0, "a proxy-cache project takes no pushes"

        deleted = await api.delete("/projects/cache")
        assert deleted.status_code == 200, deleted.text

        async def gone() -> bool:
            # each of the two workers logs it
            return (tmp_path / "node.log").read_text().count("proxy upstreams now: none") == 2

        await wait_until(gone, 15, "the node dropping the deleted project's upstream")
        code, _ = await copy(skopeo, through_node, f"oci:{tmp_path / 'late'}:v1", None)
        assert code != 0, "the project is gone"
