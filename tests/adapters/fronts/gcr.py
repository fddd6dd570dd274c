"""Google's registry login as the adapter meets it: the registry token service
(``/v2/token``, Basic ``_json_key`` + key file, or ``oauth2accesstoken`` + access token) and
the OAuth2 token endpoint of a service-account key (``token_uri``), which verifies the JWT
bearer assertion with the key's public key (RS256, issuer, audience, lifetime)."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fronts.common import TokenFlow, oci_errors
from support.authfront import FrontRequest, FrontResponse

SERVICE = "gcr.io"
TOKEN_LIFETIME = 3600


def service_account_key(token_uri: str) -> tuple[dict[str, Any], rsa.RSAPrivateKey]:
    """A service-account key file (as Google issues them) for a new RSA key."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    key = {
        "type": "service_account",
        "project_id": "team",
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": "puller@team.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": token_uri,
    }
    return key, private


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class GCR(TokenFlow):
    """Google's token endpoint (``/token``) and the registry token service (``/v2/token``)
    for one service-account key (set with :meth:`use_key` once the front's URL is known)."""

    token_path = "/v2/token"
    service = SERVICE

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__({}, clock=clock)
        self.key: dict[str, Any] = {}
        self.public: rsa.RSAPublicKey | None = None
        self.access_tokens: dict[str, float] = {}

    def use_key(self, key: dict[str, Any], private: rsa.RSAPrivateKey) -> None:
        self.key, self.public = key, private.public_key()

    async def api(self, req: FrontRequest) -> FrontResponse | None:
        if req.path == "/token" and req.method == "POST":
            return self._grant(req.form())
        return None

    def accepts(self, user: str, secret: str) -> bool:
        if user == "_json_key":
            return secret == json.dumps(self.key)
        expiry = self.access_tokens.get(secret, 0.0)
        return user == "oauth2accesstoken" and self.clock() < expiry

    def login_refused(self, user: str) -> FrontResponse:
        return FrontResponse.json(oci_errors("UNAUTHORIZED", "Not Authorized."), 401)

    def authorize(self, req: FrontRequest) -> FrontResponse | None:
        if req.path == self.token_path:  # the token service shares the registry's /v2/
            return self.issue(req)
        return super().authorize(req)

    def _grant(self, form: dict[str, str]) -> FrontResponse:
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return FrontResponse.json({"error": "unsupported_grant_type"}, 400)
        try:
            head, body, signature = form["assertion"].split(".")
            assert self.public is not None
            self.public.verify(
                _unb64(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
            header, claims = json.loads(_unb64(head)), json.loads(_unb64(body))
        except (KeyError, ValueError, InvalidSignature):
            return FrontResponse.json(
                {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, 400
            )
        now = time.time()
        if (
            header.get("alg") != "RS256"
            or header.get("kid") != self.key["private_key_id"]
            or claims.get("iss") != self.key["client_email"]
            or claims.get("aud") != self.key["token_uri"]
            or not claims["iat"] - 60 <= now <= claims["exp"]
            or claims["exp"] - claims["iat"] > 3600
        ):
            return FrontResponse.json(
                {"error": "invalid_grant", "error_description": "Invalid JWT: claims refused."},
                400,
            )
        token = "ya29." + secrets.token_urlsafe(24)
        self.access_tokens[token] = self.clock() + TOKEN_LIFETIME
        return FrontResponse.json(
            {"access_token": token, "expires_in": TOKEN_LIFETIME - 1, "token_type": "Bearer"}
        )
