"""Node configuration: defaults, overridden by a TOML file, overridden by CLI flags."""

from __future__ import annotations

import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.registry import AdapterSpec

__all__ = ["AuthConfig", "ConfigError", "NodeConfig", "UpstreamConfig", "load_config"]


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class UpstreamConfig:
    """A registry this node pulls through (a ``[[upstream]]`` table)."""

    name: str
    #: the registry's base URL; adapters of public registries have a default
    url: str = ""
    #: the adapter: ``oci`` (any OCI registry, the default), ``docker-hub``, ``ghcr`` ...
    #: (``adapters.registry.ADAPTERS``)
    type: str = "oci"
    #: the adapter's own settings (the ``[upstream.options]`` table)
    options: Mapping[str, Any] = field(default_factory=dict)
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
    #: a PEM file of CA certificates trusted for this upstream's TLS besides the public ones
    ca_file: str = ""
    #: TLS without verifying the upstream's certificate (Harbor's ``insecure``)
    insecure: bool = False

    @property
    def cache_prefix(self) -> str:
        """Where this upstream's content is cached: ``<project or name>/<remote name>``."""
        return self.project or self.name

    def adapter_spec(self) -> AdapterSpec:
        """What the adapter factory (``adapters.registry``) builds this upstream's client from."""
        from adapters.registry import AdapterSpec

        return AdapterSpec(
            type=self.type,
            url=self.url,
            username=self.username or None,
            password=self.password or None,
            options=MappingProxyType(dict(self.options)),
            timeout=self.timeout,
        )

    def tls_context(self) -> ssl.SSLContext:
        """This upstream's TLS settings (``node.proxy.transport.tls_context``);
        :class:`ConfigError` when its ``ca_file`` cannot be loaded."""
        from node.proxy.transport import tls_context

        try:
            return tls_context(ca_file=self.ca_file, insecure=self.insecure)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"upstream {self.name}: ca_file {self.ca_file}: {exc}") from exc


@dataclass(frozen=True)
class AuthConfig:
    """Token authentication (the ``[auth]`` table). On when a coordinator or a policy file
    is configured."""

    #: base URL of the coordinator; user logins go to its ``/service/token``
    coordinator_url: str = ""
    #: this node's audience name (the challenge's ``service``); default: the policy's
    service: str = ""
    #: the URL clients reach this node at (the token realm's base); default: the Host header
    external_url: str = ""
    #: a policy snapshot to start from (codec frame or JSON), e.g. on an air-gapped node
    policy_file: str = ""
    #: lifetime of the tokens this node issues, in seconds
    token_ttl: int = 300
    #: joins the coordinator on first start (then the node keeps its identity)
    join_token: str = field(default="", repr=False)
    #: the node's name at the coordinator (default: the host name)
    name: str = ""
    #: seconds one policy long poll waits at the coordinator
    poll_wait: int = 30

    @property
    def enabled(self) -> bool:
        return bool(self.coordinator_url or self.policy_file)


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
    auth: AuthConfig = field(default_factory=AuthConfig)

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"--listen must be HOST:PORT, not {self.listen!r}")
        return host.strip("[]"), int(port)


def load_config(
    path: Path | None, auth: dict[str, Any] | None = None, **overrides: Any
) -> NodeConfig:
    """Defaults <- ``[node]`` table of the TOML file <- non-None overrides; ``auth``
    (non-None values) overrides the file's ``[auth]`` table."""
    values: dict[str, Any] = {}
    auth_values: dict[str, Any] = {}
    if path is not None:
        try:
            doc = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
        values.update(doc.get("node", {}))
        values["upstreams"] = [_upstream(table) for table in doc.get("upstream", [])]
        auth_values.update(doc.get("auth", {}))
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(NodeConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown node settings: {', '.join(unknown)}")
    if "data" in values:
        values["data"] = Path(values["data"])
    auth_values.update({k: v for k, v in (auth or {}).items() if v is not None})
    unknown = sorted(set(auth_values) - {f.name for f in fields(AuthConfig)})
    if unknown:
        raise ConfigError(f"unknown auth settings: {', '.join(unknown)}")
    values["auth"] = AuthConfig(**auth_values)
    return NodeConfig(**values)


def _upstream(table: dict[str, Any]) -> UpstreamConfig:
    known = {f.name for f in fields(UpstreamConfig)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"unknown upstream settings: {', '.join(unknown)}")
    if not table.get("name"):
        raise ConfigError("every [[upstream]] needs a name")
    kind = table.get("type", "oci")
    if kind in ("oci", "distribution", "portmesh") and not table.get("url"):
        raise ConfigError(f"upstream {table['name']}: url is required for type {kind!r}")
    _check_adapter(table["name"], kind, table.get("options", {}))
    _check_tls(table["name"], table.get("ca_file", ""), table.get("insecure", False))
    values = dict(table)
    values["namespaces"] = tuple(values.get("namespaces", ()))
    upstream = UpstreamConfig(**values)
    if upstream.project and ("/" in upstream.project or not upstream.project.strip()):
        raise ConfigError(f"upstream {upstream.name}: project must be one path segment")
    _check_spec(upstream)
    upstream.tls_context()  # loads ca_file as the upstream's client will
    return upstream


def _check_spec(upstream: UpstreamConfig) -> None:
    """The adapter accepts the upstream's URL, credentials and options (no client opened)."""
    from adapters.registry import validate_spec

    try:
        validate_spec(upstream.adapter_spec())
    except ValueError as exc:
        raise ConfigError(f"upstream {upstream.name}: {exc}") from exc


def _check_tls(name: str, ca_file: object, insecure: object) -> None:
    """``insecure`` is a boolean, ``ca_file`` a path, and not both are set (the file
    itself is loaded by ``UpstreamConfig.tls_context``)."""
    if not isinstance(insecure, bool):
        raise ConfigError(f"upstream {name}: insecure must be true or false")
    if not isinstance(ca_file, str):
        raise ConfigError(f"upstream {name}: ca_file must be a path")
    if ca_file and insecure:
        raise ConfigError(f"upstream {name}: ca_file and insecure = true exclude each other")


def _check_adapter(name: str, kind: object, options: object) -> None:
    """The ``type`` names a known adapter and ``options`` is a table."""
    from adapters.registry import ADAPTERS

    if not isinstance(kind, str) or kind not in ADAPTERS:
        known = ", ".join(sorted(ADAPTERS))
        raise ConfigError(f"upstream {name}: type {kind!r} is unknown (known: {known})")
    if not isinstance(options, dict):
        raise ConfigError(f"upstream {name}: options must be a table ([upstream.options])")
