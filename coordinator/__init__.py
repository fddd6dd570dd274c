"""The Portmesh coordinator: the control plane (projects, users, RBAC, robot accounts, the
token service, registry endpoints, audit log) behind a REST API shaped like Harbor's v2.0."""
