"""Nothing more is allowed than the role grants: the authorization matrix, end to end.

A real coordinator (SQLite) and a real node joined to it; the identities and the expected
tables are in :mod:`integration.authz_cases`. Registry actions go through the node the way
a Docker client does (the request, its ``Bearer`` challenge, ``/service/token`` with HTTP
Basic, the request again with the token): the token's grant and the node's answer must
both match the table, and a refused delete must leave the blob in place. skopeo and podman
log in with an allowed and a refused identity. Every coordinator API route of the table is
called as every identity and must answer exactly the expected status.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from integration.authz_cases import (
    API,
    API_ROUTES,
    IDENTITIES,
    PRIV_LISTED,
    REGISTRY,
    ROBOTS,
    ROLES,
)
from integration.test_coordinator_node import (
    ADMIN,
    anonymous_pull_granted,
    copy,
    run_coordinator,
    run_joined_node,
    wait_until,
)
from integration.test_node_auth import attempt
from support.clients import MANIFEST_ACCEPT
from support.images import write_image
from support.servers import Server, free_port, podman_env, run_tool

pytestmark = pytest.mark.integration

Creds = tuple[str, str] | None
REPOS = ("priv/app", "pub/app")
ACTIONS = ("pull", "push", "delete")
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


def password_of(user: str) -> str:
    return f"Secret-{user}-9A"


@dataclass(frozen=True)
class World:
    coordinator: str  # http://127.0.0.1:PORT
    node: Server
    creds: dict[str, Creds]  # identity -> Basic credentials (None: anonymous)
    user_ids: dict[str, str]  # user -> id

    @property
    def api(self) -> str:
        return f"{self.coordinator}/api/v2.0"


def _filled(value: Any, me: str, spare: str) -> Any:
    """``value`` with ``{me}`` and ``{spare}`` (the spare user's id) in every string."""
    if isinstance(value, str):
        return value.replace("{me}", me).replace("{spare}", spare)
    if isinstance(value, dict):
        return {k: _filled(v, me, spare) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, me, spare) for v in value]
    return value


