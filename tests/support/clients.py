"""Small wrappers over the real clients the integration tests drive (skopeo, plain HTTP)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import httpx

from .servers import Server, run_tool

__all__ = [
    "MANIFEST_ACCEPT",
    "digest_of",
    "head_manifest_digest",
    "skopeo_copy",
    "skopeo_inspect_raw",
]

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)

_TLS = ("--src-tls-verify=false", "--dest-tls-verify=false")


async def skopeo_copy(
    skopeo: str,
    source: str,
    dest: str,
    *,
    all_images: bool = False,
    global_args: Sequence[str] = (),
) -> None:
    """``skopeo copy`` that keeps manifests byte for byte (``--preserve-digests``).

    ``source`` and ``dest`` are skopeo references (``oci:DIR:TAG``, ``docker://HOST/R:T``).
    ``global_args`` go before ``copy`` (``--override-arch=arm64``). The insecure policy
    only skips signature policy files; it does not relax digests.
    """
    args = [
        skopeo,
        "--insecure-policy",
        *global_args,
        "copy",
        "--quiet",
        "--preserve-digests",
        *_TLS,
    ]
    if all_images:
        args.append("--all")
    await run_tool([*args, source, dest])


async def skopeo_inspect_raw(skopeo: str, reference: str) -> bytes:
    """The manifest bytes ``skopeo inspect --raw`` gets for ``reference``."""
    return await run_tool([skopeo, "inspect", "--raw", "--tls-verify=false", reference])


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def head_manifest_digest(server: Server, repository: str, reference: str) -> str:
    """The ``Docker-Content-Digest`` that ``HEAD /v2/<repo>/manifests/<ref>`` answers.

    Raises:
        AssertionError: the HEAD did not answer 200 or had no digest header.
    """
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
        response = await client.head(
            f"/v2/{repository}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT}
        )
    assert response.status_code == 200, (
        f"HEAD {repository}:{reference} on {server.kind}: {response.status_code}"
    )
    digest = response.headers.get("Docker-Content-Digest")
    assert digest, f"{server.kind} sent no Docker-Content-Digest for {repository}:{reference}"
    return digest
