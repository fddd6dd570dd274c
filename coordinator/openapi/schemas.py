"""Request and response body schemas of the API, in Harbor's shape (OpenAPI 3.0).

Names and fields follow Harbor's ``api/v2.0/swagger.yaml`` definitions (``Project``,
``ProjectReq``, ``UserResp``, ``Errors`` ...); Portmesh's own resources (nodes, join
tokens) are named after what they are. Response schemas list what the coordinator writes
and stay open (extra fields allowed) so that adding a field never breaks a client.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEMAS", "array_of", "ref"]

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def array_of(name: str) -> Schema:
    return {"type": "array", "items": ref(name)}


def _obj(required: tuple[str, ...] = (), **properties: Schema) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


STR: Schema = {"type": "string"}
NSTR: Schema = {"type": "string", "nullable": True}
INT: Schema = {"type": "integer"}
NINT: Schema = {"type": "integer", "nullable": True}
BOOL: Schema = {"type": "boolean"}
TIME: Schema = {"type": "string", "format": "date-time"}
NTIME: Schema = {"type": "string", "format": "date-time", "nullable": True}
STR_MAP: Schema = {"type": "object", "additionalProperties": {"type": "string"}}

_PROJECT_METADATA = _obj(
    public=STR,
    enable_content_trust=STR,
    enable_content_trust_cosign=STR,
    prevent_vul=STR,
    severity=STR,
    auto_scan=STR,
    auto_sbom_generation=STR,
    reuse_sys_cve_allowlist=STR,
    retention_id=STR,
    proxy_speed_kb=STR,
)

SCHEMAS: dict[str, Schema] = {
    "Errors": _obj(("errors",), errors=array_of("Error")),
    "Error": _obj(("code", "message"), code=STR, message=STR),
    # system
    "OverallHealthStatus": _obj(
        ("status",), status=STR, components=array_of("ComponentHealthStatus")
    ),
    "ComponentHealthStatus": _obj(name=STR, status=STR, error=STR),
    "GeneralInfo": _obj(
        current_time=TIME,
        with_notary=BOOL,
        with_chartmuseum=BOOL,
        registry_url=STR,
        external_url=STR,
        auth_mode=STR,
        primary_auth_mode=BOOL,
        project_creation_restriction=STR,
        self_registration=BOOL,
        has_ca_root=BOOL,
        harbor_version=STR,
        registry_storage_provider_name=STR,
        read_only=BOOL,
        notification_enable=BOOL,
        banner_message=STR,
    ),
    "Statistic": _obj(
        private_project_count=INT,
        private_repo_count=INT,
        public_project_count=INT,
        public_repo_count=INT,
        total_project_count=INT,
        total_repo_count=INT,
        total_storage_consumption=INT,
    ),
    # projects
    "ProjectMetadata": _PROJECT_METADATA,
    "ProjectReq": _obj(
        project_name={"type": "string", "maxLength": 255},
        public={"type": "boolean", "nullable": True},
        metadata=ref("ProjectMetadata"),
        storage_limit={"type": "integer", "nullable": True},
        registry_id={"type": "integer", "nullable": True},
    ),
    "Project": _obj(
        ("project_id", "name"),
        project_id=INT,
        owner_id=INT,
        name=STR,
        registry_id=INT,
        creation_time=TIME,
        update_time=TIME,
        deleted=BOOL,
        owner_name=STR,
        togglable=BOOL,
        current_user_role_id=INT,
        current_user_role_ids={"type": "array", "items": INT},
        repo_count=INT,
        metadata=ref("ProjectMetadata"),
    ),
    "ProjectSummary": _obj(
        repo_count=INT,
        project_admin_count=INT,
        maintainer_count=INT,
        developer_count=INT,
        guest_count=INT,
        limited_guest_count=INT,
        quota=_obj(
            hard={"type": "object", "additionalProperties": NINT},
            used={"type": "object", "additionalProperties": INT},
        ),
    ),
    # users
    "UserResp": _obj(
        ("user_id", "username"),
        user_id=INT,
        username=STR,
        email=STR,
        realname=STR,
        comment=STR,
        sysadmin_flag=BOOL,
        admin_role_in_auth=BOOL,
        creation_time=TIME,
        update_time=TIME,
    ),
    "UserCreationReq": _obj(
        ("username", "password"),
        username={"type": "string", "maxLength": 255},
        email={"type": "string", "maxLength": 255},
        realname=STR,
        password=STR,
        comment=STR,
    ),
    "UserProfile": _obj(email=STR, realname=STR, comment=STR),
    "PasswordReq": _obj(old_password=STR, new_password=STR),
    "UserSysAdminFlag": _obj(sysadmin_flag=BOOL),
    "UserSearchRespItem": _obj(user_id=INT, username=STR),
    "Permission": _obj(resource=STR, action=STR),
    # members
    "UserEntity": _obj(user_id=INT, username=STR),
    "UserGroup": _obj(id=INT, group_name=STR, group_type=INT, ldap_group_dn=STR),
    "ProjectMember": _obj(
        role_id=INT, member_user=ref("UserEntity"), member_group=ref("UserGroup")
    ),
    "RoleRequest": _obj(role_id=INT),
    "ProjectMemberEntity": _obj(
        id=INT,
        project_id=INT,
        entity_name=STR,
        role_name=STR,
        role_id=INT,
        entity_id=INT,
        entity_type=STR,
    ),
    # audit log
    "AuditLog": _obj(
        id=INT, username=STR, resource=STR, resource_type=STR, operation=STR, op_time=TIME
    ),
    # repositories and artifacts
    "Repository": _obj(
        id=INT,
        project_id=INT,
        name=STR,
        description=NSTR,
        artifact_count=INT,
        pull_count=INT,
        creation_time=TIME,
        update_time=TIME,
    ),
    "Tag": _obj(
        id=INT,
        repository_id=INT,
        artifact_id=INT,
        name=STR,
        push_time=TIME,
        pull_time=TIME,
        immutable=BOOL,
    ),
    "Artifact": _obj(
        id=INT,
        type=STR,
        media_type=STR,
        manifest_media_type=STR,
        project_id=INT,
        repository_id=INT,
        repository_name=STR,
        digest=STR,
        size=INT,
        icon=STR,
        push_time=TIME,
        pull_time=TIME,
        extra_attrs={"type": "object"},
        annotations=STR_MAP,
        references={"type": "array", "items": {"type": "object"}},
        tags=array_of("Tag"),
        addition_links={"type": "object"},
        labels={"type": "array", "items": {"type": "object"}},
    ),
    # registries
    "RegistryCredential": _obj(type=NSTR, access_key=NSTR, access_secret=NSTR),
    "Registry": _obj(
        id=INT,
        url=STR,
        name=STR,
        credential=ref("RegistryCredential"),
        type=STR,
        insecure=BOOL,
        description=NSTR,
        status=NSTR,
        creation_time=TIME,
        update_time=TIME,
    ),
    "RegistryUpdate": _obj(
        name=NSTR,
        description=NSTR,
        url=NSTR,
        credential_type=NSTR,
        access_key=NSTR,
        access_secret=NSTR,
        insecure={"type": "boolean", "nullable": True},
    ),
    "RegistryPing": _obj(
        id={"type": "integer", "nullable": True},
        type=NSTR,
        url=NSTR,
        credential_type=NSTR,
        access_key=NSTR,
        access_secret=NSTR,
        insecure={"type": "boolean", "nullable": True},
    ),
    "RegistryInfo": _obj(
        type=STR,
        description=NSTR,
        supported_resource_filters={"type": "array", "items": _obj(type=STR, style=STR)},
        supported_triggers={"type": "array", "items": STR},
        supported_copy_by_chunk=BOOL,
        capabilities={"type": "array", "items": STR},
    ),
    "RegistryProviderInfo": _obj(
        endpoint_pattern={"type": "object"},
        credential_pattern={"type": "object"},
        adapter=STR,
        capabilities={"type": "array", "items": STR},
    ),
    # robot accounts
    "Access": _obj(resource=STR, action=STR, effect=STR),
    "RobotPermission": _obj(kind=STR, namespace=STR, access=array_of("Access")),
    "RobotCreate": _obj(
        name=STR,
        description=STR,
        secret=STR,
        level=STR,
        disable=BOOL,
        duration=INT,
        permissions=array_of("RobotPermission"),
    ),
    "Robot": _obj(
        id=INT,
        name=STR,
        description=NSTR,
        level=STR,
        duration=NINT,
        editable=BOOL,
        disable=BOOL,
        expires_at=NINT,
        permissions=array_of("RobotPermission"),
        creator_type=NSTR,
        creator_ref=NINT,
        creation_time=TIME,
        update_time=TIME,
    ),
    "RobotCreated": _obj(
        ("id", "name", "secret"),
        id=INT,
        name=STR,
        secret=STR,
        creation_time=TIME,
        expires_at=NINT,
    ),
    "RobotSec": _obj(secret=STR),
    # token signing keys (Portmesh's own resource)
    "TokenKey": _obj(
        ("kid",),
        kid=STR,
        created_at=TIME,
        activated_at=NTIME,
        retired_at=NTIME,
        active=BOOL,
        next=BOOL,
        published=BOOL,
    ),
    "TokenKeyRotated": _obj(("kid",), kid=STR),
    # nodes (Portmesh's own resource)
    "JoinTokenReq": _obj(duration=INT, description=STR),
    "JoinToken": _obj(("id", "token", "expires_at"), id=INT, token=STR, expires_at=TIME),
    "NodeRegistration": _obj(
        ("join_token", "name", "public_key"),
        join_token=STR,
        name=STR,
        public_key=STR,
        url=STR,
    ),
    "NodeCreated": _obj(("id", "name", "service"), id=INT, name=STR, service=STR),
    "Node": _obj(
        ("id", "name"),
        id=INT,
        name=STR,
        service=STR,
        url=STR,
        status=STR,
        healthy=BOOL,
        last_seen=NTIME,
        last_sync=NTIME,
        policy_version=INT,
        cache_usage_bytes=INT,
        cache_hits=INT,
        cache_misses=INT,
        hit_rate={"type": "number", "nullable": True},
        version=STR,
        creation_time=TIME,
    ),
    "EventsAccepted": _obj(("accepted",), accepted=INT),
}
