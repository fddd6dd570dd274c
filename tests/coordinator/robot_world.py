"""Setup helpers shared by the robot and token service tests: users, projects, members and
robots created through the coordinator's own API (httpx signed in as admin)."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["PASSWORD", "add_member", "new_project", "new_robot", "new_user"]

PASSWORD = "Passw0rdPassw0rd"


async def new_user(admin: httpx.AsyncClient, name: str) -> None:
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    response = await admin.post("/users", json=body)
    assert response.status_code == 201, response.text


async def new_project(admin: httpx.AsyncClient, name: str, *, public: bool = False) -> int:
    body = {"project_name": name, "metadata": {"public": "true" if public else "false"}}
    response = await admin.post("/projects", json=body)
    assert response.status_code == 201, response.text
    return int(response.headers["Location"].rsplit("/", 1)[1])


async def add_member(admin: httpx.AsyncClient, project: str, username: str, role_id: int) -> None:
    body = {"role_id": role_id, "member_user": {"username": username}}
    response = await admin.post(f"/projects/{project}/members", json=body)
    assert response.status_code == 201, response.text


async def new_robot(
    client: httpx.AsyncClient,
    name: str,
    *,
    level: str,
    namespace: str,
    access: list[tuple[str, str]],
    **extra: Any,
) -> dict[str, Any]:
    """Create a robot; the ``RobotCreated`` answer (with the secret)."""
    body = {
        "name": name,
        "level": level,
        "permissions": [
            {
                "kind": "project",
                "namespace": namespace,
                "access": [{"resource": r, "action": a} for r, a in access],
            }
        ],
        **extra,
    }
    response = await client.post("/robots", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
