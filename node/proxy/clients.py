"""The upstream clients of a node: one pooled HTTP client and one registry client each.

``UpstreamClients`` is a read-only mapping (upstream name -> :class:`adapters.base.Upstream`)
whose set can change while the node serves: :meth:`UpstreamClients.apply` opens clients
for new or changed upstreams at once and closes the clients it replaced or dropped after
``grace`` seconds, so that requests already using them finish. A policy snapshot that
adds a proxy-cache project therefore takes effect without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager

import httpx
import trio

from adapters.base import Upstream
from node.config import ConfigError, UpstreamConfig
from node.proxy.transport import upstream_transport

__all__ = ["UpstreamClients", "open_upstream_clients"]

log = logging.getLogger("portmesh.node.proxy")

#: how long a replaced client stays open for the requests that still use it
GRACE = 120.0


class UpstreamClients(Mapping[str, Upstream]):
    def __init__(self, nursery: trio.Nursery, grace: float = GRACE) -> None:
        self._nursery = nursery
        self._grace = grace
        self._clients: dict[str, Upstream] = {}
        self._http: dict[str, httpx.AsyncClient] = {}
        self._configs: dict[str, UpstreamConfig] = {}

    def __getitem__(self, name: str) -> Upstream:
        return self._clients[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._clients)

    def __len__(self) -> int:
        return len(self._clients)

    def apply(self, upstreams: Sequence[UpstreamConfig], *, strict: bool = False) -> list[str]:
        """Serve exactly ``upstreams``; the names of those that could not be built.

        An upstream whose settings are unchanged keeps its client (and its connections and
        tokens). With ``strict`` an upstream that cannot be built raises ConfigError (the
        config file at start); otherwise it is logged and left out (a policy snapshot).
        """
        failed = []
        wanted = {u.name: u for u in upstreams}
        for name, upstream in wanted.items():
            if self._configs.get(name) == upstream:
                continue
            try:
                client, http = _build(upstream)
            except ConfigError:
                if strict:
                    raise
                log.exception("cannot use upstream %s", name)
                failed.append(name)
                continue
            self._retire(name)
            self._clients[name], self._http[name], self._configs[name] = client, http, upstream
        for name in [n for n in self._clients if n not in wanted]:
            self._retire(name)
        return failed

    def _retire(self, name: str) -> None:
        self._configs.pop(name, None)
        if name in self._clients:
            pair = self._clients.pop(name), self._http.pop(name)
            self._nursery.start_soon(self._close_later, *pair)

    async def _close_later(self, client: Upstream, http: httpx.AsyncClient) -> None:
        try:
            await trio.sleep(self._grace)
        finally:
            await _close(client, http)

    async def aclose(self) -> None:
        """Close every current client (retiring ones close with the nursery)."""
        pairs = [(c, self._http[n]) for n, c in self._clients.items()]
        self._clients, self._http, self._configs = {}, {}, {}
        for client, http in pairs:
            await _close(client, http)


async def _close(client: Upstream, http: httpx.AsyncClient) -> None:
    with trio.CancelScope(shield=True):
        await client.aclose()
        await http.aclose()


def _build(upstream: UpstreamConfig) -> tuple[Upstream, httpx.AsyncClient]:
    from adapters.registry import create_upstream

    http = httpx.AsyncClient(
        timeout=httpx.Timeout(30.0, connect=upstream.timeout),
        transport=upstream_transport(tls=upstream.tls_context()),
    )
    try:
        return create_upstream(upstream.adapter_spec(), http=http), http
    except ValueError as exc:
        raise ConfigError(f"upstream {upstream.name}: {exc}") from exc


@asynccontextmanager
async def open_upstream_clients(
    upstreams: Sequence[UpstreamConfig], grace: float = GRACE
) -> AsyncIterator[UpstreamClients]:
    """Clients for ``upstreams`` (ConfigError if one cannot be built), closed on exit;
    replaced ones are closed ``grace`` seconds after :meth:`UpstreamClients.apply`."""
    async with trio.open_nursery() as nursery:
        clients = UpstreamClients(nursery, grace)
        try:
            clients.apply(upstreams, strict=True)
            yield clients
        finally:
            await clients.aclose()
            nursery.cancel_scope.cancel()
