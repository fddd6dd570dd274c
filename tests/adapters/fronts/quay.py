"""Quay as it answers: ``/v2/auth`` (service ``quay.io``) for users and robot accounts
(``org+robot``), and the API's ``GET /api/v1/repository?namespace=`` (``repositories``,
``next_page``) behind an OAuth bearer token."""

from __future__ import annotations

from typing import Any

from fronts.common import TokenFlow
from support.authfront import FrontRequest, FrontResponse

__all__ = ["QuayFront"]

PAGE = 2


class QuayFront(TokenFlow):
    token_path = "/v2/auth"
    service = "quay.io"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: namespace -> (name, is_public)
        self.repositories: dict[str, list[tuple[str, bool]]] = {}

    def login_refused(self, user: str) -> FrontResponse:
        if "+" in user:
            message = f"Could not find robot with username: {user} and supplied password."
        else:
            message = "Invalid Username or Password"
        return FrontResponse.json({"errors": [{"code": "UNAUTHORIZED", "message": message}]}, 401)

    async def api(self, req: FrontRequest) -> FrontResponse | None:
        if req.path != "/api/v1/repository":
            return None
        namespace = req.arg("namespace")
        if not namespace:
            return FrontResponse.json({"detail": "namespace required", "status": 400}, 400)
        auth = req.headers.get("authorization", "")
        if auth and auth != f"Bearer {self.api_token}":
            refusal = {"detail": "Invalid bearer token format", "error_type": "invalid_token"}
            return FrontResponse.json(refusal, 401)
        visible = [
            {"namespace": namespace, "name": name, "is_public": public, "kind": "image"}
            for name, public in self.repositories.get(namespace, [])
            if public or auth
        ]
        start = int(req.arg("next_page", "0") or 0)
        body: dict[str, Any] = {"repositories": visible[start : start + PAGE]}
        if start + PAGE < len(visible):
            body["next_page"] = str(start + PAGE)
        return FrontResponse.json(body)
