"""Pull-through benchmark: a Portmesh node and docker-registry's proxy mode, one upstream.

    .venv/bin/python -m loadtests.proxy [--quick] [--workers N] ...

Starts, on 127.0.0.1 in one temp dir, an upstream docker-registry (filesystem storage,
access log on), pushes one image with a random layer to it with skopeo, and compares two
pull-through caches of it: a Portmesh node (``[[upstream]]`` with ``project = "hub"``) and
docker-registry in proxy mode (``proxy: remoteurl:``). Every cold measurement runs on a
freshly started proxy with an empty data dir. Measured: cold skopeo pulls against the same
pull direct from the upstream; N concurrent cold curl GETs of the layer (upstream bytes
counted from the upstream's access log, every body checked); warm tag GETs within the TTL
(upstream requests caused, wrk throughput, CPU per request) and right after it expired
(on a node with a short ``tag_ttl``: one HEAD is the target, for all worker processes).
Order alternates on every repetition; the table shows medians, and for the cold pull also
the median ratio of each repetition's pull to the direct pull beside it. Everything
started here is stopped and the temp dir removed on exit, failure, Ctrl-C and SIGTERM.
See loadtests/README.md, "Pull-through".
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

if __package__ in (None, ""):  # run as a script: python loadtests/proxy.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests import image, measure, nginx, proctree, proxy_measure, servers
from loadtests.proxy_measure import AccessLog, ColdGets, TagRun
from loadtests.report import Row, a_at_most, median, paired_ratios, render
from tests.support.tls import TLSFiles, make_tls

REPO = "bench/pull"
PROJECT = "hub"
PM, REG, DIRECT = "Portmesh", "docker-registry proxy", "direct from upstream"
#: the cold pull through a hop that only forwards: what any proxy costs at the least
FWD = "forwarding only (nginx)"

_NODE_CONFIG = """\
[[upstream]]
name = "hub"
url = "{url}"
project = "{project}"
tag_ttl = {ttl}
"""


@dataclass
class Settings:
    size_mib: int
    reps: int
    clients: list[int]
    tag_gets: int
    connections: int
    wrk_seconds: float
    workers: int
    tag_ttl: float
    tmpdir: str | None
    short_ttl: float = 3.0
    pull_reps: int = 0


@dataclass
class Results:
    pull_s: dict[str, list[float]] = field(default_factory=dict)
    pull_upstream: dict[str, list[float]] = field(default_factory=dict)
    #: the same pulls with skopeo on a CPU of its own and the servers on the others
    pinned_s: dict[str, list[float]] = field(default_factory=dict)
    #: CPU seconds of the serving process trees per pull (direct: the upstream's)
    pull_cpu: dict[str, list[float]] = field(default_factory=dict)
    cold: dict[str, dict[int, list[ColdGets]]] = field(default_factory=dict)
    #: one cold GET at a time from an HTTPS upstream
    tls: dict[str, list[ColdGets]] = field(default_factory=dict)
    tag_upstream: dict[str, int] = field(default_factory=dict)
    expired_upstream: dict[str, int] = field(default_factory=dict)
    wrk: dict[str, list[TagRun]] = field(default_factory=dict)


def parse_args(argv: list[str] | None) -> Settings:
    p = argparse.ArgumentParser(prog="loadtests.proxy", description=__doc__.split("\n\n")[1])
    p.add_argument("--quick", action="store_true",
                   help="smoke check: 32 MiB layer, 1 repetition, 2 s wrk runs")  # fmt: skip
    p.add_argument("--workers", type=int, default=2, help="Portmesh worker processes (2)")
    p.add_argument("--size-mib", type=int, help="layer size (256; --quick: 32)")
    p.add_argument("--reps", type=int, help="repetitions of every measurement (3; --quick: 1)")
    p.add_argument("--pull-reps", type=int,
                   help="repetitions of the cold pull (9 or --reps; --quick: 1)")  # fmt: skip
    p.add_argument("--clients", default="1,10,50", help="concurrent cold GET clients (1,10,50)")
    p.add_argument("--tag-gets", type=int, default=200, help="sequential warm tag GETs (200)")
    p.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    p.add_argument("--wrk-seconds", type=float, help="length of each wrk run (5; --quick: 2)")
    p.add_argument("--tag-ttl", type=float, default=60.0, help="Portmesh tag_ttl (60)")
    p.add_argument("--short-ttl", type=float, default=3.0,
                   help="Portmesh tag_ttl of the expired-tag measurement (3)")  # fmt: skip
    p.add_argument("--tmpdir", help="where to make the temp dir (default: system temp)")
    a = p.parse_args(argv)
    q = a.quick
    return Settings(
        size_mib=a.size_mib or (32 if q else 256),
        reps=a.reps or (1 if q else 3),
        clients=[int(c) for c in a.clients.split(",")],
        tag_gets=a.tag_gets,
        connections=a.connections,
        wrk_seconds=a.wrk_seconds or (2.0 if q else 5.0),
        workers=a.workers,
        tag_ttl=a.tag_ttl,
        tmpdir=a.tmpdir,
        short_ttl=a.short_ttl,
        pull_reps=a.pull_reps or (1 if q else max(9, a.reps or 3)),
    )


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _spawn(
    kind: str, label: str, workdir: Path, port: int, argv: list[str],
    env: dict[str, str] | None = None, ca: Path | None = None,
) -> servers.Server:  # fmt: skip
    """Start ``argv`` in ``workdir``, in its own session (log in ``workdir/server.log``),
    and wait for /v2/."""
    log_path = workdir / "server.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=workdir,
        )  # fmt: skip
    srv = servers.Server(kind, label, port, proc, workdir, log_path, ca=ca)
    try:
        servers._wait_ready(srv, timeout=30.0)
    except BaseException:
        servers.stop(srv)
        raise
    return srv


def start_registry(
    label: str, workdir: Path, *, upstream: servers.Server | None = None,
    storage: Path | None = None, tls: TLSFiles | None = None,
) -> servers.Server:  # fmt: skip
    """docker-registry: the upstream (access log on; serving ``storage``, another one's
    data, if given; over HTTPS with ``tls``) or, with ``upstream``, its proxy mode."""
    workdir.mkdir(parents=True)
    port = servers.free_port()
    text = servers.REGISTRY_CONFIG.format(
        root=storage or workdir / "data", port=port, no_access_log="true" if upstream else "false"
    )
    if tls is not None:
        text += tls.registry_config()
    env = None
    if upstream is not None:
        text += f"proxy:\n  remoteurl: {upstream.base_url}\n"
        if upstream.ca:  # Go's TLS takes the CAs it trusts from here
            env = {**os.environ, "SSL_CERT_FILE": str(upstream.ca)}
    (workdir / "config.yml").write_text(text)
    kind = "registry-proxy" if upstream else "upstream"
    argv = ["docker-registry", "serve", str(workdir / "config.yml")]
    return _spawn(kind, label, workdir, port, argv, env, tls.ca if tls else None)


def start_forwarder(label: str, workdir: Path, upstream: servers.Server) -> servers.Server:
    """nginx passing every request on to ``upstream`` and every response back as it
    arrives (``nginx.forwarder``)."""
    workdir.mkdir(parents=True)
    port = servers.free_port()
    return _spawn("forwarder", label, workdir, port, nginx.forwarder(workdir, port, upstream.port))


def start_node(
    label: str, workdir: Path, upstream: servers.Server, cfg: Settings,
    tag_ttl: float | None = None, env: dict[str, str] | None = None,
) -> servers.Server:  # fmt: skip
    """A Portmesh node whose project ``hub`` pulls through ``upstream`` (run with the
    environment ``env``, if given)."""
    workdir.mkdir(parents=True)
    port = servers.free_port()
    config = workdir / "node.toml"
    ttl = cfg.tag_ttl if tag_ttl is None else tag_ttl
    text = _NODE_CONFIG.format(url=upstream.base_url, project=PROJECT, ttl=ttl)
    if upstream.ca:
        text += f'ca_file = "{upstream.ca}"\n'
    config.write_text(text)
    argv = [
        servers._portmesh_bin(), "node", "--listen", f"127.0.0.1:{port}",
        "--data", str(workdir / "data"), "--no-auth", "--workers", str(cfg.workers),
        "--log-level", "error", "--config", str(config),
    ]  # fmt: skip
    return _spawn("portmesh-proxy", label, workdir, port, argv, env)


class Bench:
    """The upstream, the image on it, and fresh proxies on demand."""

    def __init__(self, cfg: Settings, tmp: Path, upstream: servers.Server, layout: image.Layout):
        self.cfg, self.tmp, self.upstream, self.layout = cfg, tmp, upstream, layout
        self.access = AccessLog(upstream.log_path)
        self._n = 0
        #: the forwarding hop in front of the upstream, while cold pulls run
        self.forwarder: servers.Server | None = None

    def repo(self, name: str) -> str:
        """The image's repository name as seen through ``name``."""
        return f"{PROJECT}/{REPO}" if name == PM else REPO

    @contextmanager
    def fresh(
        self, name: str, tag_ttl: float | None = None, upstream: servers.Server | None = None
    ) -> Iterator[servers.Server]:
        """A newly started proxy ``name`` with an empty data dir, of the upstream or of
        ``upstream``; stopped and removed after."""
        self._n += 1
        workdir = self.tmp / f"proxy{self._n}"
        up = upstream or self.upstream
        if name == PM:
            srv = start_node(name, workdir, up, self.cfg, tag_ttl)
        else:
            srv = start_registry(name, workdir, upstream=up)
        try:
            yield srv
        finally:
            servers.stop(srv)
            shutil.rmtree(workdir, ignore_errors=True)
            os.sync()  # no writeback of this proxy's files during the next measurement

    def blob_upstream(self) -> tuple[int, int]:
        """(bytes, GETs) of the layer the upstream served since the access log's mark."""
        self.access.settle()
        suffix = f"/blobs/{self.layout.layer_digest}"
        hits = [
            h for h in self.access.since_mark() if h.method == "GET" and h.path.endswith(suffix)
        ]
        return sum(h.size for h in hits), len(hits)


