"""A real coordinator and a real node joined to it with a join token, as processes.

The node follows the coordinator's policy within the long poll, keeps serving from its
last snapshot while the coordinator is down, and catches up when it is back on the same
port and database; pushes and pulls with a robot account reach the coordinator as events
(audit log, repository listing) at least once and without duplicates.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from support.images import write_image
from support.servers import Server, free_port, portmesh_command, run_server

pytestmark = pytest.mark.integration

ADMIN = ("admin", "Harbor12345")
START_TIMEOUT = 30.0


@asynccontextmanager
async def run_coordinator(data: Path, port: int, log: Path) -> AsyncIterator[str]:
    """``portmesh coordinator`` on ``port`` until the block ends; yields its base URL."""
    env = {**os.environ, "PORTMESH_ADMIN_PASSWORD": ADMIN[1]}
    command = [
        *portmesh_command(),
        "coordinator",
        "--listen",
        f"127.0.0.1:{port}",
        "--data",
        str(data),
    ]
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        process = await trio.lowlevel.open_process(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env
        )
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            with trio.fail_after(START_TIMEOUT):
                while True:
                    assert process.returncode is None, "the coordinator exited; see its log"
                    try:
                        if (await client.get(f"{url}/api/v2.0/ping")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await trio.sleep(0.1)
        yield url
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                with trio.move_on_after(10):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()


@asynccontextmanager
async def run_joined_node(
    workdir: Path, coordinator: str, join_token: str, port: int, *extra: str
) -> AsyncIterator[Server]:
    command = [
        *portmesh_command(),
        "node",
        "--listen",
        f"127.0.0.1:{port}",
        "--data",
        str(workdir / "node"),
        "--coordinator",
        coordinator,
        "--join-token",
        join_token,
        "--name",
        "edge-1",
        *extra,
    ]
    async with run_server("portmesh", command, port, workdir / "node.log", ready=401) as node:
        yield node


async def anonymous_pull_granted(node: Server, repository: str) -> bool:
    """Whether the node's token service grants an anonymous pull of ``repository``."""
    async with httpx.AsyncClient(base_url=node.url) as http:
        answer = await http.get(
            "/service/token", params={"service": "edge-1", "scope": f"repository:{repository}:pull"}
        )
    assert answer.status_code == 200, answer.text
    token = answer.json()["token"]
    body = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return any("pull" in entry["actions"] for entry in claims["access"])


