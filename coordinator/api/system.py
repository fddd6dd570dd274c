"""``/health``, ``/ping``, ``/systeminfo``, ``/statistics``."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

from quart import Blueprint, Response

from coordinator.api.access import require_user
from coordinator.api.http import API_PREFIX, json_response, principal
from coordinator.api.services import Services
from coordinator.domain import projects

__all__ = ["HARBOR_API_VERSION", "blueprint"]

# The Harbor release whose API this one follows, and Portmesh's own version.
HARBOR_API_VERSION = "v2.12.0"
PORTMESH_VERSION = "0.1.0"


def blueprint(services: Services) -> Blueprint:
    bp = Blueprint("system", __name__, url_prefix=API_PREFIX)
    config = services.config

    @bp.get("/health")
    async def health() -> Response:
        ok = await services.db.ping()
        status = "healthy" if ok else "unhealthy"
        body = {"status": status, "components": [{"name": "database", "status": status}]}
        return json_response(body)

    @bp.get("/ping")
    async def ping() -> Response:
        return Response("Pong", content_type="text/plain")

    @bp.get("/systeminfo")
    async def systeminfo() -> Response:
        info: dict[str, object] = {
            "auth_mode": "db_auth",
            "primary_auth_mode": False,
            "self_registration": False,
            "banner_message": "",
            "current_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if not principal().anonymous:
            info.update(
                harbor_version=f"{HARBOR_API_VERSION}-portmesh-{PORTMESH_VERSION}",
                external_url=config.url,
                registry_url=urlsplit(config.url).netloc,
                project_creation_restriction=config.project_creation_restriction,
                has_ca_root=False,
                read_only=False,
                with_notary=False,
                with_chartmuseum=False,
                notification_enable=True,
                registry_storage_provider_name="filesystem",
            )
        return json_response(info)

    @bp.get("/statistics")
    async def statistics() -> Response:
        caller = principal()
        require_user(caller)
        count = await services.db.run(projects.counts, caller.user_id, caller.sysadmin)
        body = {
            "total_project_count": count["total"],
            "public_project_count": count["public"],
            "private_project_count": count["private"],
            "total_repo_count": 0,
            "public_repo_count": 0,
            "private_repo_count": 0,
        }
        if caller.sysadmin:
            body["total_storage_consumption"] = 0
        return json_response(body)

    return bp
