"""EdDSA JWTs: round trip, every refusal reason, rotation, JWKS, scopes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

import portmesh.tokens as tokens_module
from portmesh.tokens import (
    Access,
    Claims,
    KeySet,
    SigningKey,
    TokenError,
    format_scope,
    intersect,
    new_claims,
    parse_scopes,
    sign,
    verify,
)

NOW = 1_700_000_000.0
PULL = Access("repository", "team/app", ("pull",))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**changes: object) -> Claims:
    base = new_claims(
        issuer="coordinator",
        subject="robot$team+ci",
        audience="edge-1",
        access=[PULL],
        ttl=300,
        now=NOW,
    )
    return Claims(**{**base.to_json(), "access": base.access, **changes})  # type: ignore[arg-type]


def keyset(*keys: SigningKey) -> KeySet:
    return KeySet.from_jwks({"keys": [key.public_jwk() for key in keys]})


def reason_of(token: str, keys: KeySet, **kwargs: object) -> str:
    args: dict[str, object] = {"audience": "edge-1", "now": NOW, "leeway": 0.0, **kwargs}
    with pytest.raises(TokenError) as info:
        verify(token, keys, **args)  # type: ignore[arg-type]
    return info.value.reason


def test_round_trip_keeps_every_claim() -> None:
    key = SigningKey.generate()
    original = claims()
    token = sign(original, key)
    got = verify(token, keyset(key), audience="edge-1", now=NOW + 10, issuers=["coordinator"])
    assert got == original
    assert got.allows("repository", "team/app", "pull")
    assert not got.allows("repository", "team/app", "push")
    assert not got.allows("repository", "team/other", "pull")
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "EdDSA", "typ": "JWT", "kid": key.kid}
    assert len(original.jti) >= 16 and original.jti != claims().jti


def test_expired_and_not_yet_valid_with_leeway() -> None:
    key = SigningKey.generate()
    token = sign(claims(), key)
    keys = keyset(key)
    assert reason_of(token, keys, now=NOW + 300) == "expired"
    assert reason_of(token, keys, now=NOW - 1) == "not yet valid"
    # inside the leeway both pass
    verify(token, keys, audience="edge-1", now=NOW + 310, leeway=30)
    verify(token, keys, audience="edge-1", now=NOW - 20, leeway=30)
    assert reason_of(token, keys, now=NOW + 331, leeway=30) == "expired"


def test_wrong_signing_key_and_unknown_kid() -> None:
    key, other = SigningKey.generate("k1"), SigningKey.generate("k1")
    assert reason_of(sign(claims(), other), keyset(key)) == "bad signature"
    stranger = SigningKey.generate("k2")
    assert reason_of(sign(claims(), stranger), keyset(key)) == "unknown kid"


def test_token_for_another_node_is_a_replay() -> None:
    key = SigningKey.generate()
    token = sign(claims(aud="edge-2"), key)
    assert reason_of(token, keyset(key)) == "wrong audience"


def test_untrusted_issuer() -> None:
    key = SigningKey.generate()
    token = sign(claims(iss="somebody"), key)
    assert reason_of(token, keyset(key), issuers=["coordinator"]) == "wrong issuer"


def test_tampered_payload_fails_the_signature() -> None:
    key = SigningKey.generate()
    head, body, sig = sign(claims(), key).split(".")
    doc = json.loads(base64.urlsafe_b64decode(body + "=="))
    doc["access"][0]["actions"] = ["pull", "push", "delete"]
    forged = ".".join((head, b64(json.dumps(doc).encode()), sig))
    assert reason_of(forged, keyset(key)) == "bad signature"
    assert reason_of(".".join((head, body, sig[:-4] + "AAAA")), keyset(key)) == "bad signature"


def test_alg_none_and_hs256_are_refused() -> None:
    key = SigningKey.generate()
    keys = keyset(key)
    body = b64(json.dumps(claims().to_json()).encode())
    none_head = b64(json.dumps({"alg": "none", "kid": key.kid}).encode())
    assert reason_of(f"{none_head}.{body}.", keys) == "malformed"
    # HS256 "signed" with the public key as the HMAC secret (the classic confusion attack)
    hs_head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    secret = bytes(key.key.verify_key)
    mac = hmac.new(secret, f"{hs_head}.{body}".encode(), hashlib.sha256).digest()
    assert reason_of(f"{hs_head}.{body}.{b64(mac)}", keys) == "malformed"
    extra_head = b64(json.dumps({"alg": "EdDSA", "kid": key.kid, "jku": "http://x"}).encode())
    assert reason_of(f"{extra_head}.{body}.{b64(b'0' * 64)}", keys) == "malformed"


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "a.b.c.d", "!!!.e30.AA", "e30.e30.AA", "x" * 70_000, "W10.e30.AA"],
)
def test_garbage_is_malformed(token: str) -> None:
    key = SigningKey.generate()
    assert reason_of(token, keyset(key)) in ("malformed", "unknown kid")


def test_claim_types_are_checked_after_the_signature() -> None:
    key = SigningKey.generate()
    header = b64(json.dumps({"alg": "EdDSA", "kid": key.kid}).encode())
    doc = {**claims().to_json(), "exp": "never"}
    body = b64(json.dumps(doc).encode())
    signature = key.key.sign(f"{header}.{body}".encode()).signature
    assert reason_of(f"{header}.{body}.{b64(signature)}", keyset(key)) == "malformed"


def test_rotation_old_key_valid_while_its_kid_is_kept() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    old_token, new_token = sign(claims(), old), sign(claims(), new)
    during = keyset(old, new)
    for token in (old_token, new_token):
        assert verify(token, during, audience="edge-1", now=NOW).sub == "robot$team+ci"
    after = keyset(new)
    assert reason_of(old_token, after) == "unknown kid"
    verify(new_token, after, audience="edge-1", now=NOW)


def test_jwks_round_trip_and_bad_keys() -> None:
    a, b = SigningKey.generate("a"), SigningKey.generate("b")
    keys = keyset(a, b)
    assert keys.kids == ["a", "b"]
    again = KeySet.from_jwks(json.loads(json.dumps(keys.to_jwks())))
    assert again.kids == ["a", "b"]
    verify(sign(claims(), b), again, audience="edge-1", now=NOW)
    jwk = a.public_jwk()
    for bad in (
        {**jwk, "kty": "RSA"},
        {**jwk, "crv": "X25519"},
        {**jwk, "x": b64(b"short")},
        {k: v for k, v in jwk.items() if k != "kid"},
    ):
        with pytest.raises(ValueError):
            KeySet.from_jwks({"keys": [bad]})


def test_signing_key_repr_hides_the_secret() -> None:
    key = SigningKey.generate("kid-1")
    assert key.seed.hex() not in repr(key)
    assert SigningKey.from_seed(key.seed, "kid-1").public_jwk() == key.public_jwk()


def test_parse_scopes() -> None:
    assert parse_scopes(["repository:team/app:pull,push"]) == [
        Access("repository", "team/app", ("pull", "push"))
    ]
    got = parse_scopes(
        ["repository:a/b:pull repository:c:push", "registry:catalog:*", "repository:a/b:delete"]
    )
    assert got == [
        Access("repository", "a/b", ("delete", "pull")),
        Access("repository", "c", ("push",)),
        Access("registry", "catalog", ("*",)),
    ]
    # a name with a registry port: the name lies between the first and the last ':'
    assert parse_scopes(["repository:localhost:5000/app:pull"]) == [
        Access("repository", "localhost:5000/app", ("pull",))
    ]
    # a resource class is accepted and folded into the type
    assert parse_scopes(["repository(plugin):vieux/sshfs:pull"]) == [
        Access("repository", "vieux/sshfs", ("pull",))
    ]
    assert parse_scopes([]) == []
    for bad in (
        "repository",
        "repository:name",
        ":a:pull",
        "repo!:a:pull",
        "repository::pull",
        "repository(x:a:pull",
    ):
        with pytest.raises(ValueError):
            parse_scopes([bad])


def test_format_scope_round_trips() -> None:
    entry = Access.of("repository", "team/app", ["push", "pull", "pull"])
    assert format_scope(entry) == "repository:team/app:pull,push"
    assert parse_scopes([format_scope(entry)]) == [entry]


def test_intersect_requested_with_granted() -> None:
    requested = parse_scopes(
        [
            "repository:a:pull,push,delete",
            "repository:b:pull",
            "registry:catalog:*",
            "repository:c:push",
        ]
    )
    granted = [
        Access("repository", "a", ("pull", "push")),
        Access("repository", "b", ("*",)),
        Access("repository", "c", ("pull",)),
    ]
    assert intersect(requested, granted) == [
        Access("repository", "a", ("pull", "push")),
        Access("repository", "b", ("pull",)),
    ]
    assert intersect(requested, []) == []


def test_all_names_are_exported() -> None:
    for name in tokens_module.__all__:
        assert hasattr(tokens_module, name)
