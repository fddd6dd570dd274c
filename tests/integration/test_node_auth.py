"""A node with token authentication, started from a policy file, driven by real clients.

The policy (written by the test) has a public project ``pub``, a private project ``team``,
a robot with pull and push on ``team``, a system robot with push everywhere, a disabled
robot and a revoked one. skopeo and podman go through the Docker token flow against the
node's own ``/service/token``; plain httpx checks the challenges and error bodies.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio

from portmesh.access import Permission
from portmesh.passwords import hash_secret
from portmesh.policy import Policy, Project, Revocations, Robot, ServiceInfo
from portmesh.tokens import Access, SigningKey, new_claims, sign
from support.images import MiB, write_image
from support.servers import Server, free_port, podman_env, portmesh_command, run_server, run_tool

pytestmark = pytest.mark.integration

SECRET = "team-ci-secret"
ADMIN_SECRET = "admin-robot-secret"
TLS = ("--src-tls-verify=false", "--dest-tls-verify=false")


@dataclass
class AuthNode:
    server: Server
    coordinator: SigningKey

    def token(self, *access: Access, aud: str = "edge-1", now: float | None = None) -> str:
        made = new_claims(
            issuer="coordinator",
            subject="alice",
            audience=aud,
            access=access,
            ttl=300,
            now=time.time() if now is None else now,
        )
        return sign(made, self.coordinator)


def write_policy(path: Path, coordinator: SigningKey) -> None:
    hashed = hash_secret(SECRET)
    policy = Policy(
        version=1,
        issued_at=time.time(),
        service=ServiceInfo("coordinator", "edge-1"),
        keys=(coordinator.public_jwk(),),
        projects={"pub": Project("pub", 1, public=True), "team": Project("team", 2)},
        robots={
            "robot$team+ci": Robot(
                "robot$team+ci",
                hashed,
                permissions=(Permission("team", "repository", ("pull", "push")),),
            ),
            "robot$admin": Robot(
                "robot$admin",
                hash_secret(ADMIN_SECRET),
                permissions=(Permission("*", "repository", ("pull", "push")),),
            ),
            "robot$team+off": Robot(
                "robot$team+off",
                hashed,
                disabled=True,
                permissions=(Permission("team", "repository", ("pull",)),),
            ),
            "robot$team+old": Robot(
                "robot$team+old", hashed, permissions=(Permission("team", "repository", ("pull",)),)
            ),
        },
        revoked=Revocations(robots=frozenset({"robot$team+old"})),
    )
    path.write_bytes(policy.to_bytes())


@pytest.fixture
async def auth_node(tmp_path: Path) -> AsyncIterator[AuthNode]:
    coordinator = SigningKey.generate("coord-1")
    policy_file = tmp_path / "policy.bin"
    write_policy(policy_file, coordinator)
    port = free_port()
    command = [
        *portmesh_command(),
        "node",
        "--listen",
        f"127.0.0.1:{port}",
        "--data",
        str(tmp_path / "data"),
        "--policy-file",
        str(policy_file),
    ]
    async with run_server("portmesh", command, port, tmp_path / "node.log", ready=401) as server:
        yield AuthNode(server, coordinator)


async def attempt(args: Sequence[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run a client expected to fail: its exit status and stderr."""
    with trio.fail_after(120):
        result = await trio.run_process(
            list(args),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    return result.returncode, result.stderr.decode(errors="replace")


def skopeo_copy_args(skopeo: str, source: str, dest: str, creds: str) -> list[str]:
    return [
        skopeo,
        "--insecure-policy",
        "copy",
        "--quiet",
        "--preserve-digests",
        *TLS,
        "--dest-creds",
        creds,
        source,
        dest,
    ]


async def test_robot_pushes_where_allowed_and_is_refused_elsewhere(
    auth_node: AuthNode, skopeo: str, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "src", "v1", layer_sizes=(1 * MiB, 4096))
    address = auth_node.server.address
    creds = f"robot$team+ci:{SECRET}"
    await run_tool(
        skopeo_copy_args(skopeo, f"oci:{image.layout}:v1", f"docker://{address}/team/app:v1", creds)
    )
    raw = await run_tool(
        [
            skopeo,
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            creds,
            f"docker://{address}/team/app:v1",
        ]
    )
    assert raw == image.manifest

    code, stderr = await attempt(
        skopeo_copy_args(skopeo, f"oci:{image.layout}:v1", f"docker://{address}/pub/app:v1", creds)
    )
    assert code != 0
    assert "denied: requested access to the resource is denied" in stderr, stderr
    code, stderr = await attempt(
        skopeo_copy_args(
            skopeo,
            f"oci:{image.layout}:v1",
            f"docker://{address}/team/app:v2",
            "robot$team+ci:wrong",
        )
    )
    assert code != 0
    assert "invalid robot account credentials" in stderr, stderr


async def test_anonymous_pulls_public_projects_only(
    auth_node: AuthNode, skopeo: str, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "src", "v1", layer_sizes=(256 * 1024,))
    address = auth_node.server.address
    admin = f"robot$admin:{ADMIN_SECRET}"
    for repo in ("pub/app", "team/app"):
        await run_tool(
            skopeo_copy_args(
                skopeo, f"oci:{image.layout}:v1", f"docker://{address}/{repo}:v1", admin
            )
        )

    raw = await run_tool(
        [
            skopeo,
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--no-creds",
            f"docker://{address}/pub/app:v1",
        ]
    )
    assert raw == image.manifest
    back = tmp_path / "back"
    await run_tool(
        [
            skopeo,
            "--insecure-policy",
            "copy",
            "--quiet",
            *TLS,
            "--src-no-creds",
            f"docker://{address}/pub/app:v1",
            f"oci:{back}:v1",
        ]
    )
    code, stderr = await attempt(
        [
            skopeo,
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--no-creds",
            f"docker://{address}/team/app:v1",
        ]
    )
    assert code != 0
    assert "requested access to the resource is denied" in stderr, stderr


async def test_podman_login_and_pull_with_a_robot(
    auth_node: AuthNode, skopeo: str, podman: str, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "src", "v1", layer_sizes=(512 * 1024,))
    address = auth_node.server.address
    creds = f"robot$team+ci:{SECRET}"
    await run_tool(
        skopeo_copy_args(skopeo, f"oci:{image.layout}:v1", f"docker://{address}/team/app:v1", creds)
    )
    env = podman_env(tmp_path / "podman", [address])
    authfile = str(tmp_path / "auth.json")
    code, stderr = await attempt(
        [
            podman,
            "login",
            "--tls-verify=false",
            "--authfile",
            authfile,
            "-u",
            "robot$team+ci",
            "-p",
            "wrong",
            address,
        ],
        env,
    )
    assert code != 0, "podman login accepted a wrong secret"
    await run_tool(
        [
            podman,
            "login",
            "--tls-verify=false",
            "--authfile",
            authfile,
            "-u",
            "robot$team+ci",
            "-p",
            SECRET,
            address,
        ],
        env=env,
    )
    await run_tool(
        [
            podman,
            "pull",
            "--quiet",
            "--tls-verify=false",
            "--authfile",
            authfile,
            f"{address}/team/app:v1",
        ],
        env=env,
    )
    output = await run_tool([podman, "image", "inspect", f"{address}/team/app:v1"], env=env)
    assert json.loads(output)[0]["Digest"] == image.manifest_digest
    code, stderr = await attempt(
        [
            podman,
            "login",
            "--tls-verify=false",
            "--authfile",
            authfile,
            "-u",
            "robot$team+off",
            "-p",
            SECRET,
            address,
        ],
        env,
    )
    assert code != 0 and "invalid username/password" in stderr, stderr


async def test_token_endpoint_and_enforcement_over_http(auth_node: AuthNode) -> None:
    def basic(user: str, secret: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}

    async with httpx.AsyncClient(base_url=auth_node.server.url, timeout=30) as client:
        challenge = await client.get("/v2/team/app/manifests/v1")
        assert challenge.status_code == 401
        assert challenge.headers["www-authenticate"] == (
            f'Bearer realm="{auth_node.server.url}/service/token",service="edge-1",'
            'scope="repository:team/app:pull"'
        )
        assert challenge.json() == {
            "errors": [
                {
                    "code": "UNAUTHORIZED",
                    "message": "authentication required",
                    "detail": [{"Type": "repository", "Name": "team/app", "Action": "pull"}],
                }
            ]
        }

        for robot, why in (("robot$team+off", "disabled"), ("robot$team+old", "revoked")):
            refused = await client.get(
                "/service/token", params={"service": "edge-1"}, headers=basic(robot, SECRET)
            )
            assert refused.status_code == 401 and why in refused.text

        anonymous = await client.get(
            "/service/token", params={"service": "edge-1", "scope": "repository:team/app:pull"}
        )
        assert anonymous.status_code == 200
        token = anonymous.json()["token"]
        denied = await client.get(
            "/v2/team/app/manifests/v1", headers={"Authorization": f"Bearer {token}"}
        )
        assert denied.status_code == 403
        assert denied.json()["errors"][0]["code"] == "DENIED"
        assert denied.json()["errors"][0]["detail"] == [
            {"Type": "repository", "Name": "team/app", "Action": "pull"}
        ]

        pull = Access("repository", "team/app", ("pull",))
        good = await client.get(
            "/v2/team/app/tags/list", headers={"Authorization": f"Bearer {auth_node.token(pull)}"}
        )
        assert good.status_code == 404  # authorised; the repository is just empty
        assert good.json()["errors"][0]["code"] == "NAME_UNKNOWN"
        for token, reason in (
            (auth_node.token(pull, aud="edge-2"), "wrong audience"),
            (auth_node.token(pull, now=time.time() - 3600), "expired"),
        ):
            response = await client.get(
                "/v2/team/app/tags/list", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 401
            assert reason in response.json()["errors"][0]["message"]
            assert 'error="invalid_token"' in response.headers["www-authenticate"]

        health = await client.get("/healthz")
        assert health.status_code == 200
        keys = (await client.get("/service/keys")).json()["keys"]
        assert len(keys) == 1 and keys[0]["crv"] == "Ed25519"
