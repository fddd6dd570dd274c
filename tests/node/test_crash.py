"""Crash safety: SIGKILL the node at random moments during concurrent pushes, many times.

After every restart LMDB must open clean, every acknowledged push must be there with the
right bytes, nothing partial may be visible (no blob whose bytes differ from its digest,
no manifest that does not parse or hash right), and interrupted upload sessions must be
resumable from the offset the node reports, or purged.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import trio

pytestmark = [
    pytest.mark.slow,
    # httpx leaves a request body's async generator unfinalized when the server dies
    # mid-request, which is exactly what this test does to it.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

ROUNDS = int(os.environ.get("PORTMESH_CRASH_ROUNDS", "10"))
WORKERS = 4
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Session:
    repo: str
    location: str
    content: bytes
    acked: int


@dataclass
class Ledger:
    """What the node acknowledged, so it can be checked after every crash."""

    blobs: dict[tuple[str, str], int] = field(default_factory=dict)  # (repo, digest) -> size
    manifests: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, tag) -> digest
    sessions: list[Session] = field(default_factory=list)


async def _start_node(data: Path) -> tuple[trio.Process, str]:
    port = _free_port()
    log = data.parent / "node.log"
    with log.open("ab") as stderr:
        proc = await trio.lowlevel.open_process(
            [
                sys.executable,
                "-m",
                "portmesh.cli",
                "node",
                "--listen",
                f"127.0.0.1:{port}",
                "--data",
                str(data),
                "--no-auth",
                "--log-level",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:
        with trio.move_on_after(30):
            while proc.poll() is None:
                try:
                    if (await client.get(f"{base}/v2/")).status_code == 200:
                        return proc, base
                except httpx.TransportError:
                    pass
                await trio.sleep(0.05)
    proc.kill()
    await proc.wait()
    raise AssertionError(f"node did not start (exit {proc.returncode}): {log.read_text()[-3000:]}")


async def _push_blob_monolithic(c: httpx.AsyncClient, repo: str, data: bytes, led: Ledger) -> None:
    digest = _digest(data)
    r = await c.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201, r.text
    led.blobs[(repo, digest)] = len(data)


async def _push_blob_chunked(
    c: httpx.AsyncClient, repo: str, data: bytes, led: Ledger, rng: random.Random
) -> None:
    r = await c.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, r.text
    session = Session(repo, r.headers["Location"], data, 0)
    led.sessions.append(session)
    while session.acked < len(data):
        end = min(len(data), session.acked + rng.randint(1, 512 * 1024))
        r = await c.patch(
            session.location,
            content=data[session.acked : end],
            headers={"Content-Range": f"{session.acked}-{end - 1}"},
        )
        assert r.status_code == 202, r.text
        session.acked = end
    r = await c.put(session.location, params={"digest": _digest(data)})
    assert r.status_code == 201, r.text
    led.sessions.remove(session)
    led.blobs[(repo, _digest(data))] = len(data)


async def _push_image(
    c: httpx.AsyncClient, repo: str, tag: str, led: Ledger, rng: random.Random
) -> None:
    layers = [rng.randbytes(rng.randint(0, 1024 * 1024)) for _ in range(rng.randint(1, 3))]
    config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
    for i, layer in enumerate(layers):
        if i % 2:
            await _push_blob_chunked(c, repo, layer, led, rng)
        else:
            await _push_blob_monolithic(c, repo, layer, led)
    await _push_blob_monolithic(c, repo, config, led)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": _digest(x),
                    "size": len(x),
                }
                for x in layers
            ],
        }
    ).encode()
    r = await c.put(
        f"/v2/{repo}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 201, r.text
    led.manifests[(repo, tag)] = _digest(manifest)


async def _pusher(base: str, worker: int, round_: int, led: Ledger, seed: int) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        for i in range(1000):
            repo = f"crash/w{worker}"
            try:
                await _push_image(c, repo, f"r{round_}-{i}", led, rng)
            except httpx.TransportError:
                return  # the node was killed


async def _get_verified(c: httpx.AsyncClient, url: str) -> bytes:
    r = await c.get(url)
    assert r.status_code == 200, (url, r.status_code, r.text[:300])
    assert _digest(r.content) == r.headers["Docker-Content-Digest"], url
    return r.content


async def _verify(base: str, led: Ledger) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
        for (repo, digest), size in led.blobs.items():
            body = await _get_verified(c, f"/v2/{repo}/blobs/{digest}")
            assert _digest(body) == digest and len(body) == size
        for (repo, tag), digest in led.manifests.items():
            r = await c.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
            assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == digest
        # Nothing partial anywhere: every tag of every repository resolves to a manifest
        # whose bytes hash right and whose blobs are all there, whole.
        repos = (await c.get("/v2/_catalog")).json()["repositories"]
        for repo in repos:
            tags = (await c.get(f"/v2/{repo}/tags/list")).json()["tags"]
            for tag in tags:
                body = await _get_verified(c, f"/v2/{repo}/manifests/{tag}")
                doc = json.loads(body)
                for desc in [doc["config"], *doc["layers"]]:
                    blob = await _get_verified(c, f"/v2/{repo}/blobs/{desc['digest']}")
                    assert len(blob) == desc["size"]


def _verify_blob_files(data: Path) -> None:
    """Every file in the content-addressed store holds exactly the bytes its name says."""
    root = data / "blobs" / "blobs" / "sha256"
    for path in root.rglob("*"):
        if path.is_file():
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, path


async def _resume_sessions(base: str, led: Ledger) -> tuple[int, int]:
    resumed = purged = 0
    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
        for session in list(led.sessions):
            led.sessions.remove(session)
            r = await c.get(session.location)
            if r.status_code == 404:
                assert r.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
                purged += 1
                continue
            assert r.status_code == 204, r.text
            # "0-0" means no bytes or one byte; what was acknowledged tells them apart.
            end = int(r.headers["Range"].split("-")[1])
            offset = 0 if (end == 0 and session.acked == 0) else end + 1
            assert offset >= session.acked, (offset, session.acked)
            rest = session.content[offset:]
            r = await c.put(
                session.location,
                params={"digest": _digest(session.content)},
                content=rest,
                headers={"Content-Range": f"{offset}-{offset + len(rest) - 1}"} if rest else {},
            )
            assert r.status_code == 201, r.text
            led.blobs[(session.repo, _digest(session.content))] = len(session.content)
            resumed += 1
    return resumed, purged


async def test_sigkill_during_concurrent_pushes(tmp_path: Path) -> None:
    data = tmp_path / "node"
    led = Ledger()
    seed = int(os.environ.get("PORTMESH_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"crash test seed {seed}")
    resumed_total = 0
    for round_ in range(ROUNDS):
        proc, base = await _start_node(data)
        try:
            await _verify(base, led)
            resumed, _ = await _resume_sessions(base, led)
            resumed_total += resumed
            async with trio.open_nursery() as nursery:
                for w in range(WORKERS):
                    nursery.start_soon(_pusher, base, w, round_, led, rng.randrange(1 << 30))
                await trio.sleep(rng.uniform(0.2, 1.5))
                proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            await proc.wait()
        _verify_blob_files(data)
    proc, base = await _start_node(data)
    try:
        await _verify(base, led)
        resumed, _ = await _resume_sessions(base, led)
        resumed_total += resumed
        await _verify(base, led)
    finally:
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await proc.wait() == 0
    assert len(led.manifests) > ROUNDS, "the pushers should have completed some images"
    assert resumed_total > 0, "some upload sessions should have been interrupted and resumed"
