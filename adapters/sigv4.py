"""AWS Signature Version 4 for request headers (the ``Authorization`` header form).

The steps are AWS's: a canonical request (method, URI-encoded path, sorted query, sorted
lowercased headers, the signed header list, the body's SHA-256), a string to sign
(``AWS4-HMAC-SHA256``, the time, the credential scope, the canonical request's hash), and a
signing key derived from the secret by HMAC-SHA256 over date, region, service and
``aws4_request``. A session token (temporary credentials) is sent and signed as
``X-Amz-Security-Token``. Pure functions: no I/O, the time is passed in.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

__all__ = [
    "ALGORITHM",
    "AwsCredentials",
    "canonical_request",
    "sign_headers",
    "signing_key",
    "string_to_sign",
]

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """An access key id, its secret and an optional session token; ``repr`` hides both."""

    access_key: str
    secret_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def _canonical_query(url: httpx.URL) -> str:
    pairs = [(_encode(k), _encode(v)) for k, v in url.params.multi_items()]
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _canonical_path(url: httpx.URL) -> str:
    path = url.path or "/"
    return quote(path, safe="/-_.~")


def canonical_request(
    method: str, url: httpx.URL, headers: Mapping[str, str], payload_hash: str
) -> tuple[str, str]:
    """The canonical request and its signed-header list, for the ``headers`` to sign."""
    folded: dict[str, str] = {}
    for name, value in headers.items():
        folded[name.lower()] = " ".join(value.strip().split())
    names = sorted(folded)
    signed = ";".join(names)
    lines = [
        method.upper(),
        _canonical_path(url),
        _canonical_query(url),
        "".join(f"{name}:{folded[name]}\n" for name in names),
        signed,
        payload_hash,
    ]
    return "\n".join(lines), signed


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """``kSigning`` = HMAC chain of ``AWS4<secret>`` over date, region, service, request."""
    key = _hmac(("AWS4" + secret_key).encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def sign_headers(
    method: str,
    url: httpx.URL | str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    credentials: AwsCredentials,
    region: str,
    service: str,
    now: datetime | None = None,
) -> dict[str, str]:
    """``headers`` plus ``Host``, ``X-Amz-Date``, the session token when there is one,
    and ``Authorization``: every header returned is signed, so send exactly these."""
    url = httpx.URL(url)
    when = (now or datetime.now(UTC)).astimezone(UTC)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    out = {k: v for k, v in headers.items() if k.lower() not in ("host", "authorization")}
    out["Host"] = url.netloc.decode("ascii")
    out["X-Amz-Date"] = amz_date
    if credentials.session_token:
        out["X-Amz-Security-Token"] = credentials.session_token
    scope = f"{date}/{region}/{service}/aws4_request"
    canonical, signed = canonical_request(method, url, out, hashlib.sha256(body).hexdigest())
    key = signing_key(credentials.secret_key, date, region, service)
    signature = hmac.new(
        key, string_to_sign(amz_date, scope, canonical).encode(), hashlib.sha256
    ).hexdigest()
    out["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return out