async def created(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
    answer = await api.post(path, json=body)
    assert answer.status_code == 201, f"POST {path}: {answer.status_code} {answer.text}"
    return answer


async def add_project(api: httpx.AsyncClient, name: str, public: bool) -> None:
    await created(
        api, "/projects", {"project_name": name, "metadata": {"public": str(public).lower()}}
    )
    if not public:
        for user, role in ROLES.items():
            await created(
                api,
                f"/projects/{name}/members",
                {"role_id": role, "member_user": {"username": user}},
            )


async def add_users(api: httpx.AsyncClient) -> tuple[dict[str, Creds], dict[str, str]]:
    creds: dict[str, Creds] = {"anonymous": None}
    ids: dict[str, str] = {}
    for user in ("sysadmin", *ROLES, "outsider", "spare"):
        body = {
            "username": user,
            "password": password_of(user),
            "email": f"{user}@example.test",
            "realname": user,
        }
        made = await created(api, "/users", body)
        creds[user] = (user, password_of(user))
        ids[user] = made.headers["Location"].rsplit("/", 1)[1]
    flagged = await api.put(f"/users/{ids['sysadmin']}/sysadmin", json={"sysadmin_flag": True})
    assert flagged.status_code == 200, flagged.text
    return creds, ids


async def add_robots(api: httpx.AsyncClient) -> dict[str, Creds]:
    creds: dict[str, Creds] = {}
    for key, case in ROBOTS.items():
        access = [{"resource": "repository", "action": a} for a in case.actions]
        body = {
            "name": key,
            "level": "system" if case.namespace == "*" else "project",
            "duration": -1,
            "disable": case.disabled,
            "permissions": [{"kind": "project", "namespace": case.namespace, "access": access}],
        }
        made = (await created(api, "/robots", body)).json()
        creds[key] = (made["name"], made["secret"])
    return creds


def claims_of(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return claims


async def token_for(http: httpx.AsyncClient, creds: Creds, *scopes: str) -> httpx.Response:
    """The ``/service/token`` answer (of the node or the coordinator) for ``scopes``."""
    params = httpx.QueryParams({"service": "edge-1", "scope": list(scopes)})
    return await http.get("/service/token", params=params, auth=creds or httpx.USE_CLIENT_DEFAULT)


@asynccontextmanager
async def world(tmp_path: Path, skopeo: str) -> AsyncIterator[World]:
    """The coordinator, the joined node, every identity, and an image in priv and pub."""
    coordinator_port, node_port = free_port(), free_port()
    async with (
        run_coordinator(tmp_path / "coordinator", coordinator_port, tmp_path / "c.log") as url,
        httpx.AsyncClient(base_url=f"{url}/api/v2.0", auth=ADMIN, timeout=30) as api,
    ):
        creds, user_ids = await add_users(api)
        await add_project(api, "priv", public=False)
        await add_project(api, "pub", public=True)
        for me in IDENTITIES:
            await add_project(api, f"gone-{me}", public=False)
        await created(api, "/projects", {"project_name": "vault"})  # private, no members
        creds.update(await add_robots(api))
        join = (await created(api, "/nodes/join-tokens", {"description": "authz"})).json()
        async with (
            run_joined_node(tmp_path, url, join["token"], node_port) as node,
            httpx.AsyncClient(base_url=node.url, timeout=30) as http,
        ):

            async def snapshot_has_robots() -> bool:
                # a robot the snapshot holds gets a token signed by the node itself
                answer = await token_for(http, creds["rpull"])
                return (
                    answer.status_code == 200
                    and claims_of(answer.json()["token"])["iss"] != url
                    and await anonymous_pull_granted(node, "pub/app")
                )

            await wait_until(snapshot_has_robots, 15, "the robots and pub in the node's snapshot")
            image = write_image(tmp_path / "image", "v1", layer_sizes=(4096,))
            for repo in REPOS:
                target = f"docker://{node.address}/{repo}:v1"
                code, out = await copy(skopeo, f"oci:{image.layout}:v1", target, ":".join(ADMIN))
                assert code == 0, out
            yield World(url, node, creds, user_ids)


async def docker_request(
    http: httpx.AsyncClient, creds: Creds, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    """``method path`` as a Docker client makes it: on a 401 challenge, get a token from
    its realm (HTTP Basic with ``creds``) and try once more; a refused login is returned."""
    first = await http.request(method, path, **kwargs)
    if first.status_code != 401:
        return first
    challenge = dict(_CHALLENGE.findall(first.headers["www-authenticate"]))
    params = {"service": challenge["service"], "scope": challenge["scope"]}
    auth = creds or httpx.USE_CLIENT_DEFAULT
    answer = await http.get(challenge["realm"], params=params, auth=auth)
    if answer.status_code != 200:
        return answer
    headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {answer.json()['token']}"}
    return await http.request(method, path, headers=headers, **kwargs)


def blob_of(me: str, repo: str) -> tuple[bytes, str]:
    data = f"blob of {me} in {repo}".encode()
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def expected_registry(me: str) -> set[tuple[str, str]]:
    priv, pub, catalog = REGISTRY[me]
    out = {("priv/app", a) for a in priv.split()} | {("pub/app", a) for a in pub.split()}
    return out | ({("catalog", "*")} if catalog else set())


async def grants(http: httpx.AsyncClient, w: World) -> dict[str, set[tuple[str, str]] | int]:
    """identity -> (repository or ``catalog``, action) its token holds, or the refusal."""
    everything = [f"repository:{r}:pull,push,delete" for r in REPOS] + ["registry:catalog:*"]
    granted: dict[str, set[tuple[str, str]] | int] = {}
    for me in IDENTITIES:
        answer = await token_for(http, w.creds[me], *everything)
        if answer.status_code != 200:
            granted[me] = answer.status_code
            continue
        access = claims_of(answer.json()["token"])["access"]
        granted[me] = {(e["name"], a) for e in access for a in e["actions"]}
    return granted


async def test_token_grants_match_the_table(tmp_path: Path, skopeo: str) -> None:
    """The node's token endpoint (robots from its snapshot, users via the coordinator) and
    the coordinator's own grant exactly the table; wrong secrets get nothing."""
    async with world(tmp_path, skopeo) as w:
        expected: dict[str, set[tuple[str, str]] | int] = {
            me: expected_registry(me) for me in IDENTITIES
        }
        expected["rdisabled"] = 401
        for base in (w.node.url, w.coordinator):
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                assert await grants(http, w) == expected, base
                for me in ("developer", "rpush", "rsystem", "rdisabled"):
                    name = (w.creds[me] or ("", ""))[0]
                    wrong = await token_for(
                        http, (name, "Wrong-secret-1"), "repository:pub/app:pull"
                    )
                    assert wrong.status_code == 401, (base, me, wrong.text)
                    assert "disabled" not in wrong.text, "a wrong secret learnt the state"
                disabled = await token_for(http, w.creds["rdisabled"], "repository:pub/app:pull")
                assert "disabled" in disabled.json()["errors"][0]["message"]


async def test_registry_actions_through_the_node(tmp_path: Path, skopeo: str) -> None:
    async with (
        world(tmp_path, skopeo) as w,
        httpx.AsyncClient(base_url=w.node.url, timeout=30) as http,
    ):
        for me in IDENTITIES:  # the blobs each identity will try to delete
            for repo in REPOS:
                data, digest = blob_of(me, repo)
                pushed = await docker_request(
                    http, ADMIN, "POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", content=data
                )
                assert pushed.status_code == 201, pushed.text
        allowed: dict[str, set[tuple[str, str]]] = {}
        unexpected: list[str] = []
        for me in IDENTITIES:
            creds, mine = w.creds[me], set()
            for repo in REPOS:
                data, digest = blob_of(me, repo)
                attempts = {
                    "pull": ("GET", f"/v2/{repo}/manifests/v1", 200, {}),
                    "push": (
                        "POST",
                        f"/v2/{repo}/blobs/uploads/?digest={blob_of('push ' + me, repo)[1]}",
                        201,
                        {"content": blob_of("push " + me, repo)[0]},
                    ),
                    "delete": ("DELETE", f"/v2/{repo}/blobs/{digest}", 202, {}),
                }
                for action, (method, path, ok, extra) in attempts.items():
                    headers = {"Accept": MANIFEST_ACCEPT}
                    answer = await docker_request(
                        http, creds, method, path, headers=headers, **extra
                    )
                    if answer.status_code == ok:
                        mine.add((repo, action))
                    elif answer.status_code != (401 if me == "rdisabled" else 403):
                        unexpected.append(f"{me} {action} {repo}: {answer.status_code}")
            catalog = await docker_request(http, creds, "GET", "/v2/_catalog")
            if catalog.status_code == 200:
                mine.add(("catalog", "*"))
                assert set(catalog.json()["repositories"]) >= set(REPOS)
            allowed[me] = mine
        assert unexpected == []
        assert allowed == {me: expected_registry(me) for me in IDENTITIES}
        await check_hidden_and_mounts(http, w)
        for me in IDENTITIES:  # a refused delete left the blob in place
            for repo in REPOS:
                digest = blob_of(me, repo)[1]
                head = await docker_request(http, ADMIN, "HEAD", f"/v2/{repo}/blobs/{digest}")
                gone = (repo, "delete") in allowed[me]
                assert head.status_code == (404 if gone else 200), (me, repo)


async def check_hidden_and_mounts(http: httpx.AsyncClient, w: World) -> None:
    """An outsider cannot tell priv from a project that does not exist, and no pusher
    mounts a blob from a repository it may not pull."""
    answers = []
    for repo in ("priv/app", "nosuch/app"):
        answer = await docker_request(http, w.creds["outsider"], "GET", f"/v2/{repo}/tags/list")
        errors = answer.json()["errors"]
        answers.append((answer.status_code, [(e["code"], e["message"]) for e in errors]))
    assert answers[0] == answers[1] and answers[0][0] == 403, answers
    data, digest = blob_of("vault", "vault/app")
    stored = await docker_request(
        http, ADMIN, "POST", f"/v2/vault/app/blobs/uploads/?digest={digest}", content=data
    )
    assert stored.status_code == 201, stored.text
    for me in ("developer", "rdelete"):
        mount = f"/v2/priv/app/blobs/uploads/?mount={digest}&from=vault/app"
        answer = await docker_request(http, w.creds[me], "POST", mount)
        assert answer.status_code in (202, 403), (me, answer.status_code, answer.text)
        head = await docker_request(http, ADMIN, "HEAD", f"/v2/priv/app/blobs/{digest}")
        assert head.status_code == 404, f"{me} mounted a blob of vault/app into priv/app"


async def test_skopeo_and_podman_logins(tmp_path: Path, skopeo: str, podman: str) -> None:
    async with world(tmp_path, skopeo) as w:
        image = write_image(tmp_path / "two", "v2", layer_sizes=(8192,))
        source, node = f"oci:{image.layout}:v2", w.node.address

        def creds(me: str) -> str:
            found = w.creds[me]
            assert found is not None
            return ":".join(found)

        code, out = await copy(skopeo, source, f"docker://{node}/priv/app:v2", creds("developer"))
        assert code == 0, out
        code, out = await copy(skopeo, source, f"docker://{node}/priv/app:v3", creds("guest"))
        assert code != 0 and "denied" in out, out
        back = f"oci:{tmp_path / 'back'}:v2"
        code, out = await copy(skopeo, f"docker://{node}/priv/app:v2", back, creds("limited"))
        assert code == 0, out
        code, out = await copy(skopeo, f"docker://{node}/priv/app:v2", back, creds("outsider"))
        assert code != 0 and "denied" in out, out

        env = podman_env(tmp_path / "podman", [node])
        authfile = str(tmp_path / "auth.json")
        login = [podman, "login", "--tls-verify=false", "--authfile", authfile]
        name, secret = w.creds["rpull"] or ("", "")
        await run_tool([*login, "-u", name, "-p", secret, node], env=env)
        pull = [podman, "pull", "--quiet", "--tls-verify=false", "--authfile", authfile]
        await run_tool([*pull, f"{node}/priv/app:v2"], env=env)
        inspected = await run_tool([podman, "image", "inspect", f"{node}/priv/app:v2"], env=env)
        assert json.loads(inspected)[0]["Digest"] == image.manifest_digest
        name, secret = w.creds["rdisabled"] or ("", "")
        code, stderr = await attempt([*login, "-u", name, "-p", secret, node], env)
        assert code != 0 and "invalid username/password" in stderr, stderr


async def test_api_routes_for_every_identity(tmp_path: Path, skopeo: str) -> None:
    async with (
        world(tmp_path, skopeo) as w,
        httpx.AsyncClient(base_url=w.api, auth=ADMIN, timeout=30) as admin,
    ):
        answers: dict[str, str] = {}
        spare = w.user_ids["spare"]
        for me in IDENTITIES:
            auth = w.creds[me] or httpx.USE_CLIENT_DEFAULT
            statuses = []
            async with httpx.AsyncClient(base_url=w.api, timeout=30) as http:
                for column, (method, path, body) in API_ROUTES.items():
                    answer = await http.request(
                        method,
                        _filled(path, me, spare),
                        json=_filled(body, me, spare),
                        auth=auth,
                    )
                    status = str(answer.status_code)
                    if column == "audit" and answer.status_code == 200:
                        status += "+" if answer.json() else "-"
                    statuses.append(status)
                    await undo(admin, column, answer)
            answers[me] = " ".join(statuses)
        assert answers == API
        await check_listings(w)


async def undo(admin: httpx.AsyncClient, column: str, answer: httpx.Response) -> None:
    """Take back what an allowed call added, so the next identity meets the same state."""
    if answer.status_code != 201 or column not in ("addmember", "addrobot", "registry"):
        return
    location = answer.headers["Location"].removeprefix("/api/v2.0")
    removed = await admin.delete(location)
    assert removed.status_code == 200, removed.text


async def check_listings(w: World) -> None:
    """``GET /projects`` and ``GET /repositories`` show priv to exactly its members."""
    async with httpx.AsyncClient(base_url=w.api, auth=ADMIN, timeout=30) as admin:

        async def indexed() -> bool:
            found = (await admin.get("/repositories", params={"page_size": 100})).json()
            return "priv/app" in {r["name"] for r in found}

        await wait_until(indexed, 15, "priv/app in the coordinator's repository index")
    seen: dict[str, bool] = {}
    for me in PRIV_LISTED:
        auth = w.creds[me] or httpx.USE_CLIENT_DEFAULT
        async with httpx.AsyncClient(base_url=w.api, timeout=30) as http:
            listed = (await http.get("/projects", params={"page_size": 100}, auth=auth)).json()
            repos = (await http.get("/repositories", params={"page_size": 100}, auth=auth)).json()
            in_projects = "priv" in {p["name"] for p in listed}
            in_repos = "priv/app" in {r["name"] for r in repos}
            assert in_projects == in_repos, me
            seen[me] = in_projects
    assert seen == PRIV_LISTED
