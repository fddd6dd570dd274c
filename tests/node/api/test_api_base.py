"""The base endpoint, health, metrics and repository-name validation."""

from __future__ import annotations

import httpx
import pytest
from oci_helpers import RunningNode, assert_error, push_blob, push_image, raw_request


async def test_base_endpoint_answers_200_with_api_version(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


async def test_base_endpoint_answers_head(client: httpx.AsyncClient) -> None:
    response = await client.head("/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200


async def test_metrics_count_requests(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert (await client.get("/v2/")).status_code == 200
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = [line for line in response.text.splitlines() if line and not line.startswith("#")]
    assert samples, "no metric samples"
    request_counters = [
        line
        for line in samples
        if "request" in line.split("{")[0] and line.split("{")[0].endswith("_total")
    ]
    assert request_counters, f"no *request*_total counter in:\n{response.text[:2000]}"
    total = sum(float(line.rsplit(" ", 1)[1]) for line in request_counters)
    assert total >= 3


async def test_unknown_route_is_404_not_500(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/library/alpine/nonsense/x")
    assert response.status_code == 404


BAD_NAMES = [
    pytest.param("Upper/case", id="uppercase"),
    pytest.param("a" * 256, id="too-long"),
    pytest.param("a" * 130 + "/" + "b" * 130, id="too-long-two-segments"),
    pytest.param("-lead", id="leading-separator"),
    pytest.param("trail_", id="trailing-separator"),
    pytest.param("a..b", id="double-dot-inside"),
    pytest.param("a___b", id="triple-underscore"),
]


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_invalid_names_are_name_invalid(client: httpx.AsyncClient, name: str) -> None:
    for response in (
        await client.get(f"/v2/{name}/tags/list"),
        await client.get(f"/v2/{name}/manifests/latest"),
        await client.head(f"/v2/{name}/blobs/sha256:{'0' * 64}"),
        await client.post(f"/v2/{name}/blobs/uploads/"),
    ):
        if response.request.method == "HEAD":
            assert response.status_code == 400
        else:
            assert_error(response, 400, "NAME_INVALID")


async def test_longest_valid_name_is_accepted(client: httpx.AsyncClient) -> None:
    name = "a" * 127 + "/" + "b" * 127  # 255 characters
    digest = await push_blob(client, name, b"long name")
    assert (await client.head(f"/v2/{name}/blobs/{digest}")).status_code == 200


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/v2/a/../b/tags/list", id="dotdot"),
        pytest.param("/v2/a/%2E%2E/b/tags/list", id="dotdot-encoded"),
        pytest.param("/v2/../v2/a/tags/list", id="dotdot-leading"),
        pytest.param("/v2/a//b/tags/list", id="empty-segment"),
        pytest.param("/v2//a/tags/list", id="empty-first-segment"),
        pytest.param("/v2/a/b/%2Fc/tags/list", id="encoded-slash"),
        pytest.param("/v2/a/./b/tags/list", id="dot"),
    ],
)
async def test_path_tricks_in_names_are_rejected(node: RunningNode, target: str) -> None:
    """The spec's name grammar has no empty or dot segments: 400 NAME_INVALID, or 404
    when the router cannot match at all; never a 2xx and never a 5xx."""
    await push_image(node.client, "a/b", "latest")
    await push_image(node.client, "b", "latest")
    status, body = await raw_request(node.port, "GET", target)
    assert status in (400, 404), (status, body[:300])
    if status == 400:
        assert b"NAME_INVALID" in body