def alternating(names: list[str], rep: int) -> list[str]:
    return names if rep % 2 == 0 else names[::-1]


def cold_pulls(b: Bench, res: Results) -> None:
    """Cold pulls with every process on every CPU, then (given two CPUs or more) with
    skopeo on one CPU and the servers on the others, as when the client runs on a machine
    of its own: the first shows what the proxy's CPU takes from a client beside it. Each
    repetition also pulls through a hop that only forwards (nginx), the least any proxy
    adds."""
    tag = b.layout.tag
    proxy_measure.pull(f"{b.upstream.host}/{REPO}:{tag}", tag, b.tmp / "warm")  # page cache
    cpus = sorted(os.sched_getaffinity(0))
    b.forwarder = start_forwarder(FWD, b.tmp / "forwarder", b.upstream)
    try:
        _cold_pulls(b, res.pull_s, res, None)
        if len(cpus) > 1:
            client, servers_on = {cpus[0]}, set(cpus[1:])
            proctree.pin(servers_on, *b.upstream.pids)
            try:
                _cold_pulls(b, res.pinned_s, res, (client, servers_on))
            finally:
                proctree.pin(set(cpus), *b.upstream.pids)
    finally:
        servers.stop(b.forwarder)
        b.forwarder = None


def _cold_pulls(
    b: Bench, times: dict[str, list[float]], res: Results, pins: tuple[set[int], set[int]] | None
) -> None:
    size = b.layout.layer_size
    tag = b.layout.tag
    how = "" if pins is None else ", client on a CPU of its own"
    for rep in range(b.cfg.pull_reps):
        for name in alternating([DIRECT, PM, REG, FWD], rep):
            dest = b.tmp / f"pull-{rep}"
            with ExitStack() as one:
                fixed = {DIRECT: b.upstream, FWD: b.forwarder}
                srv = fixed.get(name) or one.enter_context(b.fresh(name))
                if pins is not None:
                    proctree.pin(pins[1], *srv.pids)
                b.access.mark()
                cpu0 = proctree.cpu_seconds(*srv.pids)
                secs = proxy_measure.pull(f"{srv.host}/{b.repo(name)}:{tag}", tag, dest,
                                          cpus=None if pins is None else pins[0])  # fmt: skip
                cpu = proctree.cpu_seconds(*srv.pids) - cpu0
                if name != DIRECT and pins is None:
                    got, _ = b.blob_upstream()
                    res.pull_upstream.setdefault(name, []).append(got / size)
            times.setdefault(name, []).append(secs)
            if pins is None:
                res.pull_cpu.setdefault(name, []).append(cpu)
            log(f"cold pull {name}{how}: {secs:.2f} s, server {cpu:.2f} CPU-s")


