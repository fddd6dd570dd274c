"""The adapter factory: every type builds its client from an AdapterSpec, declares its
capabilities, and refuses a bad spec by naming what is wrong; the generic client's
catalog (``_catalog`` with Link pages and the catalog token scope); node config's
``type`` and ``options``."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fronts import harness
from fronts.common import Clock, TokenFlow

from adapters.artifactory import ArtifactoryClient
from adapters.base import RepositoryLister, Upstream
from adapters.dockerhub import DockerHubClient
from adapters.ghcr import GHCRClient
from adapters.gitlab import GitLabClient
from adapters.harbor import HarborClient
from adapters.oci import OCIClient
from adapters.quay import QuayClient
from adapters.registry import ADAPTERS, AdapterSpec, Capability, capabilities, create_upstream
from node.config import ConfigError, load_config

CLASSES: dict[str, type[OCIClient]] = {
    "oci": OCIClient,
    "distribution": OCIClient,
    "portmesh": OCIClient,
    "docker-hub": DockerHubClient,
    "ghcr": GHCRClient,
    "quay": QuayClient,
    "gitlab": GitLabClient,
    "harbor": HarborClient,
    "artifactory": ArtifactoryClient,
}
URL = "https://registry.example"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.mark.parametrize("kind", sorted(CLASSES))
async def test_each_type_builds_its_client(kind: str, http: httpx.AsyncClient) -> None:
    options = {"repository_key": "docker-remote"} if kind == "artifactory" else {}
    spec = AdapterSpec(type=kind, url=URL, username="u", password="s3cret", options=options)
    client = create_upstream(spec, http=http)
    assert type(client) is CLASSES[kind]
    assert isinstance(client, Upstream) and isinstance(client, RepositoryLister)
    module = importlib.import_module(ADAPTERS[kind])
    assert module.TYPE in ADAPTERS and ADAPTERS[module.TYPE] == ADAPTERS[kind]
    assert Capability.PULL in capabilities(kind) and Capability.LIST_TAGS in capabilities(kind)
    assert "s3cret" not in repr(client)
    assert client.base_url == URL
    await client.aclose()
    await client.aclose()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (AdapterSpec(type="nope", url=URL), "unknown upstream type 'nope'"),
        (AdapterSpec(type="oci"), "'oci': url is required"),
        (AdapterSpec(type="harbor"), "'harbor': url is required"),
        (AdapterSpec(type="oci", url="ftp://x"), "url must start with http"),
        (AdapterSpec(type="quay", options={"nmespace": "x"}), "unknown option\\(s\\) nmespace"),
        (AdapterSpec(type="oci", url=URL, options={"tag_page_size": "9"}), "'tag_page_size' must"),
        (AdapterSpec(type="oci", url=URL, options={"tag_page_size": 0}), "must be >= 1"),
        (AdapterSpec(type="oci", url=URL, username="u"), "username given without password"),
        (AdapterSpec(type="oci", url=URL, password="p"), "password given without username"),
    ],
)
async def test_a_bad_spec_names_the_problem(
    spec: AdapterSpec, message: str, http: httpx.AsyncClient
) -> None:
    with pytest.raises(ValueError, match=message):
        create_upstream(spec, http=http)


async def test_public_registries_have_default_urls(http: httpx.AsyncClient) -> None:
    for kind, url in (
        ("docker-hub", "https://registry-1.docker.io"),
        ("ghcr", "https://ghcr.io"),
        ("quay", "https://quay.io"),
        ("gitlab", "https://registry.gitlab.com"),
    ):
        client = create_upstream(AdapterSpec(type=kind), http=http)
        assert client.base_url == url  # type: ignore[attr-defined]


@pytest.mark.integration
async def test_catalog_pages_with_the_catalog_scope(tmp_path: Path) -> None:
    def flow(clock: Clock) -> TokenFlow:
        return TokenFlow({"ci": "pw"}, clock=clock)

    async with harness.stage(tmp_path, flow) as st:
        for repo in ("a/one", "b/two", "c/three", "d/four", "e/five"):
            await st.push(repo, size=10)
        client = st.client("distribution", username="ci", password="pw")
        assert isinstance(client, OCIClient)
        everything = ["a/one", "b/two", "c/three", "d/four", "e/five"]
        assert await client.list_repositories() == everything
        assert await client.list_repositories(n=2) == ["a/one", "b/two"]
        assert await client.list_repositories(n=2, last="b/two") == ["c/three", "d/four"]
        paged = st.client("oci", username="ci", password="pw", options={"tag_page_size": 2})
        before = st.front.hits["/v2/_catalog"]
        assert await paged.list_repositories() == everything  # type: ignore[attr-defined]
        assert st.front.hits["/v2/_catalog"] - before == 4, "the challenge, then 3 pages"
        grants = [grant.scopes for grant in st.provider.grants.values()]
        assert frozenset({"registry:catalog:*"}) in grants


def test_node_config_type_and_options(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(
        '[[upstream]]\nname = "hub"\ntype = "docker-hub"\nproject = "hub"\n'
        '[upstream.options]\nnamespace = "team"\n'
        '[[upstream]]\nname = "plain"\nurl = "http://127.0.0.1:5000"\n'
    )
    hub, plain = load_config(path).upstreams
    assert (hub.type, dict(hub.options), hub.url) == ("docker-hub", {"namespace": "team"}, "")
    assert (plain.type, dict(plain.options)) == ("oci", {})

    for text, message in (
        ('name = "x"\nurl = "http://h"\ntype = "dockerhub"', "upstream x: type 'dockerhub'"),
        ('name = "x"\ntype = "oci"', "upstream x: url is required"),
        ('name = "x"\nurl = "http://h"\noptions = "a"', "upstream x: options must be a table"),
    ):
        path.write_text(f"[[upstream]]\n{text}\n")
        with pytest.raises(ConfigError, match=message):
            load_config(path)
