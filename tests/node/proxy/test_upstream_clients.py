"""UpstreamClients.apply swaps the upstream set while the node serves; Router.update too."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from node.config import ConfigError, UpstreamConfig
from node.proxy.clients import open_upstream_clients
from node.proxy.router import Router

HUB = UpstreamConfig("hub", url="http://127.0.0.1:1", project="hub")
QUAY = UpstreamConfig("quay", type="quay", project="quay", username="u", password="p")


async def test_apply_keeps_unchanged_clients_and_retires_the_others_after_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_upstream_clients([HUB], grace=60) as clients:
        hub = clients["hub"]
        assert clients.apply([HUB, QUAY]) == []
        assert clients["hub"] is hub, "unchanged settings keep the client"
        assert set(clients) == {"hub", "quay"}
        changed = UpstreamConfig("hub", url="http://127.0.0.1:2", project="hub")
        clients.apply([changed])
        assert set(clients) == {"hub"} and clients["hub"] is not hub
        old_http = hub.http  # type: ignore[attr-defined]
        await trio.sleep(59)
        assert not old_http.is_closed, "requests still using the old client may finish"
        await trio.sleep(2)
        assert old_http.is_closed
        current = clients["hub"].http  # type: ignore[attr-defined]
    assert current.is_closed


async def test_a_bad_upstream_is_left_out_or_refused_when_strict() -> None:
    bad = UpstreamConfig("bad", type="ecr", project="bad")  # ECR needs a region and keys
    async with open_upstream_clients([]) as clients:
        assert clients.apply([HUB, bad]) == ["bad"]
        assert set(clients) == {"hub"}
        with pytest.raises(ConfigError, match="upstream bad"):
            clients.apply([bad], strict=True)


def test_router_update_swaps_routes_and_refuses_clashes() -> None:
    router = Router()
    assert not router and router.route("hub/library/alpine") is None
    router.update([HUB])
    route = router.route("hub/library/alpine")
    assert route is not None and route.remote == "library/alpine"
    assert router.is_proxied("hub/x")
    with pytest.raises(ConfigError):
        router.update([HUB, HUB])
    assert router.is_proxied("hub/x"), "a refused update changes nothing"
    router.update([])
    assert router.route("hub/library/alpine") is None and not router.is_proxied("hub/x")
