"""Written documentation of the system, project, metadata, member, user and audit log
operations, keyed by endpoint (``blueprint.function``)."""

from __future__ import annotations

from coordinator.openapi.op import BOOL, CONFLICT, STR, Op, query_param
from coordinator.openapi.schemas import array_of, ref

__all__ = ["CORE"]

CORE: dict[str, Op] = {
    # system
    "system.health": Op(
        "Check the status of the coordinator's components",
        "getHealth",
        "health",
        out=ref("OverallHealthStatus"),
    ),
    "system.ping": Op("Ping the coordinator", "getPing", "ping", out=STR, media_type="text/plain"),
    "system.systeminfo": Op(
        "General information about the system",
        "getSystemInfo",
        "systeminfo",
        out=ref("GeneralInfo"),
    ),
    "system.statistics": Op(
        "Counts of projects and repositories", "getStatistic", "statistic", out=ref("Statistic")
    ),
    # projects
    "projects.head_project": Op(
        "Check whether a project name exists",
        "headProject",
        "project",
        query=(query_param("project_name", STR, "The project name to look for", required=True),),
    ),
    "projects.list_projects": Op(
        "List the projects the caller can see",
        "listProjects",
        "project",
        out=array_of("Project"),
        listing=True,
        query=(
            query_param("name", STR, "Part of the project name"),
            query_param("public", BOOL, "Only public (true) or private (false) projects"),
            query_param("owner", STR, "The name of the project's owner"),
            query_param(
                "with_detail", BOOL, "Accepted for compatibility; details are always given"
            ),
        ),
    ),
    "projects.create_project": Op(
        "Create a project",
        "createProject",
        "project",
        status=201,
        body="ProjectReq",
        also=CONFLICT,
    ),
    "projects.get_project": Op("Get a project", "getProject", "project", out=ref("Project")),
    "projects.update_project": Op(
        "Update a project's settings", "updateProject", "project", body="ProjectReq"
    ),
    "projects.delete_project": Op(
        "Delete a project", "deleteProject", "project", also={412: "Precondition failed"}
    ),
    "projects.summary": Op(
        "Get a project's summary", "getProjectSummary", "project", out=ref("ProjectSummary")
    ),
    # project metadata
    "metadata.list_metadata": Op(
        "Get a project's metadata",
        "listProjectMetadatas",
        "projectMetadata",
        out=ref("ProjectMetadata"),
    ),
    "metadata.add_metadata": Op(
        "Add metadata to a project",
        "addProjectMetadatas",
        "projectMetadata",
        body="ProjectMetadata",
    ),
    "metadata.get_metadata": Op(
        "Get one metadata entry of a project",
        "getProjectMetadata",
        "projectMetadata",
        out=ref("ProjectMetadata"),
    ),
    "metadata.update_metadata": Op(
        "Update one metadata entry of a project",
        "updateProjectMetadata",
        "projectMetadata",
        body="ProjectMetadata",
    ),
    "metadata.delete_metadata": Op(
        "Delete one metadata entry of a project", "deleteProjectMetadata", "projectMetadata"
    ),
    # members
    "members.list_members": Op(
        "List a project's members",
        "listProjectMembers",
        "member",
        out=array_of("ProjectMemberEntity"),
        listing=True,
        query=(query_param("entityname", STR, "Part of the member's name"),),
    ),
    "members.add_member": Op(
        "Add a member to a project",
        "createProjectMember",
        "member",
        status=201,
        body="ProjectMember",
        also=CONFLICT,
    ),
    "members.get_member": Op(
        "Get a project member", "getProjectMember", "member", out=ref("ProjectMemberEntity")
    ),
    "members.update_member": Op(
        "Change a project member's role", "updateProjectMember", "member", body="RoleRequest"
    ),
    "members.remove_member": Op("Remove a member from a project", "deleteProjectMember", "member"),
    # users
    "users.list_users": Op(
        "List users", "listUsers", "user", out=array_of("UserResp"), listing=True
    ),
    "users.create_user": Op(
        "Create a local user",
        "createUser",
        "user",
        status=201,
        body="UserCreationReq",
        also=CONFLICT,
    ),
    "users.current_user": Op(
        "Get the current user", "getCurrentUserInfo", "user", out=ref("UserResp")
    ),
    "users.current_permissions": Op(
        "Get the current user's permissions",
        "getCurrentUserPermissions",
        "user",
        out=array_of("Permission"),
        query=(
            query_param("scope", STR, "/system or /project/ID"),
            query_param("relative", BOOL, "Resources relative to the scope"),
        ),
    ),
    "users.search_users": Op(
        "Search users by name",
        "searchUsers",
        "user",
        out=array_of("UserSearchRespItem"),
        listing=True,
        query=(query_param("username", STR, "Part of the user name", required=True),),
    ),
    "users.get_user": Op("Get a user", "getUser", "user", out=ref("UserResp")),
    "users.update_user": Op(
        "Update a user's profile",
        "updateUserProfile",
        "user",
        body="UserProfile",
        also=CONFLICT,
    ),
    "users.delete_user": Op("Delete a user", "deleteUser", "user"),
    "users.set_password": Op(
        "Change a user's password", "updateUserPassword", "user", body="PasswordReq"
    ),
    "users.set_sysadmin": Op(
        "Grant or revoke system administration",
        "setUserSysAdmin",
        "user",
        body="UserSysAdminFlag",
    ),
    # audit logs
    "audit_logs.list_all": Op(
        "List audit log entries",
        "listAuditLogs",
        "auditlog",
        out=array_of("AuditLog"),
        listing=True,
    ),
    "audit_logs.project_logs": Op(
        "List a project's audit log entries",
        "getLogs",
        "project",
        out=array_of("AuditLog"),
        listing=True,
    ),
}
