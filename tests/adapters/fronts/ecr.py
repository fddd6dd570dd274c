"""Amazon ECR as the adapter meets it: the ECR API (AWS JSON 1.1 on ``POST /``) served by
moto's ``ThreadedMotoServer`` behind a check of the SigV4 signature with botocore's own
signer, and the registry's HTTP Basic check of the ``AWS:<password>`` moto issues.

moto answers ``GetAuthorizationToken`` with ``expiresAt`` in 2015; the front sets the 12
hours ECR gives, so the adapter's expiry handling is exercised as against ECR.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from moto.server import ThreadedMotoServer

from fronts.common import TokenFlow, basic_user
from support.authfront import FrontRequest, FrontResponse
from support.servers import free_port

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
ACCESS_KEY = "AKIAPORTMESHTEST0001"
SECRET_KEY = "portmesh/test/secret/key/0000000000000000"
#: what moto's GetAuthorizationToken puts after "AWS:" (moto/ecr/responses.py)
MOTO_PASSWORD = f"{ACCOUNT}-auth-token"
LIFETIME = 12 * 3600


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's server on a free loopback port; yields its URL."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def signature_problem(req: FrontRequest, secret: str) -> str | None:
    """Why the request's SigV4 signature is wrong (botocore recomputes it), or None."""
    auth = req.headers.get("authorization", "")
    try:
        head, rest = auth.split(" ", 1)
        fields = dict(part.strip().split("=", 1) for part in rest.split(","))
        access_key, date, region, service, _ = fields["Credential"].split("/")
        signed = fields["SignedHeaders"].split(";")
    except (ValueError, KeyError):
        return "Authorization header requires Credential, SignedHeaders and Signature"
    if head != "AWS4-HMAC-SHA256" or access_key != ACCESS_KEY:
        return "The security token included in the request is invalid."
    headers = {name: req.headers[name] for name in signed if name != "host"}
    request = AWSRequest("POST", req.base_url + req.path, data=req.body, headers=headers)
    request.context["timestamp"] = req.headers.get("x-amz-date", "")
    signer = SigV4Auth(BotoCredentials(ACCESS_KEY, secret), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if expected != fields["Signature"] or not date:
        return (
            "The request signature we calculated does not match the signature you provided."
            " Check your AWS Secret Access Key and signing method."
        )
    return None


class ECR(TokenFlow):
    """ECR's API (moto behind a SigV4 check) and its registry's Basic auth; the registry
    refuses the next request once when ``reject_next`` is set (a revoked token)."""

    def __init__(self, moto_url: str, clock: Callable[[], float]) -> None:
        super().__init__({}, clock=clock, expires_in=LIFETIME)
        self.moto_url = moto_url
        self.targets: list[str] = []
        self.reject_next = False

    async def endpoint(self, req: FrontRequest) -> FrontResponse | None:
        if req.method != "POST" or req.path != "/":
            return None
        target = req.headers.get("x-amz-target", "")
        self.targets.append(target.rsplit(".", 1)[-1])
        problem = signature_problem(req, SECRET_KEY)
        if problem is not None:
            kind = (
                "UnrecognizedClientException" if "token" in problem else "InvalidSignatureException"
            )
            return FrontResponse.json({"__type": kind, "message": problem}, 400)
        headers = {k: v for k, v in req.headers.items() if k not in ("host", "content-length")}
        async with httpx.AsyncClient() as http:
            answer = await http.post(self.moto_url + "/", headers=headers, content=req.body)
        doc: dict[str, Any] = answer.json()
        for entry in doc.get("authorizationData", []):
            entry["expiresAt"] = time.time() + LIFETIME
        return FrontResponse(
            answer.status_code,
            {"content-type": "application/x-amz-json-1.1"},
            json.dumps(doc).encode(),
        )

    def authorize(self, req: FrontRequest) -> FrontResponse | None:
        if self._throttled:
            self._throttled -= 1
            return self.too_many()
        if basic_user(req) == ("AWS", MOTO_PASSWORD) and not self.reject_next:
            return None
        self.reject_next = False
        return self.refusal()

    def refusal(self) -> FrontResponse:
        realm = f"https://{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/"
        return FrontResponse(
            401,
            {"www-authenticate": f'Basic realm="{realm}",service="ecr.amazonaws.com"'},
            b"Not Authorized\n",
        )