def cold_gets(b: Bench, res: Results) -> None:
    lay = b.layout
    for clients in b.cfg.clients:
        for rep in range(b.cfg.reps):
            for name in alternating([DIRECT, PM, REG], rep):
                with ExitStack() as one:
                    srv = b.upstream if name == DIRECT else one.enter_context(b.fresh(name))
                    b.access.mark()
                    url = f"{srv.base_url}/v2/{b.repo(name)}/blobs/{lay.layer_digest}"
                    cpu0 = proctree.cpu_seconds(*srv.pids)
                    run = proxy_measure.concurrent_gets(url, lay.layer_digest, lay.layer_size,
                                                        clients)  # fmt: skip
                    run.cpu_s = proctree.cpu_seconds(*srv.pids) - cpu0
                    run.upstream_bytes, run.upstream_gets = b.blob_upstream()
                    if run.bad:
                        log(f"{name}: bad bodies: {run.bad[:3]}\n{srv.tail_log()}")
                res.cold.setdefault(name, {}).setdefault(clients, []).append(run)
                log(f"cold GET x{clients} {name}: {run.wall_s:.2f} s, upstream "
                    f"{run.upstream_bytes / lay.layer_size:.3f}x blob in {run.upstream_gets} "
                    f"GETs, {len(run.bad)} bad bodies")  # fmt: skip


