"""Routing pulls to upstreams: proxy projects, containerd's ?ns= mirrors, the default."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import ConfigError, UpstreamConfig, load_config
from node.proxy.cache import Breaker
from node.proxy.router import Router
from node.proxy.transport import tls_context
from support.tls import make_tls

HUB = UpstreamConfig(
    "hub",
    "http://127.0.0.1:1",
    project="dockerhub",
    namespaces=("docker.io",),
    library_prefix=True,
)
GHCR = UpstreamConfig("ghcr", "http://127.0.0.1:2", namespaces=("ghcr.io",))


def test_proxy_project_strips_the_project() -> None:
    route = Router([HUB, GHCR]).route("dockerhub/library/nginx")
    assert route is not None
    assert (route.upstream, route.remote, route.local) == (
        HUB,
        "library/nginx",
        "dockerhub/library/nginx",
    )


def test_mirror_namespace_needs_no_prefix_and_shares_the_cache() -> None:
    router = Router([HUB, GHCR])
    route = router.route("nginx", ns="docker.io")
    assert route is not None
    assert route.remote == "library/nginx", "Docker Hub's one-segment names"
    assert route.local == router.route("dockerhub/library/nginx").local  # type: ignore[union-attr]
    ghcr = router.route("org/tool", ns="ghcr.io")
    assert ghcr is not None and ghcr.local == "ghcr/org/tool"


def test_unknown_namespace_and_plain_names_stay_local() -> None:
    router = Router([HUB, GHCR])
    assert router.route("team/app") is None
    assert router.route("team/app", ns="quay.io") is None
    assert router.route("dockerhub") is None, "a project needs a path below it"


def test_default_upstream_takes_the_rest() -> None:
    default = UpstreamConfig("mirror", "http://127.0.0.1:3", default=True, library_prefix=True)
    route = Router([default]).route("alpine")
    assert route is not None and route.remote == "library/alpine"


def test_only_proxy_projects_are_read_only() -> None:
    router = Router([HUB])
    assert router.is_proxied("dockerhub/library/nginx")
    assert not router.is_proxied("team/app")
    assert not router.is_proxied("dockerhub")


def test_two_defaults_are_refused() -> None:
    a = UpstreamConfig("a", "http://x", default=True)
    b = UpstreamConfig("b", "http://y", default=True)
    with pytest.raises(ConfigError, match="default"):
        Router([a, b])


def test_upstreams_from_toml_hide_their_password(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(
        '[[upstream]]\nname = "hub"\nurl = "http://127.0.0.1:5001"\nproject = "dockerhub"\n'
        'namespaces = ["docker.io"]\nusername = "robot"\npassword = "s3cret"\ntag_ttl = 5\n'
    )
    (upstream,) = load_config(path).upstreams
    assert upstream.namespaces == ("docker.io",) and upstream.tag_ttl == 5
    assert "s3cret" not in repr(upstream)
    path.write_text('[[upstream]]\nname = "hub"\nurl = "http://x"\nproject = "a/b"\n')
    with pytest.raises(ConfigError, match="one path segment"):
        load_config(path)


def test_tls_settings_are_checked_when_the_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    head = '[[upstream]]\nname = "hub"\nurl = "https://127.0.0.1:5001"\n'
    ca = make_tls(tmp_path / "tls").ca
    path.write_text(head + f'ca_file = "{ca}"\n')
    assert load_config(path).upstreams[0].ca_file == str(ca)
    assert tls_context() is tls_context(), "one context with the public CAs for all"
    assert tls_context(ca_file=str(ca)) is not tls_context()
    path.write_text(head + "insecure = true\n")
    assert load_config(path).upstreams[0].insecure
    for extra, message in (
        (f'ca_file = "{tmp_path / "missing.pem"}"\n', "No such file"),
        (f'ca_file = "{path}"\n', "ca_file"),  # not PEM certificates
        ('insecure = "yes"\n', "true or false"),
        (f'ca_file = "{ca}"\ninsecure = true\n', "exclude each other"),
    ):
        path.write_text(head + extra)
        with pytest.raises(ConfigError, match=message):
            load_config(path)


def test_breaker_opens_after_failures_and_lets_one_try_per_cooldown() -> None:
    now = [0.0]
    breaker = Breaker(lambda: now[0], threshold=3, cooldown=10)
    for _ in range(3):
        assert breaker.allow()
        breaker.failed()
    assert not breaker.allow()
    now[0] = 10.0
    assert breaker.allow(), "half-open after the cooldown"
    assert not breaker.allow(), "one try only"
    breaker.succeeded()
    assert breaker.allow()
