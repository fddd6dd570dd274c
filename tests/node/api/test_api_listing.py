"""Tag listing and the catalog: ordering, ``n``/``last`` pagination, ``Link`` headers."""

from __future__ import annotations

import re

import httpx
import pytest
from oci_helpers import assert_error, push_blob, push_image, push_manifest

REPO = "library/tagged"
TAGS = ["v1", "alpha", "Zeta", "beta", "1.0", "latest", "v10", "v2", "_under"]


def next_link(response: httpx.Response) -> str | None:
    link = response.headers.get("Link")
    if link is None:
        return None
    match = re.fullmatch(r'\s*<([^>]+)>\s*;\s*rel="?next"?\s*', link)
    assert match, f"malformed Link header {link!r}"
    return match.group(1)


async def push_tags(client: httpx.AsyncClient, repo: str, tags: list[str]) -> None:
    pushed = await push_image(client, repo, tags[0])
    for tag in tags[1:]:
        assert (await push_manifest(client, repo, tag, pushed.body)).status_code == 201


async def test_tags_list_is_sorted(client: httpx.AsyncClient) -> None:
    await push_tags(client, REPO, TAGS)
    response = await client.get(f"/v2/{REPO}/tags/list")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"name": REPO, "tags": sorted(TAGS)}
    assert "Link" not in response.headers


async def test_tags_pagination_follows_link(client: httpx.AsyncClient) -> None:
    await push_tags(client, REPO, TAGS)
    seen: list[str] = []
    url: str | None = f"/v2/{REPO}/tags/list?n=2"
    pages = 0
    while url is not None:
        response = await client.get(url)
        assert response.status_code == 200
        page = response.json()["tags"]
        assert len(page) <= 2
        seen += page
        url = next_link(response)
        if url is not None:
            assert httpx.URL(url).path == f"/v2/{REPO}/tags/list"
            assert httpx.URL(url).params["n"] == "2"
        pages += 1
        assert pages <= len(TAGS) + 1
    assert seen == sorted(TAGS)


async def test_tags_n_and_last(client: httpx.AsyncClient) -> None:
    await push_tags(client, REPO, TAGS)
    ordered = sorted(TAGS)
    response = await client.get(f"/v2/{REPO}/tags/list", params={"n": 3, "last": ordered[1]})
    assert response.status_code == 200
    assert response.json()["tags"] == ordered[2:5]
    link = next_link(response)
    assert link is not None
    assert httpx.URL(link).params["last"] == ordered[4]


async def test_tags_last_only(client: httpx.AsyncClient) -> None:
    await push_tags(client, REPO, TAGS)
    ordered = sorted(TAGS)
    response = await client.get(f"/v2/{REPO}/tags/list", params={"last": "beta"})
    assert response.json()["tags"] == [t for t in ordered if t > "beta"]


async def test_tags_last_page_has_no_link(client: httpx.AsyncClient) -> None:
    await push_tags(client, REPO, TAGS)
    response = await client.get(f"/v2/{REPO}/tags/list", params={"n": len(TAGS)})
    assert response.json()["tags"] == sorted(TAGS)
    assert "Link" not in response.headers


async def test_tags_n_zero_is_empty(client: httpx.AsyncClient) -> None:
    await push_tags(client, REPO, TAGS)
    response = await client.get(f"/v2/{REPO}/tags/list", params={"n": 0})
    assert response.status_code == 200
    assert response.json()["tags"] == []


async def test_tags_last_past_the_end_is_empty(client: httpx.AsyncClient) -> None:
    await push_tags(client, REPO, TAGS)
    response = await client.get(f"/v2/{REPO}/tags/list", params={"last": "zzz"})
    assert response.status_code == 200
    assert response.json()["tags"] == []
    assert "Link" not in response.headers


@pytest.mark.parametrize("n", ["-1", "abc", "1.5"])
async def test_tags_bad_n_is_400(client: httpx.AsyncClient, n: str) -> None:
    await push_tags(client, REPO, ["v1"])
    response = await client.get(f"/v2/{REPO}/tags/list", params={"n": n})
    assert response.status_code == 400


async def test_tags_of_unknown_repo_is_name_unknown(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v2/no/such/repo/tags/list"), 404, "NAME_UNKNOWN")


async def test_tags_of_repo_with_only_blobs(client: httpx.AsyncClient) -> None:
    await push_blob(client, REPO, b"blob only")
    response = await client.get(f"/v2/{REPO}/tags/list")
    assert response.status_code in (200, 404)
    if response.status_code == 200:
        assert response.json()["tags"] in ([], None)


async def test_deleted_tag_is_not_listed(client: httpx.AsyncClient) -> None:
    await push_tags(client, REPO, ["a", "b"])
    assert (await client.delete(f"/v2/{REPO}/manifests/a")).status_code == 202
    assert (await client.get(f"/v2/{REPO}/tags/list")).json()["tags"] == ["b"]


# --- catalog ---------------------------------------------------------------------------

REPOS = ["zeta/app", "alpha", "library/busybox", "alpha/nested", "m-x"]


async def test_catalog_lists_repositories_sorted(client: httpx.AsyncClient) -> None:
    for repo in REPOS:
        await push_image(client, repo, "v1")
    response = await client.get("/v2/_catalog")
    assert response.status_code == 200
    assert response.json() == {"repositories": sorted(REPOS)}


async def test_catalog_pagination(client: httpx.AsyncClient) -> None:
    for repo in REPOS:
        await push_image(client, repo, "v1")
    seen: list[str] = []
    url: str | None = "/v2/_catalog?n=2"
    pages = 0
    while url is not None:
        response = await client.get(url)
        assert response.status_code == 200
        page = response.json()["repositories"]
        assert len(page) <= 2
        seen += page
        url = next_link(response)
        if url is not None:
            assert httpx.URL(url).path == "/v2/_catalog"
        pages += 1
        assert pages <= len(REPOS) + 1
    assert seen == sorted(REPOS)


async def test_catalog_n_and_last(client: httpx.AsyncClient) -> None:
    for repo in REPOS:
        await push_image(client, repo, "v1")
    ordered = sorted(REPOS)
    response = await client.get("/v2/_catalog", params={"n": 2, "last": ordered[0]})
    assert response.json()["repositories"] == ordered[1:3]
    link = next_link(response)
    assert link is not None
    assert httpx.URL(link).params["last"] == ordered[2]


async def test_catalog_of_empty_registry(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/_catalog")
    assert response.status_code == 200
    assert response.json()["repositories"] == []
