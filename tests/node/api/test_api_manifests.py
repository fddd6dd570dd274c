"""Manifests: PUT/GET/HEAD/DELETE by tag and by digest, every media type, every error."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import trio
from oci_helpers import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    EMPTY_CONFIG,
    EMPTY_JSON,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Pushed,
    RunningNode,
    assert_error,
    blob_url,
    digest_of,
    image_manifest,
    make_config,
    push_blob,
    push_image,
    push_manifest,
    start_node,
)

REPO = "library/manifests"


def manifest_url(repo: str, reference: str) -> str:
    return f"/v2/{repo}/manifests/{reference}"


async def assert_manifest(
    client: httpx.AsyncClient, repo: str, reference: str, body: bytes, media_type: str
) -> None:
    """GET and HEAD by ``reference`` answer the exact bytes with the right headers."""
    digest = digest_of(body)
    response = await client.get(manifest_url(repo, reference), headers={"Accept": media_type})
    assert response.status_code == 200, response.text[:300]
    assert response.content == body
    assert response.headers["Content-Type"] == media_type
    assert response.headers["Content-Length"] == str(len(body))
    assert response.headers["Docker-Content-Digest"] == digest
    head = await client.head(manifest_url(repo, reference), headers={"Accept": media_type})
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Type"] == media_type
    assert head.headers["Content-Length"] == str(len(body))
    assert head.headers["Docker-Content-Digest"] == digest


def assert_put_created(response: httpx.Response, repo: str, body: bytes) -> None:
    digest = digest_of(body)
    assert response.status_code == 201, response.text[:300]
    assert response.headers["Docker-Content-Digest"] == digest
    assert httpx.URL(response.headers["Location"]).path == manifest_url(repo, digest)


async def layer_descriptors(client: httpx.AsyncClient, repo: str) -> tuple[dict, dict]:
    config = b'{"architecture":"amd64","os":"linux"}'
    layer = b"layer content"
    return (
        {
            "mediaType": OCI_CONFIG,
            "digest": await push_blob(client, repo, config),
            "size": len(config),
        },
        {
            "mediaType": OCI_LAYER,
            "digest": await push_blob(client, repo, layer),
            "size": len(layer),
        },
    )


# --- image manifests -------------------------------------------------------------------


async def test_put_oci_manifest_by_tag(client: httpx.AsyncClient) -> None:
    config, layer = await layer_descriptors(client, REPO)
    body = image_manifest(config, [layer])
    response = await push_manifest(client, REPO, "v1", body)
    assert_put_created(response, REPO, body)
    await assert_manifest(client, REPO, "v1", body, OCI_MANIFEST)
    await assert_manifest(client, REPO, digest_of(body), body, OCI_MANIFEST)


async def test_put_oci_manifest_by_digest(client: httpx.AsyncClient) -> None:
    config, layer = await layer_descriptors(client, REPO)
    body = image_manifest(config, [layer])
    response = await push_manifest(client, REPO, digest_of(body), body)
    assert_put_created(response, REPO, body)
    await assert_manifest(client, REPO, digest_of(body), body, OCI_MANIFEST)
    tags = await client.get(f"/v2/{REPO}/tags/list")
    assert tags.status_code in (200, 404)
    if tags.status_code == 200:
        assert not tags.json().get("tags")


async def test_put_manifest_by_sha512_digest(client: httpx.AsyncClient) -> None:
    config, layer = await layer_descriptors(client, REPO)
    body = image_manifest(config, [layer])
    digest = digest_of(body, "sha512")
    response = await push_manifest(client, REPO, digest, body)
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digest
    got = await client.get(manifest_url(REPO, digest))
    assert got.status_code == 200
    assert got.content == body
    assert got.headers["Docker-Content-Digest"] == digest


async def test_manifest_bytes_are_kept_exactly(client: httpx.AsyncClient) -> None:
    config, layer = await layer_descriptors(client, REPO)
    doc = json.loads(image_manifest(config, [layer]))
    body = ("{\n\t" + json.dumps(doc, separators=(" ,", " : "))[1:] + "   \n").encode()
    assert json.loads(body) == doc
    assert_put_created(await push_manifest(client, REPO, "odd", body), REPO, body)
    await assert_manifest(client, REPO, "odd", body, OCI_MANIFEST)


async def test_docker_schema2_manifest(client: httpx.AsyncClient) -> None:
    pushed = await push_image(client, REPO, "docker", docker=True)
    await assert_manifest(client, REPO, "docker", pushed.body, DOCKER_MANIFEST)


async def test_retagging_moves_the_tag(client: httpx.AsyncClient) -> None:
    first = await push_image(client, REPO, "moving", seed="one")
    second = await push_image(client, REPO, "moving", seed="two")
    await assert_manifest(client, REPO, "moving", second.body, OCI_MANIFEST)
    await assert_manifest(client, REPO, first.digest, first.body, OCI_MANIFEST)


# --- indexes ---------------------------------------------------------------------------


def index_body(children: list[Pushed], media_type: str = OCI_INDEX) -> bytes:
    manifests = []
    for arch, child in zip(("amd64", "arm64", "s390x"), children, strict=False):
        manifests.append({**child.descriptor(), "platform": {"architecture": arch, "os": "linux"}})
    return json.dumps(
        {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}
    ).encode()


async def test_oci_image_index(client: httpx.AsyncClient) -> None:
    children = [await push_image(client, REPO, seed=arch) for arch in ("amd64", "arm64")]
    body = index_body(children)
    assert_put_created(await push_manifest(client, REPO, "multi", body, OCI_INDEX), REPO, body)
    await assert_manifest(client, REPO, "multi", body, OCI_INDEX)


async def test_docker_manifest_list(client: httpx.AsyncClient) -> None:
    children = [await push_image(client, REPO, seed=a, docker=True) for a in ("amd64", "arm64")]
    body = index_body(children, DOCKER_LIST)
    assert_put_created(await push_manifest(client, REPO, "list", body, DOCKER_LIST), REPO, body)
    await assert_manifest(client, REPO, "list", body, DOCKER_LIST)


async def test_index_with_missing_child_is_manifest_blob_unknown(
    client: httpx.AsyncClient,
) -> None:
    present = await push_image(client, REPO, seed="present")
    missing = Pushed(b'{"not":"pushed"}', digest_of(b'{"not":"pushed"}'), OCI_MANIFEST, ())
    body = index_body([present, missing])
    response = await push_manifest(client, REPO, "broken", body, OCI_INDEX)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert_error(await client.get(manifest_url(REPO, "broken")), 404, "MANIFEST_UNKNOWN")


async def test_index_child_from_another_repo_is_unknown(client: httpx.AsyncClient) -> None:
    child = await push_image(client, "team/other", seed="other")
    response = await push_manifest(client, REPO, "cross", index_body([child]), OCI_INDEX)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")


# --- artifacts -------------------------------------------------------------------------


async def test_artifact_manifest_with_empty_config(client: httpx.AsyncClient) -> None:
    assert await push_blob(client, REPO, EMPTY_JSON) == EMPTY_CONFIG["digest"]
    payload = b"an artifact payload"
    layer = {
        "mediaType": "application/vnd.example.thing",
        "size": len(payload),
        "digest": await push_blob(client, REPO, payload),
    }
    body = image_manifest(EMPTY_CONFIG, [layer], artifactType="application/vnd.example.thing")
    assert_put_created(await push_manifest(client, REPO, "artifact", body), REPO, body)
    await assert_manifest(client, REPO, "artifact", body, OCI_MANIFEST)
    empty = await client.get(blob_url(REPO, EMPTY_CONFIG["digest"]))
    assert empty.content == EMPTY_JSON


async def test_artifact_manifest_without_layers_uses_empty_layer(
    client: httpx.AsyncClient,
) -> None:
    await push_blob(client, REPO, EMPTY_JSON)
    body = image_manifest(EMPTY_CONFIG, [EMPTY_CONFIG], artifactType="application/vnd.example")
    assert_put_created(await push_manifest(client, REPO, "empty-art", body), REPO, body)


# --- subject ---------------------------------------------------------------------------


async def test_subject_answers_oci_subject_header(client: httpx.AsyncClient) -> None:
    subject = await push_image(client, REPO, "subject")
    await push_blob(client, REPO, EMPTY_JSON)
    body = image_manifest(
        EMPTY_CONFIG,
        [EMPTY_CONFIG],
        artifactType="application/vnd.example.sig",
        subject=subject.descriptor(),
    )
    response = await push_manifest(client, REPO, digest_of(body), body)
    assert_put_created(response, REPO, body)
    assert response.headers["OCI-Subject"] == subject.digest


async def test_subject_may_be_missing(client: httpx.AsyncClient) -> None:
    """The spec lets a manifest name a subject the registry does not have (yet)."""
    await push_blob(client, REPO, EMPTY_JSON)
    absent = {"mediaType": OCI_MANIFEST, "digest": digest_of(b"absent"), "size": 6}
    body = image_manifest(
        EMPTY_CONFIG, [EMPTY_CONFIG], artifactType="application/x", subject=absent
    )
    response = await push_manifest(client, REPO, digest_of(body), body)
    assert_put_created(response, REPO, body)
    assert response.headers["OCI-Subject"] == absent["digest"]


async def test_manifest_without_subject_has_no_oci_subject_header(
    client: httpx.AsyncClient,
) -> None:
    config, layer = await layer_descriptors(client, REPO)
    response = await push_manifest(client, REPO, "plain", image_manifest(config, [layer]))
    assert response.status_code == 201
    assert "OCI-Subject" not in response.headers


# --- errors ----------------------------------------------------------------------------


async def test_missing_layer_is_manifest_blob_unknown(client: httpx.AsyncClient) -> None:
    config, _ = await layer_descriptors(client, REPO)
    missing = {"mediaType": OCI_LAYER, "digest": digest_of(b"not pushed"), "size": 10}
    response = await push_manifest(client, REPO, "bad", image_manifest(config, [missing]))
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert_error(await client.get(manifest_url(REPO, "bad")), 404, "MANIFEST_UNKNOWN")


async def test_missing_config_is_manifest_blob_unknown(client: httpx.AsyncClient) -> None:
    _, layer = await layer_descriptors(client, REPO)
    config = {"mediaType": OCI_CONFIG, "digest": digest_of(b"no config"), "size": 9}
    response = await push_manifest(client, REPO, "bad", image_manifest(config, [layer]))
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")


async def test_blob_of_another_repo_is_manifest_blob_unknown(client: httpx.AsyncClient) -> None:
    config, layer = await layer_descriptors(client, "team/other")
    response = await push_manifest(client, REPO, "bad", image_manifest(config, [layer]))
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="broken-json"),
        pytest.param(b"", id="empty"),
        pytest.param(b"[]", id="array"),
        pytest.param(
            b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode() + b'"}', id="no-config"
        ),
        pytest.param(b'{"schemaVersion": 1}', id="schema-1"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
    ],
)
async def test_malformed_manifest_is_manifest_invalid(
    client: httpx.AsyncClient, body: bytes
) -> None:
    response = await push_manifest(client, REPO, "bad", body)
    assert_error(response, 400, "MANIFEST_INVALID")


async def test_descriptor_with_bad_digest_is_manifest_invalid(client: httpx.AsyncClient) -> None:
    config, _ = await layer_descriptors(client, REPO)
    bad = {"mediaType": OCI_LAYER, "digest": "sha256:nothex", "size": 3}
    response = await push_manifest(client, REPO, "bad", image_manifest(config, [bad]))
    assert_error(response, 400, "MANIFEST_INVALID", "DIGEST_INVALID")


async def test_media_type_mismatch_is_manifest_invalid(client: httpx.AsyncClient) -> None:
    config, layer = await layer_descriptors(client, REPO)
    body = image_manifest(config, [layer])  # says OCI manifest
    response = await push_manifest(client, REPO, "bad", body, DOCKER_MANIFEST)
    assert_error(response, 400, "MANIFEST_INVALID")


async def test_oversized_manifest_is_rejected(client: httpx.AsyncClient) -> None:
    config, layer = await layer_descriptors(client, REPO)
    body = image_manifest(config, [layer], annotations={"pad": "x" * (4 * 1024 * 1024 + 1)})
    response = await push_manifest(client, REPO, "huge", body)
    assert_error(response, 413, "MANIFEST_INVALID", "SIZE_INVALID")
    assert_error(await client.get(manifest_url(REPO, "huge")), 404, "MANIFEST_UNKNOWN")


async def test_manifest_just_under_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    config, layer = await layer_descriptors(client, REPO)
    probe = image_manifest(config, [layer], annotations={"pad": ""})
    pad = 4 * 1024 * 1024 - len(probe)
    body = image_manifest(config, [layer], annotations={"pad": "x" * pad})
    assert len(body) == 4 * 1024 * 1024
    assert_put_created(await push_manifest(client, REPO, "big", body), REPO, body)


async def test_put_by_digest_with_other_body_is_digest_invalid(client: httpx.AsyncClient) -> None:
    config, layer = await layer_descriptors(client, REPO)
    body = image_manifest(config, [layer])
    wrong = digest_of(body + b" ")
    response = await push_manifest(client, REPO, wrong, body)
    assert_error(response, 400, "DIGEST_INVALID")
    assert_error(await client.get(manifest_url(REPO, wrong)), 404, "MANIFEST_UNKNOWN")
    assert_error(await client.get(manifest_url(REPO, digest_of(body))), 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize(
    "tag",
    [
        pytest.param("-leading-dash", id="leading-dash"),
        pytest.param(".leading-dot", id="leading-dot"),
        pytest.param("a" * 129, id="too-long"),
        pytest.param("has+plus", id="plus"),
        pytest.param("sha256:" + "0" * 10, id="bad-digest-like"),
    ],
)
async def test_invalid_tag_is_rejected(client: httpx.AsyncClient, tag: str) -> None:
    config, layer = await layer_descriptors(client, REPO)
    response = await push_manifest(client, REPO, tag, image_manifest(config, [layer]))
    assert_error(response, 400, "TAG_INVALID", "MANIFEST_INVALID", "DIGEST_INVALID")


async def test_longest_valid_tag_is_accepted(client: httpx.AsyncClient) -> None:
    tag = "A" + "b" * 127
    pushed = await push_image(client, REPO, tag)
    await assert_manifest(client, REPO, tag, pushed.body, OCI_MANIFEST)


async def test_unknown_manifest_is_manifest_unknown(client: httpx.AsyncClient) -> None:
    await push_image(client, REPO, "exists")
    assert_error(await client.get(manifest_url(REPO, "nope")), 404, "MANIFEST_UNKNOWN")
    assert_error(await client.get(manifest_url(REPO, digest_of(b"nope"))), 404, "MANIFEST_UNKNOWN")
    head = await client.head(manifest_url(REPO, "nope"))
    assert head.status_code == 404
    assert head.content == b""


async def test_manifest_in_unknown_repo_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(manifest_url("no/such/repo", "latest"))
    assert_error(response, 404, "MANIFEST_UNKNOWN", "NAME_UNKNOWN")


async def test_manifest_is_visible_only_in_its_repository(client: httpx.AsyncClient) -> None:
    pushed = await push_image(client, "team/one", "v1")
    await push_image(client, "team/two", "v1", seed="two")
    assert_error(await client.get(manifest_url("team/two", pushed.digest)), 404, "MANIFEST_UNKNOWN")


# --- delete ----------------------------------------------------------------------------


async def test_delete_manifest_by_digest(client: httpx.AsyncClient) -> None:
    pushed = await push_image(client, REPO, "doomed")
    response = await client.delete(manifest_url(REPO, pushed.digest))
    assert response.status_code == 202
    assert_error(await client.get(manifest_url(REPO, pushed.digest)), 404, "MANIFEST_UNKNOWN")
    assert_error(await client.get(manifest_url(REPO, "doomed")), 404, "MANIFEST_UNKNOWN")
    assert_error(await client.delete(manifest_url(REPO, pushed.digest)), 404, "MANIFEST_UNKNOWN")


async def test_delete_tag_removes_only_the_tag(client: httpx.AsyncClient) -> None:
    pushed = await push_image(client, REPO, "keep")
    second = await push_manifest(client, REPO, "drop", pushed.body)
    assert second.status_code == 201
    response = await client.delete(manifest_url(REPO, "drop"))
    assert response.status_code == 202
    assert_error(await client.get(manifest_url(REPO, "drop")), 404, "MANIFEST_UNKNOWN")
    await assert_manifest(client, REPO, "keep", pushed.body, OCI_MANIFEST)
    await assert_manifest(client, REPO, pushed.digest, pushed.body, OCI_MANIFEST)
    tags = (await client.get(f"/v2/{REPO}/tags/list")).json()["tags"]
    assert tags == ["keep"]


async def test_delete_unknown_tag_is_manifest_unknown(client: httpx.AsyncClient) -> None:
    await push_image(client, REPO, "exists")
    assert_error(await client.delete(manifest_url(REPO, "nope")), 404, "MANIFEST_UNKNOWN")


async def test_manifest_survives_restart(node: RunningNode) -> None:
    pushed = await push_image(node.client, REPO, "durable")
    await node.restart()
    await assert_manifest(node.client, REPO, "durable", pushed.body, OCI_MANIFEST)


async def test_put_without_content_type_uses_body_media_type(client: httpx.AsyncClient) -> None:
    config, layer = await layer_descriptors(client, REPO)
    body = image_manifest(config, [layer])
    response = await client.put(manifest_url(REPO, "untyped"), content=body)
    assert response.status_code in (201, 400)
    if response.status_code == 201:
        got = await client.get(manifest_url(REPO, "untyped"))
        assert got.headers["Content-Type"] == OCI_MANIFEST
    else:
        assert_error(response, 400, "MANIFEST_INVALID")


async def test_body_without_media_type_takes_the_content_type(client: httpx.AsyncClient) -> None:
    config, layer = await layer_descriptors(client, REPO)
    body = json.dumps({"schemaVersion": 2, "config": config, "layers": [layer]}).encode()
    assert_put_created(await push_manifest(client, REPO, "bare", body, OCI_MANIFEST), REPO, body)
    await assert_manifest(client, REPO, "bare", body, OCI_MANIFEST)


@pytest.mark.parametrize(
    "reference",
    [
        pytest.param("md5:" + "0" * 32, id="md5"),
        pytest.param("sha256:" + "0" * 10, id="short"),
    ],
)
async def test_get_by_malformed_digest_is_client_error(
    client: httpx.AsyncClient, reference: str
) -> None:
    await push_image(client, REPO, "v1")
    response = await client.get(manifest_url(REPO, reference))
    assert_error(
        response,
        (400, 404, 405),
        "DIGEST_INVALID",
        "UNSUPPORTED",
        "MANIFEST_UNKNOWN",
        "TAG_INVALID",
    )


async def test_wrong_method_is_405_unsupported(client: httpx.AsyncClient) -> None:
    await push_image(client, REPO, "v1")
    response = await client.post(manifest_url(REPO, "v1"), content=b"{}")
    assert_error(response, 405, "UNSUPPORTED")


async def test_deletes_refused_when_disabled(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        running = await start_node(nursery, make_config(tmp_path / "n", delete_enabled=False))
        try:
            pushed = await push_image(running.client, REPO, "v1")
            for url in (
                manifest_url(REPO, pushed.digest),
                manifest_url(REPO, "v1"),
                blob_url(REPO, pushed.blobs[1]),
            ):
                response = await running.client.delete(url)
                assert_error(response, 405, "UNSUPPORTED")
            await assert_manifest(running.client, REPO, "v1", pushed.body, OCI_MANIFEST)
        finally:
            await running.aclose()


async def test_manifest_referencing_deleted_blob_is_refused(client: httpx.AsyncClient) -> None:
    config, layer = await layer_descriptors(client, REPO)
    assert (await client.delete(blob_url(REPO, layer["digest"]))).status_code == 202
    response = await push_manifest(client, REPO, "v1", image_manifest(config, [layer]))
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")


async def test_pushing_the_same_manifest_twice_is_idempotent(client: httpx.AsyncClient) -> None:
    pushed = await push_image(client, REPO, "same")
    response = await push_manifest(client, REPO, "same", pushed.body)
    assert_put_created(response, REPO, pushed.body)
    await assert_manifest(client, REPO, "same", pushed.body, OCI_MANIFEST)


async def test_delete_by_digest_untags(client: httpx.AsyncClient) -> None:
    pushed = await push_image(client, REPO, "one")
    assert (await push_manifest(client, REPO, "two", pushed.body)).status_code == 201
    other = await push_image(client, REPO, "three", seed="other")
    assert (await client.delete(manifest_url(REPO, pushed.digest))).status_code == 202
    tags = (await client.get(f"/v2/{REPO}/tags/list")).json()["tags"]
    assert tags == ["three"]
    await assert_manifest(client, REPO, "three", other.body, OCI_MANIFEST)


async def test_index_head_by_tag(client: httpx.AsyncClient) -> None:
    children = [await push_image(client, REPO, seed=arch) for arch in ("amd64", "arm64")]
    body = index_body(children)
    assert (await push_manifest(client, REPO, "multi", body, OCI_INDEX)).status_code == 201
    head = await client.head(manifest_url(REPO, "multi"), headers={"Accept": OCI_INDEX})
    assert head.status_code == 200
    assert head.headers["Content-Type"] == OCI_INDEX
    assert head.headers["Docker-Content-Digest"] == digest_of(body)


async def test_deleted_tag_stays_deleted_after_restart(node: RunningNode) -> None:
    pushed = await push_image(node.client, REPO, "gone")
    assert (await node.client.delete(manifest_url(REPO, "gone"))).status_code == 202
    await node.restart()
    assert_error(await node.client.get(manifest_url(REPO, "gone")), 404, "MANIFEST_UNKNOWN")
    await assert_manifest(node.client, REPO, pushed.digest, pushed.body, OCI_MANIFEST)
