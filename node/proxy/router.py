"""Which upstream, if any, a pull goes to.

- Proxy projects: ``/v2/<project>/<path>`` pulls ``<path>`` from the project's upstream.
- Mirror mode: containerd's hosts.toml mirrors add ``?ns=<registry host>``; the namespace
  picks the upstream and the name needs no project prefix.
- A default upstream takes the other names (Docker's ``registry-mirrors``).

Everything is cached under ``<project or upstream name>/<remote name>``, so a project pull
and a mirror pull of the same image share one cache entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from node.config import ConfigError, UpstreamConfig

__all__ = ["Route", "Router"]


@dataclass(frozen=True, slots=True)
class Route:
    upstream: UpstreamConfig
    #: the repository name at the upstream
    remote: str

    @property
    def local(self) -> str:
        """The repository the node caches it under."""
        return f"{self.upstream.cache_prefix}/{self.remote}"


class Router:
    """Routes pulls to ``upstreams``; :meth:`update` swaps them while the node serves."""

    def __init__(self, upstreams: Sequence[UpstreamConfig] = ()) -> None:
        self.update(upstreams)

    def update(self, upstreams: Sequence[UpstreamConfig]) -> None:
        """Route to ``upstreams`` from now on; ConfigError (and no change) if they clash."""
        defaults = [u for u in upstreams if u.default]
        if len(defaults) > 1:
            raise ConfigError("only one upstream can be the default")
        if len({u.name for u in upstreams}) != len(upstreams):
            raise ConfigError("upstream names must be unique")
        self._projects = {u.project: u for u in upstreams if u.project}
        self._namespaces = {ns: u for u in upstreams for ns in u.namespaces}
        self._default = defaults[0] if defaults else None
        self._prefixes = {u.cache_prefix for u in upstreams}

    def __bool__(self) -> bool:
        return bool(self._projects or self._namespaces or self._default)

    def route(self, name: str, ns: str | None = None) -> Route | None:
        """The route of a pull of repository ``name``; None for a local repository."""
        first, _, rest = name.partition("/")
        upstream = self._projects.get(first)
        if upstream is not None and rest:
            return Route(upstream, rest)
        upstream = self._namespaces.get(ns) if ns is not None else self._default
        if upstream is None:
            return None
        if upstream.library_prefix and "/" not in name:
            name = f"library/{name}"
        return Route(upstream, name)

    def is_cache(self, name: str) -> bool:
        """Whether ``name`` is a repository the proxy caches into."""
        return name.partition("/")[0] in self._prefixes

    def is_proxied(self, name: str) -> bool:
        """Whether ``name`` lies in a proxy project (pushes there are refused)."""
        first, _, rest = name.partition("/")
        return bool(rest) and first in self._projects
