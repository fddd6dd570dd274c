"""Proxy upstreams from the policy snapshot: a coordinator's proxy-cache projects.

Each entry of ``Policy.upstreams`` is a mapping shaped like a ``[[upstream]]`` table of
the node's config file (``name``, ``type``, ``url``, ``project``, ``username``,
``password``, ``options``, ...; see :class:`node.config.UpstreamConfig`). They join the
upstreams of the config file (the file wins when both name the same upstream or project);
an entry that does not validate is logged and skipped. :func:`follow_upstreams` applies a
snapshot that changes them while the node serves: a new proxy-cache project routes within
about a second of the snapshot reaching the node, a removed one stops routing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import trio

from node.auth.holder import PolicyHolder
from node.config import ConfigError, NodeConfig, UpstreamConfig, _upstream
from node.proxy.clients import UpstreamClients
from node.proxy.router import Router

__all__ = ["follow_upstreams", "with_policy_upstreams"]

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


async def follow_upstreams(
    holder: PolicyHolder,
    config: NodeConfig,
    router: Router,
    clients: UpstreamClients,
    interval: float = 1.0,
) -> None:
    """Keep ``router`` and ``clients`` on ``config``'s upstreams plus the current
    snapshot's, checking every ``interval`` seconds, forever."""
    seen = holder.current.policy.upstreams
    while True:
        await trio.sleep(interval)
        entries = holder.current.policy.upstreams
        if entries == seen:
            continue
        seen = entries
        upstreams = with_policy_upstreams(config, entries).upstreams
        failed = set(clients.apply(upstreams))
        usable = [u for u in upstreams if u.name not in failed]
        try:
            router.update(usable)
        except ConfigError:
            log.exception("keeping the previous proxy upstreams")
            continue
        log.info("proxy upstreams now: %s", ", ".join(u.name for u in usable) or "none")
