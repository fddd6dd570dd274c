"""One measurement each: blob GETs with curl, manifest GETs with wrk, a push with skopeo.

Every function runs external clients against one server, waits for them with a bound,
and returns what it saw together with the server tree's CPU seconds over the same span.
A client failure (wrong size, non-zero exit) raises RuntimeError: a benchmark that
silently counts broken transfers would report nonsense.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass

from loadtests import proctree
from loadtests.image import MANIFEST_MEDIA_TYPE, Layout
from loadtests.servers import Server

MIB = 1 << 20
GIB = 1 << 30


@dataclass(frozen=True)
class BlobRun:
    clients: int
    bytes: int
    wall_s: float
    cpu_s: float
    peak_rss: int

    @property
    def mib_s(self) -> float:
        return self.bytes / MIB / self.wall_s

    @property
    def cpu_per_gib(self) -> float:
        return self.cpu_s / (self.bytes / GIB)


def _kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        p.wait()


def blob_get(
    server: Server, repo: str, digest: str, size: int, clients: int, timeout: float = 600.0
) -> BlobRun:
    """``clients`` concurrent curl processes each GET the whole blob to /dev/null.

    Throughput is all bytes over the wall time from launching the first curl to the last
    one finishing. Peak RSS of the server tree is sampled every 50 ms meanwhile.
    """
    url = f"{server.base_url}/v2/{repo}/blobs/{digest}"
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}"]
    procs: list[subprocess.Popen[bytes]] = []
    with proctree.sample_peak_rss(*server.pids) as rss:
        cpu0 = proctree.cpu_seconds(*server.pids)
        t0 = time.perf_counter()
        try:
            for _ in range(clients):
                procs.append(subprocess.Popen([*argv, url], stdout=subprocess.PIPE))
            outs = [p.communicate(timeout=max(1.0, t0 + timeout - time.perf_counter()))[0]
                    for p in procs]  # fmt: skip
        finally:
            _kill_all(procs)
        wall = time.perf_counter() - t0
        cpu1 = proctree.cpu_seconds(*server.pids)
    total = 0
    for p, out in zip(procs, outs, strict=True):
        code, got, _ = out.decode().split()
        if p.returncode != 0 or code != "200" or int(got) != size:
            raise RuntimeError(
                f"{server.label}: blob GET failed (curl exit {p.returncode}, HTTP {code}, "
                f"{got} of {size} bytes)\n{server.tail_log()}"
            )
        total += int(got)
    return BlobRun(clients, total, wall, cpu1 - cpu0, rss.peak)


@dataclass(frozen=True)
class WrkRun:
    connections: int
    requests: int
    rps: float
    non_2xx: int
    socket_errors: int
    cpu_s: float

    @property
    def cpu_us_per_req(self) -> float:
        return self.cpu_s / max(1, self.requests) * 1e6


_REQS = re.compile(r"(\d+) requests in")
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKERR = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def manifest_get(server: Server, repo: str, tag: str, connections: int, seconds: float) -> WrkRun:
    """wrk with two threads and ``connections`` connections GETs the manifest by tag."""
    url = f"{server.base_url}/v2/{repo}/manifests/{tag}"
    argv = [
        "wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s",
        "-H", f"Accept: {MANIFEST_MEDIA_TYPE}", url,
    ]  # fmt: skip
    cpu0 = proctree.cpu_seconds(*server.pids)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    cpu1 = proctree.cpu_seconds(*server.pids)
    out = res.stdout
    reqs, rps = _REQS.search(out), _RPS.search(out)
    if res.returncode != 0 or reqs is None or rps is None:
        raise RuntimeError(f"{server.label}: wrk failed ({res.returncode}):\n{out}{res.stderr}")
    non2xx = _NON2XX.search(out)
    sockerr = _SOCKERR.search(out)
    return WrkRun(
        connections,
        int(reqs.group(1)),
        float(rps.group(1)),
        int(non2xx.group(1)) if non2xx else 0,
        sum(int(g) for g in sockerr.groups()) if sockerr else 0,
        cpu1 - cpu0,
    )


def check_manifest(server: Server, repo: str, tag: str) -> None:
    """One curl GET of the manifest must answer 200, or RuntimeError."""
    url = f"{server.base_url}/v2/{repo}/manifests/{tag}"
    res = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
         f"Accept: {MANIFEST_MEDIA_TYPE}", url],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if res.stdout != "200":
        raise RuntimeError(f"{server.label}: manifest GET {url} -> {res.stdout}")


@dataclass(frozen=True)
class PushRun:
    wall_s: float
    bytes: int
    cpu_s: float

    @property
    def mib_s(self) -> float:
        return self.bytes / MIB / self.wall_s


def push(server: Server, layout: Layout, repo: str, timeout: float = 600.0) -> PushRun:
    """``skopeo copy`` the layout to ``repo:<layout tag>`` on the server and time it."""
    dest = f"docker://{server.host}/{repo}:{layout.tag}"
    argv = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", layout.skopeo_ref, dest]
    cpu0 = proctree.cpu_seconds(*server.pids)
    t0 = time.perf_counter()
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    cpu1 = proctree.cpu_seconds(*server.pids)
    if res.returncode != 0:
        raise RuntimeError(
            f"{server.label}: push to {dest} failed:\n{res.stderr}\n{server.tail_log()}"
        )
    return PushRun(wall, layout.layer_size, cpu1 - cpu0)
