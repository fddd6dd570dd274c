"""Harbor as it answers: ``/service/token`` (service ``harbor-registry``) for users and
robot accounts (``robot$name``), and API v2.0's ``/api/v2.0/projects`` and
``/api/v2.0/projects/{p}/repositories`` (Basic, ``page``/``page_size``, ``Link``)."""

from __future__ import annotations

import re
from typing import Any

from fronts.common import TokenFlow, basic_user, json_page, oci_errors
from support.authfront import FrontRequest, FrontResponse

__all__ = ["HarborFront"]

REPOSITORIES = re.compile(r"^/api/v2\.0/projects/(?P<project>[^/]+)/repositories$")


class HarborFront(TokenFlow):
    token_path = "/service/token"
    service = "harbor-registry"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: project -> repository names (without the project)
        self.projects: dict[str, list[str]] = {}

    def login_refused(self, user: str) -> FrontResponse:
        return FrontResponse.json(oci_errors("UNAUTHORIZED", "invalid user name or password"), 401)

    async def api(self, req: FrontRequest) -> FrontResponse | None:
        creds = basic_user(req)
        if not req.path.startswith("/api/v2.0/"):
            return None
        if creds is None or not self.accepts(*creds):
            return FrontResponse.json(oci_errors("UNAUTHORIZED", "unauthorized"), 401)
        if req.path == "/api/v2.0/projects":
            items: list[Any] = [
                {"name": p, "project_id": i} for i, p in enumerate(sorted(self.projects), 1)
            ]
        elif match := REPOSITORIES.match(req.path):
            project = match["project"]
            if project not in self.projects:
                return FrontResponse.json(oci_errors("NOT_FOUND", "project not found"), 404)
            items = [{"name": f"{project}/{r}", "project_id": 1} for r in self.projects[project]]
        else:
            return None
        chunk, following = json_page(req, items, "page_size")
        headers = {"x-total-count": str(len(items))}
        if following:
            headers["link"] = f'<{following}>; rel="next"'
        return FrontResponse.json(chunk, headers=headers)