def tls_gets(b: Bench, res: Results) -> None:
    """One cold GET of the layer at a time from an HTTPS upstream: docker-registry serving
    the upstream's data with a certificate from a CA made here, which the proxies (and
    curl, for ``direct``) are given."""
    lay = b.layout
    tls = make_tls(b.tmp / "tls")
    secure = start_registry("upstream (HTTPS)", b.tmp / "upstream-tls",
                            storage=b.upstream.workdir / "data", tls=tls)  # fmt: skip
    try:
        for rep in range(b.cfg.reps):
            for name in alternating([DIRECT, PM, REG], rep):
                with ExitStack() as one:
                    srv = (
                        secure
                        if name == DIRECT
                        else one.enter_context(b.fresh(name, upstream=secure))
                    )
                    url = f"{srv.base_url}/v2/{b.repo(name)}/blobs/{lay.layer_digest}"
                    cpu0 = proctree.cpu_seconds(*srv.pids)
                    run = proxy_measure.concurrent_gets(url, lay.layer_digest, lay.layer_size, 1,
                                                        cacert=srv.ca)  # fmt: skip
                    run.cpu_s = proctree.cpu_seconds(*srv.pids) - cpu0
                res.tls.setdefault(name, []).append(run)
                log(f"cold GET over HTTPS {name}: {run.wall_s:.2f} s, server {run.cpu_s:.2f} "
                    f"CPU-s, {len(run.bad)} bad bodies")  # fmt: skip
    finally:
        servers.stop(secure)


def warm_tags(b: Bench, res: Results, stack: ExitStack) -> None:
    tag = b.layout.tag
    group = {name: stack.enter_context(b.fresh(name)) for name in (PM, REG)}
    for name, srv in group.items():  # warm-up: caches the tag, the manifest, the connection
        proxy_measure.tag_gets(srv, b.repo(name), tag, 1)
    # ... and what a proxy fetches on its own after it (Portmesh prefetches the config blob)
    b.access.settle(quiet=0.5)
    for name, srv in group.items():
        b.access.mark()
        proxy_measure.tag_gets(srv, b.repo(name), tag, b.cfg.tag_gets)
        b.access.settle(quiet=0.5)
        res.tag_upstream[name] = len(b.access.since_mark())
        log(f"{b.cfg.tag_gets} tag GETs {name}: {res.tag_upstream[name]} upstream requests")
    for rep in range(b.cfg.reps):
        for name in alternating([PM, REG], rep):
            b.access.mark()
            w = proxy_measure.wrk_tags(group[name], b.repo(name), tag, b.cfg.connections,
                                       b.cfg.wrk_seconds, b.upstream)  # fmt: skip
            b.access.settle(quiet=0.5)
            w.upstream_requests = len(b.access.since_mark())
            res.wrk.setdefault(name, []).append(w)
            log(f"wrk tags {name}: {w.rps:,.0f} req/s, {w.cpu_us:.0f} CPU-us/req, "
                f"{w.upstream_requests} upstream requests, {w.errors} errors")  # fmt: skip


