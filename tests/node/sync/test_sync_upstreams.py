"""Proxy upstreams from the policy snapshot join the config file's at start."""

from __future__ import annotations

import pytest

from node.config import NodeConfig, UpstreamConfig
from node.proxy.router import Router
from node.sync.upstreams import with_policy_upstreams


def test_snapshot_upstreams_are_added_and_the_file_wins() -> None:
    own = UpstreamConfig("hub", url="https://hub.example", project="hub", default=True)
    config = NodeConfig(upstreams=[own])
    merged = with_policy_upstreams(
        config,
        [
            {
                "name": "quay",
                "type": "quay",
                "project": "quay",
                "username": "u",
                "password": "s3cr3t",
            },
            {"name": "hub", "url": "https://other.example", "project": "x"},  # name taken
            {"name": "y", "url": "https://y.example", "project": "hub"},  # project taken
            {"name": "z", "url": "https://z.example", "default": True},  # one default only
            {"name": "bad", "type": "no-such-adapter", "url": "https://b.example"},
            {"name": "nourl", "type": "oci"},
            "not a table",
        ],
    )
    assert [u.name for u in merged.upstreams] == ["hub", "quay", "z"]
    quay = merged.upstreams[1]
    assert (quay.type, quay.project, quay.password) == ("quay", "quay", "s3cr3t")
    assert "s3cr3t" not in repr(quay)
    assert merged.upstreams[2].default is False
    router = Router(merged.upstreams)
    route = router.route("quay/org/app")
    assert route is not None and route.upstream.name == "quay"
    assert router.is_proxied("quay/org/app")
    assert config.upstreams == [own], "the original config is left alone"


@pytest.mark.parametrize("entries", [[], ()])
def test_no_snapshot_upstreams_changes_nothing(entries: list[object]) -> None:
    config = NodeConfig()
    assert with_policy_upstreams(config, entries) is config