async def wait_until(condition: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    """Poll ``condition`` (state in another process) until it holds."""
    with trio.move_on_after(seconds):
        while not await condition():  # noqa: ASYNC110 - the state is in another process
            await trio.sleep(0.2)
        return
    pytest.fail(f"not within {seconds}s: {what}")


async def test_node_follows_the_coordinator_and_survives_its_outage(tmp_path: Path) -> None:
    coordinator_port, node_port = free_port(), free_port()
    log = tmp_path / "coordinator.log"
    data = tmp_path / "coordinator"
    async with AsyncExitStack() as running:
        async with (
            run_coordinator(data, coordinator_port, log) as url,
            httpx.AsyncClient(base_url=f"{url}/api/v2.0", auth=ADMIN) as api,
        ):
            made = await api.post("/nodes/join-tokens", json={"description": "test"})
            assert made.status_code == 201, made.text
            node = await running.enter_async_context(
                run_joined_node(tmp_path, url, made.json()["token"], node_port)
            )
            listed = (await api.get("/nodes")).json()
            assert [(n["name"], n["healthy"]) for n in listed] == [("edge-1", True)]
            assert listed[0]["last_sync"] and listed[0]["policy_version"] >= 1
            assert not await anonymous_pull_granted(node, "shared/app")
            created = await api.post(
                "/projects", json={"project_name": "shared", "metadata": {"public": "true"}}
            )
            assert created.status_code == 201, created.text
            started = trio.current_time()

            async def public_now() -> bool:
                return await anonymous_pull_granted(node, "shared/app")

            await wait_until(public_now, 10, "the new public project")
            assert trio.current_time() - started < 10
        # the coordinator is gone; the node keeps serving from its snapshot
        await trio.sleep(1.5)
        assert await anonymous_pull_granted(node, "shared/app"), "served from the snapshot"
        async with (
            run_coordinator(data, coordinator_port, log) as url,
            httpx.AsyncClient(base_url=f"{url}/api/v2.0", auth=ADMIN) as api,
        ):
            changed = await api.put("/projects/shared", json={"metadata": {"public": "false"}})
            assert changed.status_code == 200, changed.text

            async def private_now() -> bool:
                return not await anonymous_pull_granted(node, "shared/app")

            # the node's retries back off to at most 30 s
            await wait_until(private_now, 45, "the change made after the outage")
            listed = (await api.get("/nodes")).json()
            assert len(listed) == 1 and listed[0]["healthy"]
            deleted = await api.delete(f"/nodes/{listed[0]['id']}")
            assert deleted.status_code == 200
            assert (await api.get("/nodes")).json() == []
    text = (tmp_path / "node.log").read_text()
    assert "policy sync failed" in text, "the node noticed the outage"


ROBOT_PERMISSIONS = [
    {
        "kind": "project",
        "namespace": "team",
        "access": [
            {"resource": "repository", "action": "push"},
            {"resource": "repository", "action": "pull"},
        ],
    }
]


async def copy(skopeo: str, source: str, dest: str, creds: str | None) -> tuple[int, str]:
    """``skopeo copy`` (``creds`` None: anonymous); (exit code, output)."""
    args = [skopeo, "--insecure-policy", "copy", "--quiet", "--preserve-digests"]
    args += ["--src-tls-verify=false", "--dest-tls-verify=false"]
    if source.startswith("docker://"):
        args += ["--src-creds", creds] if creds else ["--src-no-creds"]
    if dest.startswith("docker://"):
        args += ["--dest-creds", creds] if creds else ["--dest-no-creds"]
    done = await trio.run_process(
        [*args, source, dest], capture_stdout=True, capture_stderr=True, check=False
    )
    return done.returncode, (done.stdout + done.stderr).decode(errors="replace")


async def audit_of(api: httpx.AsyncClient, repository: str) -> list[tuple[str, str]]:
    """(operation, username) of the audit entries about ``repository``."""
    found = []
    page = 1
    while True:
        answer = await api.get("/audit-logs", params={"page": page, "page_size": 100})
        assert answer.status_code == 200, answer.text
        entries = answer.json()
        found += [(e["operation"], e["username"]) for e in entries if repository in e["resource"]]
        if len(entries) < 100:
            return sorted(found)
        page += 1


async def test_robot_pushes_and_pulls_reach_the_audit_log_through_an_outage(
    skopeo: str, tmp_path: Path
) -> None:
    coordinator_port, node_port = free_port(), free_port()
    log = tmp_path / "coordinator.log"
    data = tmp_path / "coordinator"
    first = write_image(tmp_path / "one", "v1", layer_sizes=(4096,))
    second = write_image(tmp_path / "two", "v2", layer_sizes=(4096,))
    async with AsyncExitStack() as running:
        async with (
            run_coordinator(data, coordinator_port, log) as url,
            httpx.AsyncClient(base_url=f"{url}/api/v2.0", auth=ADMIN) as api,
        ):
            for name, public in (("team", "false"), ("pub", "true")):
                made = await api.post(
                    "/projects", json={"project_name": name, "metadata": {"public": public}}
                )
                assert made.status_code == 201, made.text
            token = (await api.post("/nodes/join-tokens", json={})).json()["token"]
            node = await running.enter_async_context(
                run_joined_node(tmp_path, url, token, node_port)
            )
            robot = await api.post(
                "/robots",
                json={
                    "name": "ci",
                    "level": "project",
                    "duration": -1,
                    "permissions": ROBOT_PERMISSIONS,
                },
            )
            assert robot.status_code == 201, robot.text
            creds = f"{robot.json()['name']}:{robot.json()['secret']}"
            robot_id = robot.json()["id"]
            target = f"docker://{node.address}/team/app"
            # the robot reaches the node with the next snapshot (the long poll returns)

            async def robot_pushes() -> bool:
                source = f"oci:{first.layout}:v1"
                return (await copy(skopeo, source, target + ":v1", creds))[0] == 0

            await wait_until(robot_pushes, 15, "the robot's first push")
            code, out = await copy(skopeo, target + ":v1", f"oci:{tmp_path / 'back'}:v1", creds)
            assert code == 0, out
            code, out = await copy(
                skopeo, f"oci:{first.layout}:v1", f"docker://{node.address}/pub/app:v1", creds
            )
            assert code != 0, "the robot may not push to pub"
            admin = f"{ADMIN[0]}:{ADMIN[1]}"  # a user login, passed on to the coordinator
            public = f"docker://{node.address}/pub/app:v1"
            code, out = await copy(skopeo, f"oci:{first.layout}:v1", public, admin)
            assert code == 0, out

            async def pushed_and_pulled() -> bool:
                seen = {op for op, user in await audit_of(api, "team/app") if "robot" in user}
                return {"create", "pull"} <= seen

            await wait_until(pushed_and_pulled, 30, "the push and the pull in the audit log")
            repositories = (await api.get("/projects/team/repositories")).json()
            assert [r["name"] for r in repositories] == ["team/app"]
            before_outage = await audit_of(api, "team/app")
        # the coordinator is down: robots, anonymous pulls of public projects keep working
        code, out = await copy(skopeo, f"oci:{second.layout}:v2", target + ":v2", creds)
        assert code == 0, out
        code, out = await copy(skopeo, target + ":v1", f"oci:{tmp_path / 'again'}:v1", creds)
        assert code == 0, out
        code, out = await copy(skopeo, public, f"oci:{tmp_path / 'anon'}:v1", None)
        assert code == 0, "anonymous pulls of a public project need no coordinator: " + out
        refused_push = await copy(
            skopeo, f"oci:{first.layout}:v1", f"docker://{node.address}/pub/app:v1", creds
        )
        assert refused_push[0] != 0, "still no push to pub"
        async with (
            run_coordinator(data, coordinator_port, log) as url,
            httpx.AsyncClient(base_url=f"{url}/api/v2.0", auth=ADMIN) as api,
        ):

            async def caught_up() -> bool:
                return len(await audit_of(api, "team/app")) >= len(before_outage) + 2

            await wait_until(caught_up, 45, "the events queued during the outage")
            await trio.sleep(2)  # a redelivery would land now
            after = await audit_of(api, "team/app")
            assert len(after) == len(before_outage) + 2, "no duplicates"
            assert ("create", robot.json()["name"]) in after
            disabled = await api.put(
                f"/robots/{robot_id}",
                json={
                    "name": robot.json()["name"],
                    "level": "project",
                    "duration": -1,
                    "disable": True,
                    "permissions": ROBOT_PERMISSIONS,
                },
            )
            assert disabled.status_code == 200, disabled.text

            async def refused() -> bool:
                code, _ = await copy(skopeo, target + ":v1", f"oci:{tmp_path / 'x'}:v1", creds)
                return code != 0

            await wait_until(refused, 45, "the disabled robot refused after the next sync")
            listed = (await api.get("/nodes")).json()
            assert listed[0]["healthy"] and listed[0]["last_sync"]
