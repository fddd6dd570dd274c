"""Proxy upstreams from the policy snapshot, applied when the node starts.

Each entry of ``Policy.upstreams`` is a mapping shaped like a ``[[upstream]]`` table of
the node's config file (``name``, ``type``, ``url``, ``project``, ``username``,
``password``, ``options``, ...; see :class:`node.config.UpstreamConfig`). The node adds
them to the upstreams of its config file at start (the file wins when both name the
same upstream or project); an entry that does not validate is logged and skipped. A
snapshot that changes the upstreams takes effect at the node's next start.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from node.config import ConfigError, NodeConfig, UpstreamConfig, _upstream

__all__ = ["with_policy_upstreams"]

log = logging.getLogger("portmesh.node.sync")


def _parse(entries: Iterable[Any]) -> list[UpstreamConfig]:
    found = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            log.error("ignoring a policy upstream that is not a table")
            continue
        try:
            found.append(_upstream(dict(entry)))
        except (ConfigError, TypeError) as exc:
            log.error("ignoring policy upstream %r: %s", entry.get("name"), exc)
    return found


def with_policy_upstreams(config: NodeConfig, entries: Iterable[Any]) -> NodeConfig:
    """``config`` with the snapshot's upstreams added after its own."""
    extra = _parse(entries)
    if not extra:
        return config
    names = {u.name for u in config.upstreams}
    projects = {u.project for u in config.upstreams if u.project}
    added = [u for u in extra if u.name not in names and u.project not in projects]
    defaults = any(u.default for u in config.upstreams)
    merged = list(config.upstreams)
    for upstream in added:
        if upstream.default and defaults:
            upstream = replace(upstream, default=False)
        defaults = defaults or upstream.default
        merged.append(upstream)
    return replace(config, upstreams=merged)