def expired_tags(b: Bench, res: Results) -> None:
    """On a fresh proxy (Portmesh: ``tag_ttl = short_ttl``): one tag GET, a wait past the
    TTL, then ``tag_gets`` GETs on new connections; the upstream requests they caused."""
    tag, ttl = b.layout.tag, b.cfg.short_ttl
    for name in (PM, REG):
        with b.fresh(name, tag_ttl=ttl) as srv:
            proxy_measure.tag_gets(srv, b.repo(name), tag, 1)
            time.sleep(ttl + 0.3)
            b.access.mark()
            t0 = time.monotonic()
            proxy_measure.tag_gets(srv, b.repo(name), tag, b.cfg.tag_gets)
            took = time.monotonic() - t0
            b.access.settle(quiet=0.5)
            hits = b.access.since_mark()
        res.expired_upstream[name] = len(hits)
        log(f"{b.cfg.tag_gets} tag GETs {name} after the TTL, in {took:.2f} s: {len(hits)} "
            f"upstream requests ({sum(h.method == 'HEAD' for h in hits)} HEAD)")  # fmt: skip
        if name == PM and took >= ttl:
            log(f"warning: the GETs took longer than the {ttl:g} s TTL: more than one HEAD due")


def rows(cfg: Settings, res: Results, size: int) -> list[Row]:
    def med(d: dict[str, list[float]], name: str) -> float:
        return median(d[name])

    def paired(name: str, times: dict[str, list[float]] = res.pull_s) -> float:
        """The median over repetitions of this pull's time over the direct pull's."""
        return median(paired_ratios(times[name], times[DIRECT]))

    out = [
        Row(f"cold pull {cfg.size_mib} MiB image (skopeo)", "s", med(res.pull_s, PM),
            med(res.pull_s, REG), digits=2, ref=med(res.pull_s, DIRECT), c=med(res.pull_s, FWD)),
        Row("  time / direct pull, paired", "x", paired(PM), paired(REG), "A <= 1.05x",
            a_at_most(1.05), digits=2, c=paired(FWD)),
        Row("  time / direct pull, of medians", "x", med(res.pull_s, PM) / med(res.pull_s, DIRECT),
            med(res.pull_s, REG) / med(res.pull_s, DIRECT), digits=2,
            c=med(res.pull_s, FWD) / med(res.pull_s, DIRECT)),
        Row("  server CPU per pull", "CPU-s", med(res.pull_cpu, PM), med(res.pull_cpu, REG),
            digits=2, ref=med(res.pull_cpu, DIRECT), c=med(res.pull_cpu, FWD)),
        Row("  upstream bytes of the layer", "x blob", med(res.pull_upstream, PM),
            med(res.pull_upstream, REG), digits=2, c=med(res.pull_upstream, FWD)),
    ]  # fmt: skip
    if res.pinned_s:
        out += [
            Row("  the same, client on a CPU of its own", "s", med(res.pinned_s, PM),
                med(res.pinned_s, REG), digits=2, ref=med(res.pinned_s, DIRECT),
                c=med(res.pinned_s, FWD)),
            Row("  time / direct pull, paired", "x", paired(PM, res.pinned_s),
                paired(REG, res.pinned_s), digits=2, c=paired(FWD, res.pinned_s)),
        ]  # fmt: skip
    for n in cfg.clients:
        a, b = res.cold[PM][n], res.cold[REG][n]
        out += [
            Row(f"cold GET, {n} client(s): upstream bytes", "x blob",
                max(r.upstream_bytes for r in a) / size, max(r.upstream_bytes for r in b) / size,
                "A = 1x (worst rep)", lambda x, _b, _r: x == 1.0, digits=3),
            Row("  upstream GETs of the layer (worst rep)", "count",
                max(r.upstream_gets for r in a), max(r.upstream_gets for r in b)),
            Row("  clients with a wrong or short body", "count", sum(len(r.bad) for r in a),
                sum(len(r.bad) for r in b), "A = 0", a_at_most(0)),
            Row("  wall time, all clients done", "s", median([r.wall_s for r in a]),
                median([r.wall_s for r in b]), digits=2,
                ref=median([r.wall_s for r in res.cold[DIRECT][n]])),
            Row("  server CPU per GiB served", "CPU-s/GiB", median([r.cpu_per_gib for r in a]),
                median([r.cpu_per_gib for r in b]), digits=2,
                ref=median([r.cpu_per_gib for r in res.cold[DIRECT][n]])),
        ]  # fmt: skip
    ta, tb, td = res.tls[PM], res.tls[REG], res.tls[DIRECT]
    out += [
        Row("cold GET from an HTTPS upstream, 1 client", "s", median([r.wall_s for r in ta]),
            median([r.wall_s for r in tb]), digits=2, ref=median([r.wall_s for r in td])),
        Row("  clients with a wrong or short body", "count", sum(len(r.bad) for r in ta),
            sum(len(r.bad) for r in tb), "A = 0", a_at_most(0)),
        Row("  server CPU per GiB served", "CPU-s/GiB", median([r.cpu_per_gib for r in ta]),
            median([r.cpu_per_gib for r in tb]), digits=2,
            ref=median([r.cpu_per_gib for r in td])),
    ]  # fmt: skip
    wa, wb = res.wrk[PM], res.wrk[REG]
    reqs_a, reqs_b = sum(w.requests for w in wa), sum(w.requests for w in wb)
    out += [
        Row(f"upstream requests, {cfg.tag_gets} warm tag GETs", "count", res.tag_upstream[PM],
            res.tag_upstream[REG], "A = 0", a_at_most(0)),
        Row(f"  the same {cfg.tag_gets} right after the TTL", "count",
            res.expired_upstream[PM], res.expired_upstream[REG], "A = 1 (a HEAD)",
            lambda a, _b, _r: a == 1),
        Row(f"manifest GET by tag, wrk -c{cfg.connections}", "req/s",
            median([w.rps for w in wa]), median([w.rps for w in wb])),
        Row("  proxy CPU", "CPU-us/req", median([w.cpu_us for w in wa]),
            median([w.cpu_us for w in wb])),
        Row("  upstream CPU", "CPU-us/req", median([w.upstream_cpu_us for w in wa]),
            median([w.upstream_cpu_us for w in wb])),
        Row("  upstream requests during wrk, all reps", "count",
            sum(w.upstream_requests for w in wa), sum(w.upstream_requests for w in wb)),
        Row("  requests served by wrk, all reps", "count", reqs_a, reqs_b),
        Row("  non-2xx + socket errors", "count", sum(w.errors for w in wa),
            sum(w.errors for w in wb), "A = 0", a_at_most(0)),
    ]  # fmt: skip
    return out


