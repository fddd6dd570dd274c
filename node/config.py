"""Node configuration: defaults, overridden by a TOML file, overridden by CLI flags."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["ConfigError", "NodeConfig", "UpstreamConfig", "load_config"]


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class UpstreamConfig:
    """A registry this node pulls through (a ``[[upstream]]`` table)."""

    name: str
    url: str
    #: ``/v2/<project>/<path>`` pulls ``<path>`` from this upstream (a proxy project).
    project: str = ""
    #: containerd mirror mode: ``?ns=<namespace>`` values served from this upstream.
    namespaces: tuple[str, ...] = ()
    #: serve names with neither a project nor ``ns`` from here (Docker's registry-mirrors).
    default: bool = False
    #: Docker Hub: one-segment names are ``library/<name>``.
    library_prefix: bool = False
    username: str = ""
    password: str = field(default="", repr=False)
    #: a tag is served from cache this long before it is revalidated with a HEAD
    tag_ttl: float = 60.0
    #: the failure budget of one metadata request before the cache answers instead
    timeout: float = 2.0

    @property
    def cache_prefix(self) -> str:
        """Where this upstream's content is cached: ``<project or name>/<remote name>``."""
        return self.project or self.name


@dataclass
class NodeConfig:
    data: Path = Path("portmesh-data/node")
    listen: str = "127.0.0.1:5000"
    #: Serve without authentication (refused unless explicitly asked for).
    no_auth: bool = False
    #: Hypercorn worker processes; each opens the same LMDB environment.
    workers: int = 1
    #: Smallest PATCH chunk accepted (except the last), sent as OCI-Chunk-Min-Length.
    chunk_min_length: int = 0
    #: Upload sessions untouched for this long are purged.
    upload_ttl: float = 24 * 3600.0
    #: Allow DELETE of manifests, tags and blobs.
    delete_enabled: bool = True
    #: LMDB map size; every process must use the same value.
    lmdb_map_size: int = 64 * 1024**3
    log_level: str = "info"
    #: URL prefix of an nginx ``internal`` location whose root is ``<data>/blobs/blobs/``;
    #: when set, blob GETs are answered with ``X-Accel-Redirect`` for nginx to sendfile.
    accel_redirect: str = ""
    #: deadline of one pull-through blob fill
    fill_deadline: float = 3600.0
    #: byte limit of the pull-through cache (0: none); least recently pulled goes first
    cache_max_bytes: int = 0
    upstreams: list[UpstreamConfig] = field(default_factory=list)

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"--listen must be HOST:PORT, not {self.listen!r}")
        return host.strip("[]"), int(port)


def load_config(path: Path | None, **overrides: Any) -> NodeConfig:
    """Defaults <- ``[node]`` table of the TOML file <- non-None overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            doc = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
        values.update(doc.get("node", {}))
        values["upstreams"] = [_upstream(table) for table in doc.get("upstream", [])]
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(NodeConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown node settings: {', '.join(unknown)}")
    if "data" in values:
        values["data"] = Path(values["data"])
    return NodeConfig(**values)


def _upstream(table: dict[str, Any]) -> UpstreamConfig:
    known = {f.name for f in fields(UpstreamConfig)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"unknown upstream settings: {', '.join(unknown)}")
    if not table.get("name") or not table.get("url"):
        raise ConfigError("every [[upstream]] needs a name and a url")
    values = dict(table)
    values["namespaces"] = tuple(values.get("namespaces", ()))
    upstream = UpstreamConfig(**values)
    if upstream.project and ("/" in upstream.project or not upstream.project.strip()):
        raise ConfigError(f"upstream {upstream.name}: project must be one path segment")
    return upstream
