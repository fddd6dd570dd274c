"""The policy snapshot: round trips through the codec and JSON, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portmesh import codec
from portmesh.access import Permission
from portmesh.policy import (
    Policy,
    PolicyError,
    Project,
    Revocations,
    Robot,
    ServiceInfo,
    load_policy_file,
)
from portmesh.tokens import SigningKey


def sample() -> Policy:
    key = SigningKey.generate("k1")
    return Policy(
        version=3,
        issued_at=1_700_000_000.5,
        service=ServiceInfo("portmesh-coordinator", "edge-1"),
        keys=(key.public_jwk(),),
        projects={
            "pub": Project("pub", 1, public=True),
            "team": Project("team", 2),
            "hub": Project("hub", 3, public=True, proxy="dockerhub"),
        },
        robots={
            "robot$team+ci": Robot(
                "robot$team+ci",
                "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA",
                expires_at=1_800_000_000,
                permissions=(Permission("team", "repository", ("pull", "push")),),
            ),
            "robot$off": Robot("robot$off", "$argon2id$x", disabled=True),
        },
        revoked=Revocations(frozenset({"robot$old"}), frozenset({"jti-1"})),
        upstreams=({"name": "dockerhub", "url": "https://registry-1.docker.io"},),
    )


def test_codec_round_trip() -> None:
    policy = sample()
    data = policy.to_bytes()
    assert data[0] == codec.SCHEMA_VERSION and data[1] == 1  # compressed frame
    again = Policy.from_bytes(data)
    assert again == policy
    assert again.public_projects == {"pub", "hub"}
    assert again.keyset().kids == ["k1"]
    assert again.robots["robot$team+ci"].expired(1_800_000_000)
    assert not again.robots["robot$team+ci"].expired(1_799_999_999)
    assert not again.robots["robot$off"].expired(10**12)


def test_secret_hashes_stay_out_of_repr() -> None:
    policy = sample()
    assert "argon2id" not in repr(policy)


def test_json_file_and_codec_file(tmp_path: Path) -> None:
    policy = sample()
    as_json = tmp_path / "policy.json"
    as_json.write_text(json.dumps(policy.to_doc()))
    assert load_policy_file(as_json) == policy
    as_frame = tmp_path / "policy.bin"
    as_frame.write_bytes(policy.to_bytes())
    assert load_policy_file(as_frame) == policy


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.pop("version"), "version"),
        (lambda d: d.update(version="3"), "version"),
        (lambda d: d.update(version=True), "version"),
        (lambda d: d["service"].pop("audience"), "audience"),
        (lambda d: d["projects"][0].update(public="yes"), "projects.public"),
        (lambda d: d["robots"][0].update(secret_hash=None), "secret_hash"),
        (lambda d: d["robots"][0]["permissions"][0].update(actions=[1]), "actions"),
        (lambda d: d["keys"][0].update(x="!!"), "keys"),
        (lambda d: d.update(revoked={"robots": [5]}), "revoked.robots"),
    ],
)
def test_bad_documents_name_the_field(change: object, field: str) -> None:
    doc = json.loads(json.dumps(sample().to_doc()))
    change(doc)  # type: ignore[operator]
    with pytest.raises(PolicyError, match=field.split(".")[-1]):
        Policy.from_doc(doc)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy_file(tmp_path / "missing")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(PolicyError, match="JSON"):
        load_policy_file(broken)
    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(sample().to_bytes()[:-5])
    with pytest.raises(PolicyError, match="invalid policy"):
        load_policy_file(corrupt)
    other_version = tmp_path / "v9.bin"
    other_version.write_bytes(codec.encode(sample().to_doc(), version=9))
    with pytest.raises(PolicyError, match="schema version 9"):
        load_policy_file(other_version)