def benchmark(cfg: Settings, tmp: Path, stack: ExitStack) -> list[Row]:
    log("starting the upstream docker-registry")
    upstream = start_registry("upstream", tmp / "upstream")
    stack.callback(servers.stop, upstream)
    log(f"generating a {cfg.size_mib} MiB image")
    layout = image.make_layout(tmp / "image", cfg.size_mib << 20)
    run = measure.push(upstream, layout, REPO)
    log(f"pushed to the upstream in {run.wall_s:.2f} s")
    shutil.rmtree(layout.path)
    b = Bench(cfg, tmp, upstream, layout)
    res = Results()
    cold_pulls(b, res)
    cold_gets(b, res)
    tls_gets(b, res)
    with ExitStack() as proxies:
        warm_tags(b, res, proxies)
    expired_tags(b, res)
    return rows(cfg, res, layout.layer_size)


def _raise_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load_before = os.getloadavg()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="portmesh-proxy-", dir=cfg.tmpdir) as d, \
            ExitStack() as stack:  # fmt: skip
        table = benchmark(cfg, Path(d), stack)
    print()
    print(f"# {started}; load average before/after: {load_before[0]:.2f}/"
          f"{os.getloadavg()[0]:.2f}; {time.monotonic() - t0:.0f} s")  # fmt: skip
    print(f"# A = {PM} (project {PROJECT!r}, tag_ttl {cfg.tag_ttl:g} s, {cfg.workers} workers), "
          f"B = {REG} (docker-registry proxy mode), same docker-registry upstream; layer "
          f"{cfg.size_mib} MiB; {cfg.reps} reps ({cfg.pull_reps} of the cold pull), fresh "
          f"proxy per cold rep; wrk "
          f"{cfg.wrk_seconds:g} s; medians; ratio = A/B; C = {FWD}: proxy_buffering off, "
          f"in front of the upstream (cold pulls only)")  # fmt: skip
    print(render(table, PM, REG, DIRECT, name_c=FWD))
    print()
    judged = [r for r in table if r.verdict]
    failed = [r.name.strip() for r in judged if r.verdict == "FAIL"]
    print(f"{PM}: {len(judged) - len(failed)} targets met, {len(failed)} missed"
          + (f": {'; '.join(failed)}" if failed else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; servers stopped and temp files removed", file=sys.stderr)
        sys.exit(130)
