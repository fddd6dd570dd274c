"""Written documentation of the repository, registry, robot, token key, node and
document operations, keyed by endpoint (``blueprint.function``)."""

from __future__ import annotations

from coordinator.openapi.op import BOOL, CONFLICT, STR, Op, query_param
from coordinator.openapi.schemas import array_of, ref

__all__ = ["MORE"]

MORE: dict[str, Op] = {
    # repositories and artifacts
    "repositories.search": Op(
        "List the repositories of every visible project",
        "listAllRepositories",
        "repository",
        out=array_of("Repository"),
        listing=True,
    ),
    "repositories.list_in_project": Op(
        "List a project's repositories",
        "listRepositories",
        "repository",
        out=array_of("Repository"),
        listing=True,
    ),
    "repositories.get_one": Op(
        "Get a repository", "getRepository", "repository", out=ref("Repository")
    ),
    "repositories.delete": Op("Delete a repository", "deleteRepository", "repository"),
    "repositories.artifacts": Op(
        "List a repository's artifacts",
        "listArtifacts",
        "artifact",
        out=array_of("Artifact"),
        listing=True,
        query=(query_param("with_tag", BOOL, "Include the artifacts' tags"),),
    ),
    "repositories.artifact": Op(
        "Get an artifact by digest or tag", "getArtifact", "artifact", out=ref("Artifact")
    ),
    "repositories.artifact_tags": Op(
        "List an artifact's tags", "listTags", "artifact", out=array_of("Tag"), listing=True
    ),
    # registries
    "registries.list_all": Op(
        "List registry endpoints",
        "listRegistries",
        "registry",
        out=array_of("Registry"),
        listing=True,
        query=(query_param("name", STR, "Part of the registry name"),),
    ),
    "registries.create": Op(
        "Create a registry endpoint",
        "createRegistry",
        "registry",
        status=201,
        body="Registry",
        also=CONFLICT,
    ),
    "registries.get_one": Op(
        "Get a registry endpoint", "getRegistry", "registry", out=ref("Registry")
    ),
    "registries.update": Op(
        "Update a registry endpoint",
        "updateRegistry",
        "registry",
        body="RegistryUpdate",
        also=CONFLICT,
    ),
    "registries.remove": Op(
        "Delete a registry endpoint",
        "deleteRegistry",
        "registry",
        also={412: "Precondition failed"},
    ),
    "registries.registry_info": Op(
        "What replication can do with a registry",
        "getRegistryInfo",
        "registry",
        out=ref("RegistryInfo"),
    ),
    "registries.ping_registry": Op(
        "Check that a registry answers", "pingRegistry", "registry", body="RegistryPing"
    ),
    "registries.adapters": Op(
        "List the supported registry types",
        "listRegistryProviderTypes",
        "registry",
        out={"type": "array", "items": STR},
    ),
    "registries.adapter_infos": Op(
        "How each registry type is reached",
        "listRegistryProviderInfos",
        "registry",
        out={"type": "object", "additionalProperties": ref("RegistryProviderInfo")},
    ),
    # robot accounts
    "robots.create_robot": Op(
        "Create a robot account",
        "CreateRobot",
        "robot",
        status=201,
        out=ref("RobotCreated"),
        body="RobotCreate",
        also=CONFLICT,
    ),
    "robots.list_all": Op(
        "List robot accounts", "ListRobot", "robot", out=array_of("Robot"), listing=True
    ),
    "robots.list_of_project": Op(
        "List a project's robot accounts",
        "ListProjectRobots",
        "robot",
        out=array_of("Robot"),
        listing=True,
    ),
    "robots.get_robot": Op("Get a robot account", "GetRobotByID", "robot", out=ref("Robot")),
    "robots.put_robot": Op(
        "Update a robot account", "UpdateRobot", "robot", body="Robot", also=CONFLICT
    ),
    "robots.refresh_secret": Op(
        "Refresh a robot account's secret",
        "RefreshSec",
        "robot",
        out=ref("RobotSec"),
        body="RobotSec",
    ),
    "robots.remove_robot": Op("Delete a robot account", "DeleteRobot", "robot"),
    # token signing keys
    "token.list_keys": Op(
        "List the token signing keys",
        "listTokenKeys",
        "token",
        out=array_of("TokenKey"),
    ),
    "token.rotate": Op(
        "Start signing tokens with a new key",
        "rotateTokenKey",
        "token",
        out=ref("TokenKeyRotated"),
    ),
    # nodes
    "nodes.create_join_token": Op(
        "Create a join token for a new node",
        "createJoinToken",
        "node",
        status=201,
        out=ref("JoinToken"),
        body="JoinTokenReq",
    ),
    "nodes.register": Op(
        "Register a node with a join token",
        "registerNode",
        "node",
        status=201,
        out=ref("NodeCreated"),
        body="NodeRegistration",
        also=CONFLICT,
    ),
    "nodes.list_all": Op("List nodes", "listNodes", "node", out=array_of("Node"), listing=True),
    "nodes.get_one": Op("Get a node", "getNode", "node", out=ref("Node")),
    "nodes.delete": Op("Delete a node", "deleteNode", "node"),
    "nodes.policy": Op(
        "Long-poll the node's policy snapshot (node token)",
        "getNodePolicy",
        "node",
        out={"type": "string", "format": "binary"},
        media_type="application/vnd.portmesh.frame",
        also={304: "The node's policy is current"},
        query=(
            query_param("version", {"type": "integer", "minimum": 0}, "The version the node has"),
            query_param(
                "wait", {"type": "integer", "minimum": 0, "maximum": 60}, "Seconds to wait"
            ),
            query_param("cache_bytes", {"type": "integer", "minimum": 0}, "Heartbeat: cache size"),
            query_param("cache_hits", {"type": "integer", "minimum": 0}, "Heartbeat: cache hits"),
            query_param(
                "cache_misses", {"type": "integer", "minimum": 0}, "Heartbeat: cache misses"
            ),
            query_param("node_version", STR, "Heartbeat: the node's version"),
        ),
    ),
    "nodes.events": Op(
        "Send a batch of node events (node token)",
        "postNodeEvents",
        "node",
        out=ref("EventsAccepted"),
        also={503: "Events cannot be stored"},
    ),
    # this document
    "docs.document": Op(
        "This OpenAPI document", "getOpenAPIDocument", "docs", out={"type": "object"}
    ),
}
