"""SigV4 against AWS's published test-suite vectors and botocore's signer."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from adapters.sigv4 import AwsCredentials, canonical_request, sign_headers, signing_key

# aws-sig-v4-test-suite: key, secret, region, service and time of every vector
SUITE = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
WHEN = datetime(2015, 8, 30, 12, 36, 0, tzinfo=UTC)
PREFIX = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "


def suite_sign(method: str, url: str, body: bytes = b"") -> str:
    headers = sign_headers(
        method, url, {}, body, credentials=SUITE, region="us-east-1", service="service", now=WHEN
    )
    assert headers["X-Amz-Date"] == "20150830T123600Z"
    assert headers["Host"] == "example.amazonaws.com"
    return headers["Authorization"]


def test_get_vanilla() -> None:
    assert suite_sign("GET", "https://example.amazonaws.com/") == (
        PREFIX + "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


def test_get_vanilla_query_order_key_case() -> None:
    authorization = suite_sign("GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1")
    assert authorization.endswith(
        "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
    )


def test_post_vanilla() -> None:
    assert suite_sign("POST", "https://example.amazonaws.com/").endswith(
        "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
    )


def test_canonical_request_folds_and_sorts_headers() -> None:
    canonical, signed = canonical_request(
        "get",
        httpx.URL("https://h.test/a%20b?b=2&a=1&a=0"),
        {"X-B": "  two   words ", "Host": "h.test"},
        "e3b0",
    )
    assert signed == "host;x-b"
    assert canonical == "GET\n/a%20b\na=0&a=1&b=2\nhost:h.test\nx-b:two words\n\nhost;x-b\ne3b0"


def test_signing_key_and_session_token_match_botocore() -> None:
    creds = AwsCredentials("AKIDEXAMPLE", "secret/with+chars", "session-token-value")
    body = b'{"registryIds":["123456789012"]}'
    url = "https://api.ecr.eu-west-1.amazonaws.com/"
    base = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
    }
    ours = sign_headers(
        "POST", url, base, body, credentials=creds, region="eu-west-1", service="ecr", now=WHEN
    )
    assert ours["X-Amz-Security-Token"] == "session-token-value"
    assert "x-amz-security-token" in ours["Authorization"]
    theirs = AWSRequest(
        "POST",
        url,
        data=body,
        headers={
            **base,
            "X-Amz-Date": ours["X-Amz-Date"],
            "X-Amz-Security-Token": "session-token-value",
        },
    )
    theirs.context["timestamp"] = ours["X-Amz-Date"]
    signer = SigV4Auth(
        BotoCredentials(creds.access_key, creds.secret_key, creds.session_token), "ecr", "eu-west-1"
    )
    expected = signer.signature(
        signer.string_to_sign(theirs, signer.canonical_request(theirs)), theirs
    )
    assert ours["Authorization"].endswith("Signature=" + expected)
    assert signing_key("s", "20150830", "r", "svc") != signing_key("t", "20150830", "r", "svc")
    assert "secret" not in repr(creds) and "session-token" not in repr(creds)
