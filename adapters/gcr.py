"""Google Container Registry and Artifact Registry (``gcr``), with a service-account key.

Two logins, as Google documents them for Docker clients:

- ``json_key`` (default): HTTP Basic to the registry's token service with the username
  ``_json_key`` and the whole key file as the password.
- ``access_token``: an OAuth2 access token from the key's ``token_uri`` through the JWT
  bearer grant (RFC 7523: a JWT signed RS256 with the key's private key, posted as
  ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>``), then Basic
  with the username ``oauth2accesstoken`` and the token as the password. Tokens live an
  hour; a new one is fetched shortly before that, or at once when it is refused.

Spec: ``url`` the registry (``https://gcr.io``, ``https://europe-docker.pkg.dev``),
``password`` the service-account key JSON; options ``auth`` (``json_key`` or
``access_token``), ``scope`` (OAuth2 scope, default cloud-platform read-only).
Names: ``<project>/<image>`` on gcr.io, ``<project>/<repository>/<image>`` on Artifact
Registry (``*-docker.pkg.dev``; option ``artifact_registry`` says so for other hosts).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .auth import Credentials
from .cloudnaming import NameRule
from .credentials import ApiErrors, auth_mode, call_json, deadline_in
from .errors import ProtocolError
from .oci import OCIClient
from .options import SpecOptions
from .registry import Capability

if TYPE_CHECKING:
    from .registry import AdapterSpec

__all__ = [
    "CAPABILITIES",
    "JWT_BEARER",
    "TYPE",
    "GCRClient",
    "ServiceAccountLogin",
    "create",
]

TYPE = "gcr"
CAPABILITIES = frozenset({Capability.PULL, Capability.LIST_TAGS, Capability.REFERRERS})
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_SCOPE = "https://www.googleapis.com/auth/cloud-platform.read-only"
JSON_KEY_USER = "_json_key"
ACCESS_TOKEN_USER = "oauth2accesstoken"
GRANT_LIFETIME = 3600
OPTIONS = {"auth": str, "scope": str, "artifact_registry": bool}
ERRORS = ApiErrors(
    "error",
    "error_description",
    auth_codes={"invalid_grant", "invalid_client", "unauthorized_client", "access_denied"},
    throttle_codes={"rate_limit_exceeded"},
)
_SEGMENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
GCR_RULE = NameRule(
    "gcr.io",
    rf"[a-z0-9.:-]+(?:/{_SEGMENT})+",
    min_segments=2,
    form="<project>/<image>",
)
ARTIFACT_RULE = NameRule(
    "Artifact Registry",
    rf"[a-z0-9.:-]+/[a-z0-9-]+(?:/{_SEGMENT})+",
    min_segments=3,
    form="<project>/<repository>/<image>",
)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


class ServiceAccountLogin:
    """The JWT bearer grant for one service-account key: a credential provider."""

    def __init__(
        self,
        key: dict[str, Any],
        *,
        http: httpx.AsyncClient,
        scope: str,
        clock: Callable[[], float],
    ) -> None:
        try:
            self.email = str(key["client_email"])
            self.token_uri = str(key["token_uri"])
            private = serialization.load_pem_private_key(key["private_key"].encode(), None)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(
                "upstream type 'gcr': the key needs client_email, token_uri and an RSA"
                " private_key in PEM"
            ) from exc
        if not isinstance(private, rsa.RSAPrivateKey):
            raise ValueError("upstream type 'gcr': the key's private_key is not RSA")
        self._private = private
        self._key_id = str(key.get("private_key_id") or "")
        self._http = http
        self._scope = scope
        self._clock = clock

    def __repr__(self) -> str:
        return f"ServiceAccountLogin({self.email!r}, {self.token_uri!r})"

    def assertion(self, now: float) -> str:
        """The signed JWT of the grant, issued at wall-clock ``now``."""
        header = {"alg": "RS256", "typ": "JWT", "kid": self._key_id}
        claims = {
            "iss": self.email,
            "scope": self._scope,
            "aud": self.token_uri,
            "iat": int(now),
            "exp": int(now) + GRANT_LIFETIME,
        }
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        signature = self._private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    async def __call__(self) -> tuple[Credentials, float]:
        form = {"grant_type": JWT_BEARER, "assertion": self.assertion(time.time())}
        request = self._http.build_request("POST", self.token_uri, data=form)
        doc = await call_json(self._http, request, f"access token for {self.email}", ERRORS)
        token = doc.get("access_token")
        if not isinstance(token, str) or not token:
            raise ProtocolError(f"access token for {self.email}: the answer has no access_token")
        lifetime = doc.get("expires_in")
        if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)):
            lifetime = GRANT_LIFETIME
        return Credentials(ACCESS_TOKEN_USER, token), deadline_in(self._clock, float(lifetime))


class GCRClient(OCIClient):
    """An ``Upstream`` for gcr.io or Artifact Registry; names follow its layout."""

    def __init__(self, base_url: str, *, rule: NameRule, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self.rule = rule

    def remote_name(self, repo: str) -> str:
        return self.rule.check(repo)


def create(
    spec: AdapterSpec, *, http: httpx.AsyncClient, clock: Callable[[], float] = time.monotonic
) -> GCRClient:
    """See the module docstring; ValueError for a key or option that cannot work."""
    options = SpecOptions(spec, OPTIONS, default_url="https://gcr.io")
    if not spec.password:
        raise ValueError("upstream type 'gcr': password must be the service-account key JSON")
    try:
        key = json.loads(spec.password)
    except ValueError:
        raise ValueError("upstream type 'gcr': password is not a JSON key file") from None
    if not isinstance(key, dict):
        raise ValueError("upstream type 'gcr': password is not a JSON key file")
    credentials: Credentials | ServiceAccountLogin
    if auth_mode(TYPE, options.get_str("auth"), ("json_key", "access_token")) == "json_key":
        credentials = Credentials(JSON_KEY_USER, spec.password)
    else:
        scope = options.get_str("scope") or DEFAULT_SCOPE
        credentials = ServiceAccountLogin(key, http=http, scope=scope, clock=clock)
    artifact = spec.options.get("artifact_registry")
    if artifact is None:
        artifact = httpx.URL(options.url).host.endswith("-docker.pkg.dev")
    return GCRClient(
        options.url,
        rule=ARTIFACT_RULE if artifact else GCR_RULE,
        http=http,
        credentials=credentials,
        timeout=options.timeout,
        clock=clock,
    )
