"""Schema-driven fuzzing of the real coordinator (SQLite) with schemathesis, as admin.

Every operation of the served OpenAPI document gets generated requests (parameters,
headers, bodies from the documented schemas) in four passes: valid and invalid data
(schemathesis' positive and negative modes), each once with generated path parameters and
once with them pinned to resources created first (a project, a member, a user, a
registry), so bodies reach the handlers of existing things. Each response must be no
server error, carry a documented status code and content type, and match the documented
schema. Hypothesis is derandomized and does not shrink, so a run is repeatable and
bounded; schemathesis' requests run in a worker thread while the server runs in the
test's trio nursery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
import trio
from coordinator_fixtures import Coordinator
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

MAX_EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
PASSES = [
    (GenerationMode.POSITIVE, False),
    (GenerationMode.NEGATIVE, False),
    (GenerationMode.POSITIVE, True),
    (GenerationMode.NEGATIVE, True),
]
_ORDER = {"get": 0, "head": 0, "post": 1, "put": 2, "patch": 2, "delete": 3}


@dataclass
class Seeds:
    """Path parameter values that name existing resources."""

    values: dict[str, Any] = field(default_factory=dict)


async def _seed(admin: httpx.AsyncClient) -> Seeds:
    assert (await admin.post("/projects", json={"project_name": "fuzz"})).status_code == 201
    user = {"username": "fuzzer", "password": "Fuzzing12345", "email": "f@example.com"}
    created = await admin.post("/users", json=user)
    assert created.status_code == 201
    user_id = int(created.headers["Location"].rsplit("/", 1)[1])
    member = {"role_id": 2, "member_user": {"username": "fuzzer"}}
    added = await admin.post("/projects/fuzz/members", json=member)
    assert added.status_code == 201
    registry = {"name": "fuzzreg", "url": "http://127.0.0.1:1", "type": "docker-registry"}
    reg = await admin.post("/registries", json=registry)
    assert reg.status_code == 201, reg.text
    return Seeds(
        {
            "project_name_or_id": "fuzz",
            "mid": int(added.headers["Location"].rsplit("/", 1)[1]),
            "user_id": user_id,
            "registry_id": int(reg.headers["Location"].rsplit("/", 1)[1]),
            "name": "public",
        }
    )


def _fuzz(
    document: dict[str, Any], base_url: str, auth: tuple[str, str], seeds: Seeds
) -> tuple[list[str], dict[int, int]]:
    """Run every operation: the failures, one line each, and the count of each status."""
    schema = schemathesis.openapi.from_dict(document)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    operations.sort(key=lambda op: (_ORDER.get(op.method.lower(), 1), op.path))
    session = requests.Session()
    session.auth = auth
    failures: list[str] = []
    statuses: dict[int, int] = {}
    for mode, pinned in PASSES:
        for operation in operations:
            names = {p.name for p in operation.path_parameters}
            fixed = {k: v for k, v in seeds.values.items() if k in names} if pinned else {}
            if pinned and not fixed:
                continue

            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(mode, path_parameters=fixed or None))
            def run(case: schemathesis.Case) -> None:
                response = case.call(base_url=base_url, session=session, timeout=10)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                case.validate_response(response, checks=CHECKS)

            try:
                run()
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label} ({mode.value}, pinned={pinned}): {exc}")
    session.close()
    return failures, statuses


@pytest.mark.parametrize("database_url", [None], ids=["sqlite"])  # handlers, not engines
async def test_fuzz_every_operation(
    coordinator: Coordinator, admin_http: httpx.AsyncClient
) -> None:
    seeds = await _seed(admin_http)
    document = (await admin_http.get("/swagger.json")).json()
    auth = ("admin", coordinator.admin_password)
    failures, statuses = await trio.to_thread.run_sync(
        _fuzz, document, coordinator.api, auth, seeds
    )
    assert failures == [], "\n\n".join(failures)
    # the run reached handlers (successes and refusals), and the server is still healthy
    assert sum(n for code, n in statuses.items() if code < 300) > 100, statuses
    assert sum(n for code, n in statuses.items() if 400 <= code < 500) > 100, statuses
    assert (await admin_http.get("/health")).json()["status"] == "healthy"


async def _exchange(stream: trio.SocketStream, head: bytes, body: bytes) -> bytes:
    """Send a request's head, then (a moment later) its body; the response's status line."""
    await stream.send_all(head)
    await trio.sleep(0.2)  # the router has answered by now
    await stream.send_all(body)
    data = b""
    with trio.fail_after(5):
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(65536)
            assert chunk, "connection closed"
            data += chunk
        head_part, _, rest = data.partition(b"\r\n\r\n")
        length = int(
            next(
                line.split(b":", 1)[1]
                for line in head_part.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
        )
        while len(rest) < length:
            rest += await stream.receive_some(65536)
    return head_part.split(b"\r\n", 1)[0]


async def test_keep_alive_survives_an_answer_sent_before_the_body(
    coordinator: Coordinator,
) -> None:
    """A 404 from the router goes out before the request body arrives; the next request on
    the same connection is still answered (found by the fuzz run: it used to hang)."""
    host, port = coordinator.url.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        for path in ("/api/v2.0/robots/-1", "/api/v2.0/users/99999999999", "/api/v2.0/ping"):
            head = (
                f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                "Content-Length: 2\r\n\r\n"
            ).encode()
            status = await _exchange(stream, head, b"{}")
            assert status in (b"HTTP/1.1 404 ", b"HTTP/1.1 405 "), status


async def test_numbers_beyond_the_id_range_are_refused(admin_http: httpx.AsyncClient) -> None:
    """Ids and pages too large for the database are a 404 or a 400, never a 500 (both
    found by the fuzz run), for every method of an id route."""
    big = str(2**31)
    for method in ("GET", "PUT", "DELETE"):
        response = await admin_http.request(method, f"/users/{big}", json={})
        assert response.status_code == 404, (method, response.text)
        assert response.json()["errors"][0]["code"] == "NOT_FOUND"
    assert (await admin_http.get(f"/projects/{big}")).status_code == 404
    assert (await admin_http.get("/projects/\u00b2")).status_code == 404  # a digit, not 0-9
    assert (await admin_http.get("/projects", params={"page": 2**62})).status_code == 400
    ping = await admin_http.post("/registries/ping", json={"id": 2**70})
    assert ping.status_code == 404
    project = {"project_name": "big", "registry_id": 2**40, "storage_limit": 2**64}
    created = await admin_http.post("/projects", json=project)
    assert created.status_code == 400, created.text
    member = {"role_id": 2, "member_user": {"user_id": 2**40}}
    assert (await admin_http.post("/projects", json={"project_name": "big"})).status_code == 201
    assert (await admin_http.post("/projects/big/members", json=member)).status_code == 400
