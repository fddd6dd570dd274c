"""Measurements for the pull-through benchmark (``loadtests.proxy``).

The upstream's requests are counted from docker-registry's access log (Apache combined
format on its stdout: ``"GET /v2/... HTTP/1.1" 200 <bytes written>``); a line is written
when a request ends, so ``AccessLog.settle`` waits for the log to go quiet first. Every
client function bounds its wait and kills its clients on the way out.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from loadtests import proctree
from loadtests.servers import Server

ACCEPT = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])  # fmt: skip

_LINE = re.compile(r'^\S+ \S+ \S+ \[[^\]]*\] "(\w+) (\S+) [^"]*" (\d{3}) (\d+|-)')


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    status: int
    size: int


class AccessLog:
    """The upstream's access log, read from a mark onwards."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mark = 0

    def mark(self) -> None:
        self._mark = self.path.stat().st_size

    def settle(self, quiet: float = 1.5, timeout: float = 120.0) -> None:
        """Return once the log has not grown for ``quiet`` seconds (at most ``timeout``)."""
        deadline = time.monotonic() + timeout
        size, since = self.path.stat().st_size, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.path.stat().st_size
            if now != size:
                size, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return

    def since_mark(self) -> list[Hit]:
        """Requests logged since ``mark`` (other lines, such as error logs, are skipped)."""
        with open(self.path, "rb") as f:
            f.seek(self._mark)
            text = f.read().decode(errors="replace")
        hits = []
        for line in text.splitlines():
            m = _LINE.match(line)
            if m:
                size = 0 if m.group(4) == "-" else int(m.group(4))
                hits.append(Hit(m.group(1), m.group(2), int(m.group(3)), size))
        return hits


def pull(
    ref: str, tag: str, dest: Path, timeout: float = 600.0, cpus: set[int] | None = None
) -> float:
    """``skopeo copy docker://ref oci:dest:tag`` (on ``cpus`` only, if given) and return
    its wall time; ``dest`` is removed afterwards. RuntimeError if skopeo fails.
    """
    argv = ["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}",
            f"oci:{dest}:{tag}"]  # fmt: skip
    bind = None if cpus is None else lambda: os.sched_setaffinity(0, cpus)
    t0 = time.perf_counter()
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, preexec_fn=bind)
        wall = time.perf_counter() - t0
    finally:
        subprocess.run(["rm", "-rf", str(dest)], check=False)
    if res.returncode != 0:
        raise RuntimeError(f"pull of {ref} failed:\n{res.stderr}")
    return wall


@dataclass
class ColdGets:
    clients: int
    wall_s: float
    #: one line per client whose status, size, exit code or sha256 was wrong
    bad: list[str]
    hashed: int
    upstream_bytes: int = 0
    upstream_gets: int = 0
    #: CPU seconds of the serving process tree over the run
    cpu_s: float = 0.0
    size: int = 0

    @property
    def cpu_per_gib(self) -> float:
        return self.cpu_s / (self.clients * self.size / (1 << 30)) if self.size else 0.0


def _hash_body(proc: subprocess.Popen[bytes], out: list[str]) -> None:
    h = hashlib.sha256()
    n = 0
    assert proc.stdout is not None
    while chunk := proc.stdout.read(1 << 20):
        h.update(chunk)
        n += len(chunk)
    out.append(f"sha256:{h.hexdigest()} {n}")


def concurrent_gets(url: str, digest: str, size: int, clients: int,
                    timeout: float = 600.0, cacert: Path | None = None) -> ColdGets:  # fmt: skip
    """``clients`` curl processes GET ``url`` at once. Each must exit 0 with HTTP 200 and
    ``size`` bytes; the first and the last client's bodies are also hashed and must match
    ``digest``. Failures are returned in ``bad`` (not raised): they are what is measured.
    ``cacert``: the CA file an HTTPS server's certificate is checked against.
    """
    fmt = "%{http_code} %{size_download}"
    curl = ["curl", "-s", *(["--cacert", str(cacert)] if cacert else [])]
    hashed = {0, clients - 1}
    procs: list[subprocess.Popen[bytes]] = []
    threads: list[tuple[threading.Thread, list[str]]] = []
    t0 = time.perf_counter()
    try:
        for i in range(clients):
            if i in hashed:
                p = subprocess.Popen([*curl, "-o", "-", "-w", "%{stderr}" + fmt, url],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
                sink: list[str] = []
                t = threading.Thread(target=_hash_body, args=(p, sink), daemon=True)
                t.start()
                threads.append((t, sink))
            else:
                p = subprocess.Popen([*curl, "-o", "/dev/null", "-w", fmt, url],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
            procs.append(p)
        for t, _ in threads:
            t.join(max(1.0, t0 + timeout - time.perf_counter()))
        outs = []
        for i, p in enumerate(procs):
            left = max(1.0, t0 + timeout - time.perf_counter())
            stdout, stderr = p.communicate(timeout=left)
            outs.append((stderr if i in hashed else stdout).decode())
        wall = time.perf_counter() - t0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            p.wait()
    bad = []
    for i, (p, out) in enumerate(zip(procs, outs, strict=True)):
        code, _, got = out.partition(" ")
        if p.returncode != 0 or code != "200" or got != str(size):
            bad.append(f"client {i}: curl exit {p.returncode}, HTTP {code}, {got} of {size} B")
    for (_, sink), i in zip(threads, sorted(hashed), strict=True):
        if sink != [f"{digest} {size}"]:
            bad.append(f"client {i}: body is {sink[0] if sink else 'unread'}, not {digest}")
    return ColdGets(clients, wall, bad, len(threads), size=size)


def tag_gets(server: Server, repo: str, tag: str, n: int) -> None:
    """``n`` sequential GETs of the manifest by tag, each on a new connection (so that
    they reach every worker process of a server that has several); each must answer 200
    with a body. RuntimeError otherwise.
    """
    for _ in range(n):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT})
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 200 or not body:
            raise RuntimeError(f"{server.label}: tag GET -> {resp.status}: {body[:200]!r}")


@dataclass
class TagRun:
    requests: int
    rps: float
    errors: int
    cpu_us: float
    upstream_cpu_us: float
    upstream_requests: int = field(default=0)


_REQS = re.compile(r"(\d+) requests in")
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKERR = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def wrk_tags(server: Server, repo: str, tag: str, connections: int, seconds: float,
             upstream: Server) -> TagRun:  # fmt: skip
    """wrk (2 threads) GETs the manifest by tag; CPU of the proxy's and the upstream's
    process trees per request over the same span.
    """
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s",
            "-H", f"Accept: {ACCEPT}", f"{server.base_url}/v2/{repo}/manifests/{tag}"]  # fmt: skip
    cpu0, up0 = proctree.cpu_seconds(*server.pids), proctree.cpu_seconds(upstream.pid)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    cpu1, up1 = proctree.cpu_seconds(*server.pids), proctree.cpu_seconds(upstream.pid)
    out = res.stdout
    reqs, rps = _REQS.search(out), _RPS.search(out)
    if res.returncode != 0 or reqs is None or rps is None:
        raise RuntimeError(f"{server.label}: wrk failed ({res.returncode}):\n{out}{res.stderr}")
    n = max(1, int(reqs.group(1)))
    non2xx, sockerr = _NON2XX.search(out), _SOCKERR.search(out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(g) for g in sockerr.groups()) if sockerr else 0)  # fmt: skip
    return TagRun(n, float(rps.group(1)), errors, (cpu1 - cpu0) / n * 1e6, (up1 - up0) / n * 1e6)
