"""Registry types: Harbor's type names, the Portmesh adapter behind each, and what
replication can do with it (``/replication/adapters``, ``/replication/adapterinfos``,
``/registries/{id}/info``)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from sqlalchemy import Row

from adapters.registry import ADAPTERS, Capability, capabilities

__all__ = ["HARBOR_TYPES", "adapter_infos", "adapter_types", "info"]

#: Harbor's registry type -> the Portmesh adapter type (``adapters.registry.ADAPTERS``)
HARBOR_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "docker-hub": "docker-hub",
        "docker-registry": "distribution",
        "harbor": "harbor",
        "aws-ecr": "ecr",
        "google-gcr": "gcr",
        "azure-acr": "acr",
        "quay": "quay",
        "gitlab": "gitlab",
        "github-ghcr": "ghcr",
        "jfrog-artifactory": "artifactory",
        "huawei-SWR": "swr",
        "ali-acr": "alibaba-acr",
    }
)


def adapter_types() -> list[str]:
    """Harbor's names of the registry types Portmesh has an adapter for."""
    return [name for name, kind in HARBOR_TYPES.items() if kind in ADAPTERS]


def _triggers(kind: str) -> list[str]:
    caps = capabilities(HARBOR_TYPES[kind])
    triggers = ["manual", "scheduled"]
    if Capability.PUSH in caps:
        triggers.append("event_based")
    return triggers


def info(row: Row[Any]) -> dict[str, Any]:
    """Harbor's ``RegistryInfo``: what replication can do with this registry."""
    caps = sorted(capabilities(HARBOR_TYPES[row.type]))
    filters = [{"type": "name", "style": "input"}, {"type": "tag", "style": "input"}]
    return {
        "type": row.type,
        "description": row.description,
        "supported_resource_filters": filters,
        "supported_triggers": _triggers(row.type),
        "supported_copy_by_chunk": False,
        "capabilities": [str(c) for c in caps],
    }


def adapter_infos() -> dict[str, dict[str, Any]]:
    """Harbor's ``/replication/adapterinfos``: per type, how it is reached and its
    credential, plus Portmesh's ``adapter`` type and ``capabilities``."""
    result: dict[str, dict[str, Any]] = {}
    for name in adapter_types():
        kind = HARBOR_TYPES[name]
        result[name] = {
            "endpoint_pattern": {"endpoint_type": "EndpointPatternTypeStandard"},
            "credential_pattern": {
                "access_key_type": "AccessKeyTypeStandard",
                "access_secret_type": "AccessSecretTypeStandard",
            },
            "adapter": kind,
            "capabilities": sorted(str(c) for c in capabilities(kind)),
        }
    return result
