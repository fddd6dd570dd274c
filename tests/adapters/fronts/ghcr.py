"""ghcr.io as it answers: ``/token`` (service ``ghcr.io``) takes any username with a
personal access token or ``GITHUB_TOKEN`` as the password, public packages pull
anonymously, a bad token is ``403 DENIED``; there is no ``_catalog``."""

from __future__ import annotations

from fronts.common import TokenFlow, oci_errors
from support.authfront import FrontRequest, FrontResponse

__all__ = ["GHCRFront"]


class GHCRFront(TokenFlow):
    token_path = "/token"
    service = "ghcr.io"

    def accepts(self, user: str, secret: str) -> bool:
        return secret in self.users.values()

    def login_refused(self, user: str) -> FrontResponse:
        return FrontResponse.json(oci_errors("DENIED", "denied"), 403)

    def authorize(self, req: FrontRequest) -> FrontResponse | None:
        if req.path.rstrip("/") == "/v2/_catalog":
            return FrontResponse.json(oci_errors("NOT_FOUND", "404 page not found"), 404)
        return super().authorize(req)
