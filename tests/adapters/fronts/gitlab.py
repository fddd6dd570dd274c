"""GitLab as it answers: ``/jwt/auth`` (service ``container_registry``) with personal or
deploy tokens, GitLab's "HTTP Basic: Access denied" refusal, and the REST API's
``GET /api/v4/projects/:id/registry/repositories`` behind ``PRIVATE-TOKEN``, paged with
``Link`` and ``X-Next-Page``."""

from __future__ import annotations

import re
from typing import Any

from fronts.common import TokenFlow, json_page
from support.authfront import FrontRequest, FrontResponse

__all__ = ["GitLabFront"]

REPOSITORIES = re.compile(r"^/api/v4/projects/(?P<id>.+)/registry/repositories$")
DENIED = (
    "HTTP Basic: Access denied. If a password was provided for Git authentication, the"
    " password was incorrect or you're required to use a token instead of a password."
)


class GitLabFront(TokenFlow):
    token_path = "/jwt/auth"
    service = "container_registry"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: project id or path -> repository paths
        self.projects: dict[str, list[str]] = {}

    def login_refused(self, user: str) -> FrontResponse:
        return FrontResponse.json({"errors": [{"code": "UNAUTHORIZED", "message": DENIED}]}, 401)

    async def api(self, req: FrontRequest) -> FrontResponse | None:
        match = REPOSITORIES.match(req.path)
        if match is None:
            return None
        if req.headers.get("private-token") != self.api_token:
            return FrontResponse.json({"message": "401 Unauthorized"}, 401)
        paths = self.projects.get(match["id"])
        if paths is None:
            return FrontResponse.json({"message": "404 Project Not Found"}, 404)
        items = [
            {"id": i, "name": p.rsplit("/", 1)[-1], "path": p, "location": f"registry/{p}"}
            for i, p in enumerate(paths, 1)
        ]
        chunk, following = json_page(req, items, "per_page")
        headers = {"x-total": str(len(items))}
        if following:
            headers["link"] = f'<{following}>; rel="next"'
            headers["x-next-page"] = following.rsplit("=", 1)[1]
        return FrontResponse.json(chunk, headers=headers)
