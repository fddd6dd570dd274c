"""The authorization matrix: who may do what, written out from Harbor's role definitions.

Projects: ``priv`` (private; one member per Harbor role) and ``pub`` (public, no members).
Identities: a system administrator, one user per role in ``priv``, a signed-in outsider,
anonymous, project robots of ``priv`` (pull; pull+push; pull+push+delete), a system robot
with pull on every project (``*``) and a disabled robot of ``priv``.

Registry rights (Harbor): guest and limitedGuest pull; developer pull+push; maintainer and
projectAdmin pull+push+delete; anybody pulls from a public project; only a system
administrator lists the catalog; a robot holds exactly its permissions; a disabled robot
cannot log in at all.

API rights (Harbor's RBAC table): members read the project; projectAdmin (and the system
administrator) update and delete it and manage members and robots; limitedGuest sees
neither members, robots nor logs; users, registries and the global user list are for
system administrators; a private project is 404 to whoever cannot see it, but any
signed-in caller may ask whether a project name is taken (``HEAD /projects``, 401 to
anonymous callers); a robot holds only its repository permissions, so project routes are
403 to it; ``/audit-logs`` shows a user only the projects whose logs their role may list.
"""

from __future__ import annotations

from dataclasses import dataclass

from portmesh.access import DEVELOPER, GUEST, LIMITED_GUEST, MAINTAINER, PROJECT_ADMIN

__all__ = [
    "API",
    "API_ROUTES",
    "IDENTITIES",
    "PRIV_LISTED",
    "REGISTRY",
    "ROBOTS",
    "ROLES",
    "RobotCase",
]

#: every identity, in the order the tables list them
IDENTITIES = (
    "sysadmin",
    "projadmin",
    "maintainer",
    "developer",
    "guest",
    "limited",
    "outsider",
    "anonymous",
    "rpull",
    "rpush",
    "rdelete",
    "rsystem",
    "rdisabled",
)

#: user -> Harbor role id in ``priv``
ROLES = {
    "projadmin": PROJECT_ADMIN,
    "maintainer": MAINTAINER,
    "developer": DEVELOPER,
    "guest": GUEST,
    "limited": LIMITED_GUEST,
}


@dataclass(frozen=True)
class RobotCase:
    """A robot to create: ``namespace`` ``*`` makes a system robot."""

    namespace: str
    actions: tuple[str, ...]
    disabled: bool = False


ROBOTS = {
    "rpull": RobotCase("priv", ("pull",)),
    "rpush": RobotCase("priv", ("pull", "push")),
    "rdelete": RobotCase("priv", ("pull", "push", "delete")),
    "rsystem": RobotCase("*", ("pull",)),
    "rdisabled": RobotCase("priv", ("pull",), disabled=True),
}

# fmt: off
#: identity -> (actions on priv/app, actions on pub/app, may list the catalog)
REGISTRY: dict[str, tuple[str, str, bool]] = {
    "sysadmin":   ("pull push delete", "pull push delete", True),
    "projadmin":  ("pull push delete", "pull",             False),
    "maintainer": ("pull push delete", "pull",             False),
    "developer":  ("pull push",        "pull",             False),
    "guest":      ("pull",             "pull",             False),
    "limited":    ("pull",             "pull",             False),
    "outsider":   ("",                 "pull",             False),
    "anonymous":  ("",                 "pull",             False),
    "rpull":      ("pull",             "pull",             False),
    "rpush":      ("pull push",        "pull",             False),
    "rdelete":    ("pull push delete", "pull",             False),
    "rsystem":    ("pull",             "pull",             False),
    "rdisabled":  ("",                 "",                 False),
}

#: column -> (method, path, JSON body); ``{me}`` is the identity's name. Paths are under
#: /api/v2.0. ``gone-{me}`` is a private project with the same members as ``priv``, made
#: for each identity to try to delete.
API_ROUTES: dict[str, tuple[str, str, dict[str, object] | None]] = {
    "head":      ("HEAD",   "/projects?project_name=priv", None),
    "get":       ("GET",    "/projects/priv", None),
    "put":       ("PUT",    "/projects/priv", {"metadata": {"auto_scan": "false"}}),
    "delete":    ("DELETE", "/projects/gone-{me}", None),
    "members":   ("GET",    "/projects/priv/members", None),
    "addmember": ("POST",   "/projects/priv/members",
                  {"role_id": GUEST, "member_user": {"username": "spare"}}),
    "robots":    ("GET",    "/projects/priv/robots", None),
    "addrobot":  ("POST",   "/robots",
                  {"name": "made-by-{me}", "level": "project", "duration": -1,
                   "permissions": [{"kind": "project", "namespace": "priv",
                                    "access": [{"resource": "repository", "action": "pull"}]}]}),
    "logs":      ("GET",    "/projects/priv/logs", None),
    "repos":     ("GET",    "/projects/priv/repositories", None),
    "users":     ("GET",    "/users", None),
    "promote":   ("PUT",    "/users/{spare}/sysadmin", {"sysadmin_flag": False}),
    "adduser":   ("POST",   "/users",
                  {"username": "new-{me}", "password": "Passw0rdNew", "email": "{me}@new.test",
                   "realname": "{me}"}),
    "registry":  ("POST",   "/registries",
                  {"name": "reg-{me}", "type": "docker-registry", "url": "http://127.0.0.1:9"}),
    "audit":     ("GET",    "/audit-logs?q=resource%3D~priv&page_size=100", None),
}

#: identity -> the status of each API_ROUTES column, in order. ``audit`` (entries
#: whose resource names priv) is 200 plus ``+`` when there are some, ``-`` when none.
API: dict[str, str] = {
    #             hd  get put del mem add rob add log rep usr pro add reg audit
    "sysadmin":   "200 200 200 200 200 201 200 201 200 200 200 200 201 201 200+",
    "projadmin":  "200 200 200 200 200 201 200 201 200 200 403 403 403 403 200+",
    "maintainer": "200 200 403 403 200 403 200 403 200 200 403 403 403 403 200+",
    "developer":  "200 200 403 403 200 403 200 403 200 200 403 403 403 403 200+",
    "guest":      "200 200 403 403 200 403 200 403 200 200 403 403 403 403 200+",
    "limited":    "200 200 403 403 403 403 403 403 403 200 403 403 403 403 200-",
    "outsider":   "200 404 404 404 404 404 404 404 404 404 403 403 403 403 200-",
    "anonymous":  "401 404 404 404 404 404 404 401 404 404 401 401 401 401 401",
    "rpull":      "200 403 403 404 403 403 403 403 403 403 403 403 403 403 200-",
    "rpush":      "200 403 403 404 403 403 403 403 403 403 403 403 403 403 200-",
    "rdelete":    "200 403 403 404 403 403 403 403 403 403 403 403 403 403 200-",
    "rsystem":    "200 403 403 403 403 403 403 403 403 403 403 403 403 403 200-",
    "rdisabled":  "401 401 401 401 401 401 401 401 401 401 401 401 401 401 401",
}
# fmt: on

#: the users (and anonymous) for whom ``GET /projects`` and ``GET /repositories`` show priv
PRIV_LISTED = {
    "sysadmin": True,
    "projadmin": True,
    "maintainer": True,
    "developer": True,
    "guest": True,
    "limited": True,
    "outsider": False,
    "anonymous": False,
}
