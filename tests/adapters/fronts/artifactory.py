"""Artifactory as it answers, "repository path" method: ``/v2/<repo-key>/<image>/...``,
tokens from ``/artifactory/api/docker/<repo-key>/v2/token``, access tokens accepted as
``Bearer`` directly, ``{"errors": [{"status": 401, "message": "Bad credentials"}]}``,
and ``GET /artifactory/api/docker/<repo-key>/v2/_catalog``."""

from __future__ import annotations

from typing import Any

from fronts.common import TokenFlow, basic_user
from support.authfront import FrontRequest, FrontResponse

__all__ = ["KEY", "ArtifactoryFront"]

KEY = "docker-remote"
BAD = {"errors": [{"status": 401, "message": "Bad credentials"}]}


class ArtifactoryFront(TokenFlow):
    token_path = f"/artifactory/api/docker/{KEY}/v2/token"
    service = "artifactory"

    def __init__(self, *args: Any, access_token: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_token = access_token
        self.catalog: list[str] = []

    def login_refused(self, user: str) -> FrontResponse:
        return FrontResponse.json(BAD, 401)

    def rewrite(self, path: str) -> str:
        prefix = f"/v2/{KEY}/"
        return "/v2/" + path[len(prefix) :] if path.startswith(prefix) else path

    def authorize(self, req: FrontRequest) -> FrontResponse | None:
        auth = req.headers.get("authorization", "")
        bearer = auth[7:] if auth.lower().startswith("bearer ") else None
        if self.access_token and bearer == self.access_token:
            return None
        if bearer is not None and bearer not in self.grants:
            return FrontResponse.json(BAD, 401)
        return super().authorize(req)

    async def api(self, req: FrontRequest) -> FrontResponse | None:
        if req.path != f"/artifactory/api/docker/{KEY}/v2/_catalog":
            return None
        creds = basic_user(req)
        auth = req.headers.get("authorization", "")
        allowed = (creds is not None and self.accepts(*creds)) or (
            bool(self.access_token) and auth == f"Bearer {self.access_token}"
        )
        if not allowed:
            return FrontResponse.json(BAD, 401)
        return FrontResponse.json({"repositories": sorted(self.catalog)})
