"""Benchmark a Portmesh node against docker-registry on 127.0.0.1 and print a table.

    .venv/bin/python -m loadtests.run [--quick] [--workers N] [--servers A,B] ...

Starts the servers in one temp dir (A and B, plus C: a Portmesh node behind nginx with
X-Accel-Redirect, unless --no-nginx), pushes the same image (one random layer) to each
with skopeo, then measures blob GET throughput and CPU, manifest GETs with wrk, push time
and peak RSS, alternating the servers' order on every repetition, and prints medians with
the ratios A/B and C/B. Everything started here is stopped and the temp dir removed on exit,
including on Ctrl-C, SIGTERM and failures. See loadtests/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

if __package__ in (None, ""):  # run as a script: python loadtests/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests import image, measure, servers
from loadtests.report import Row, a_at_most, median, ratio_at_least, ratio_at_most, render

LOAD_REPO = "bench/load"
LIMIT = "sendfile limit"
FRONT = "portmesh-nginx"
FRONT_LONG = "Portmesh behind nginx (X-Accel-Redirect)"


@dataclass
class Settings:
    size_mib: int
    reps: int
    push_reps: int
    clients: int
    connections: list[int]
    wrk_seconds: float
    workers: int
    kinds: list[str]
    node_log_level: str
    tmpdir: str | None
    json_path: str | None
    limit: bool
    front: bool


@dataclass
class Results:
    blob: dict[str, dict[int, list[measure.BlobRun]]] = field(default_factory=dict)
    wrk: dict[str, dict[int, list[measure.WrkRun]]] = field(default_factory=dict)
    push: dict[str, list[measure.PushRun]] = field(default_factory=dict)


def parse_args(argv: list[str] | None) -> Settings:
    p = argparse.ArgumentParser(prog="loadtests.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke check: 32 MiB layer, 1 repetition, 2 s wrk runs")  # fmt: skip
    p.add_argument("--workers", type=int, default=2, help="Portmesh worker processes (2)")
    p.add_argument("--servers", default="portmesh,registry",
                   help="A,B to compare (ratio is A/B); kinds: portmesh, registry; "
                        "registry,registry checks the harness against itself")  # fmt: skip
    p.add_argument("--size-mib", type=int, help="layer size (256; --quick: 32)")
    p.add_argument("--reps", type=int, help="repetitions per GET measurement (3; --quick: 1)")
    p.add_argument("--push-reps", type=int, help="pushes per server (3; --quick: 1)")
    p.add_argument("--clients", type=int, default=16, help="concurrent blob clients (16)")
    p.add_argument("--connections", default="16,64", help="wrk connection counts (16,64)")
    p.add_argument("--wrk-seconds", type=float, help="length of each wrk run (5; --quick: 2)")
    p.add_argument("--node-log-level", default="error", help="Portmesh --log-level (error)")
    p.add_argument("--tmpdir", help="where to make the temp dir (default: system temp)")
    p.add_argument("--json", dest="json_path", help="also write every raw run to this file")
    p.add_argument("--no-limit", dest="limit", action="store_false",
                   help="skip the sendfile reference server in the blob GET rows")  # fmt: skip
    p.add_argument("--no-nginx", dest="front", action="store_false",
                   help=f"skip the third server C, {FRONT_LONG}")  # fmt: skip
    a = p.parse_args(argv)
    kinds = [k.strip() for k in a.servers.split(",")]
    if len(kinds) != 2 or any(k not in servers.KINDS for k in kinds):
        p.error(f"--servers takes two of {', '.join(servers.KINDS)}, e.g. portmesh,registry")
    if FRONT in kinds:
        a.front = False  # it is A or B already
    q = a.quick
    return Settings(
        size_mib=a.size_mib or (32 if q else 256),
        reps=a.reps or (1 if q else 3),
        push_reps=a.push_reps or (1 if q else 3),
        clients=a.clients,
        connections=[int(c) for c in a.connections.split(",")],
        wrk_seconds=a.wrk_seconds or (2.0 if q else 5.0),
        workers=a.workers,
        kinds=kinds,
        node_log_level=a.node_log_level,
        tmpdir=a.tmpdir,
        json_path=a.json_path,
        limit=a.limit,
        front=a.front,
    )


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def labels(kinds: list[str]) -> list[str]:
    """Display names of the servers A, B (and C); a name used twice gets its letter."""
    names = [servers.display_name(k) for k in kinds]
    return [f"{n} {'ABC'[i]}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def alternating(group: list[servers.Server], rep: int) -> Iterator[servers.Server]:
    """The servers in order on even repetitions, in reverse order on odd ones."""
    return iter(group if rep % 2 == 0 else group[::-1])


def _raise_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def benchmark(cfg: Settings, tmp: Path, stack: ExitStack) -> tuple[list[Row], list[str], Results]:
    kinds = [*cfg.kinds, FRONT] if cfg.front else cfg.kinds
    names = labels(kinds)
    group: list[servers.Server] = []  # A, B (and C): every measurement runs on each
    for i, (kind, label) in enumerate(zip(kinds, names, strict=True)):
        log(f"starting {label}")
        srv = servers.start(kind, label, tmp / f"server{i}", workers=cfg.workers,
                            node_log_level=cfg.node_log_level)  # fmt: skip
        stack.callback(servers.stop, srv)
        group.append(srv)
        log(f"{label} ready on {srv.host} (pids {', '.join(map(str, srv.pids))})")

    size = cfg.size_mib << 20
    log(f"generating a {cfg.size_mib} MiB image")
    load = image.make_layout(tmp / "image-load", size)
    for srv in group:
        run = measure.push(srv, load, LOAD_REPO)
        measure.check_manifest(srv, LOAD_REPO, load.tag)
        log(f"loaded {srv.label}: pushed in {run.wall_s:.2f} s")
    blob_group = list(group)
    if cfg.limit:
        blob_file = tmp / "limit.blob"
        (load.path / "blobs" / "sha256" / load.layer_digest.split(":")[1]).rename(blob_file)
        ref = servers.start("limit", LIMIT, tmp / "limit", file=blob_file)
        stack.callback(servers.stop, ref)
        blob_group.append(ref)
    shutil.rmtree(load.path)
    for srv in blob_group:  # warm up: page cache, connection paths, lazy imports
        measure.blob_get(srv, LOAD_REPO, load.layer_digest, load.layer_size, 1)
    for srv in group:
        measure.manifest_get(srv, LOAD_REPO, load.tag, 4, 1)

    res = Results()
    for clients in (1, cfg.clients):
        reps = cfg.reps * 4 if clients == 1 else cfg.reps  # single-client runs are short
        for rep in range(reps):
            for srv in alternating(blob_group, rep):
                b = measure.blob_get(srv, LOAD_REPO, load.layer_digest, load.layer_size, clients)
                res.blob.setdefault(srv.label, {}).setdefault(clients, []).append(b)
                log(f"blob GET x{clients} {srv.label}: {b.mib_s:,.0f} MiB/s, "
                    f"{b.cpu_per_gib:.2f} CPU-s/GiB, peak RSS {b.peak_rss >> 20} MiB")  # fmt: skip
    for conns in cfg.connections:
        for rep in range(cfg.reps):
            for srv in alternating(group, rep):
                w = measure.manifest_get(srv, LOAD_REPO, load.tag, conns, cfg.wrk_seconds)
                res.wrk.setdefault(srv.label, {}).setdefault(conns, []).append(w)
                log(f"manifest GET c{conns} {srv.label}: {w.rps:,.0f} req/s, "
                    f"{w.non_2xx} non-2xx, {w.cpu_us_per_req:.0f} CPU-us/req")  # fmt: skip
    for rep in range(cfg.push_reps):
        log(f"generating push image {rep + 1}/{cfg.push_reps}")
        lay = image.make_layout(tmp / f"image-push{rep}", size)
        for srv in alternating(group, rep):  # a new layer per rep: a real upload on each server
            p = measure.push(srv, lay, f"bench/push{rep}")
            res.push.setdefault(srv.label, []).append(p)
            log(f"push {srv.label}: {p.wall_s:.2f} s, {p.cpu_s:.2f} CPU-s")
        shutil.rmtree(lay.path)
    return rows(cfg, names, res), names, res


def rows(cfg: Settings, names: list[str], res: Results) -> list[Row]:
    """The table rows; with a third server C each row also carries C's median."""
    a, b = names[:2]
    c = names[2] if len(names) > 2 else None
    out: list[Row] = []

    def med_c(values: dict[str, list[float]]) -> float | None:
        return median(values[c]) if c is not None else None

    for clients in (1, cfg.clients):
        ra, rb = res.blob[a][clients], res.blob[b][clients]
        rl = res.blob.get(LIMIT, {}).get(clients)
        mib_s = {k: [r.mib_s for r in d[clients]] for k, d in res.blob.items()}
        cpu = {k: [r.cpu_per_gib for r in d[clients]] for k, d in res.blob.items()}
        out.append(Row(f"blob GET {cfg.size_mib} MiB, {clients} client(s)", "MiB/s",
                       median([r.mib_s for r in ra]), median([r.mib_s for r in rb]),
                       ">= 1.5x", ratio_at_least(1.5),
                       ref=median([r.mib_s for r in rl]) if rl else None,
                       c=med_c(mib_s)))  # fmt: skip
        out.append(Row(f"  server CPU, {clients} client(s)", "CPU-s/GiB",
                       median([r.cpu_per_gib for r in ra]), median([r.cpu_per_gib for r in rb]),
                       digits=2,
                       ref=median([r.cpu_per_gib for r in rl]) if rl else None,
                       c=med_c(cpu)))  # fmt: skip
    for conns in cfg.connections:
        wa, wb = res.wrk[a][conns], res.wrk[b][conns]
        wc = res.wrk[c][conns] if c is not None else []
        out.append(Row(f"manifest GET by tag, {conns} conns", "req/s",
                       median([w.rps for w in wa]), median([w.rps for w in wb]),
                       ">= 2x", ratio_at_least(2.0),
                       c=median([w.rps for w in wc]) if c else None))  # fmt: skip
        out.append(Row(f"  server CPU, {conns} conns", "CPU-us/req",
                       median([w.cpu_us_per_req for w in wa]),
                       median([w.cpu_us_per_req for w in wb]),
                       c=median([w.cpu_us_per_req for w in wc]) if c else None))  # fmt: skip
        out.append(Row(f"  non-2xx + socket errors, {conns} conns", "count",
                       sum(w.non_2xx + w.socket_errors for w in wa),
                       sum(w.non_2xx + w.socket_errors for w in wb),
                       "A = 0", a_at_most(0),
                       c=sum(w.non_2xx + w.socket_errors for w in wc) if c else None))  # fmt: skip
    pa, pb = res.push[a], res.push[b]
    pc = res.push[c] if c is not None else []
    out.append(Row(f"push {cfg.size_mib} MiB image (skopeo)", "s",
                   median([p.wall_s for p in pa]), median([p.wall_s for p in pb]),
                   "<= 1.0x", ratio_at_most(1.0), digits=2,
                   c=median([p.wall_s for p in pc]) if c else None))  # fmt: skip
    out.append(
        Row(
            "  server CPU per push",
            "CPU-s",
            median([p.cpu_s for p in pa]),
            median([p.cpu_s for p in pb]),
            digits=2,
            c=median([p.cpu_s for p in pc]) if c else None,
        )
    )
    peak = {k: max(r.peak_rss for r in d[cfg.clients]) / (1 << 20) for k, d in res.blob.items()}
    out.append(Row(f"peak RSS, {cfg.clients} clients pulling", "MiB", peak[a], peak[b],
                   "A <= 200 MiB", a_at_most(200),
                   c=peak[c] if c is not None else None))  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="portmesh-bench-", dir=cfg.tmpdir) as d, \
            ExitStack() as stack:  # fmt: skip
        table_rows, names, res = benchmark(cfg, Path(d), stack)
    print()
    print(f"# {started}, {platform.node()}, {platform.machine()}, "
          f"{_cpu_model()}, {len(_online_cpus())} CPUs; load average before/after: "
          f"{load_before[0]:.2f}/{os.getloadavg()[0]:.2f}")  # fmt: skip
    third = f", C = {FRONT_LONG} (CPU and RSS: nginx + node)" if len(names) > 2 else ""
    print(f"# A = {names[0]}, B = {names[1]}{third}; Portmesh workers = {cfg.workers}; "
          f"layer {cfg.size_mib} MiB; {cfg.reps} reps (blob x1: {cfg.reps * 4}), "
          f"{cfg.push_reps} pushes, wrk {cfg.wrk_seconds:g} s; medians; ratio = A/B")  # fmt: skip
    name_c = names[2] if len(names) > 2 else None
    print(render(table_rows, names[0], names[1], LIMIT if cfg.limit else None, name_c))
    print()
    print(_summary(names[0], [(r.name, r.verdict) for r in table_rows]))
    if name_c is not None:
        print(_summary(name_c, [(r.name, r.c_verdict) for r in table_rows]))
    if cfg.json_path:
        Path(cfg.json_path).write_text(json.dumps(_raw(cfg, names, res), indent=1))
    return 0


def _summary(name: str, verdicts: list[tuple[str, str]]) -> str:
    judged = [(row, v) for row, v in verdicts if v]
    failed = [row.strip() for row, v in judged if v == "FAIL"]
    return (f"{name}: {len(judged) - len(failed)} targets met, {len(failed)} missed"
            + (f": {'; '.join(failed)}" if failed else ""))  # fmt: skip


def _raw(cfg: Settings, names: list[str], res: Results) -> dict[str, Any]:
    return {
        "settings": asdict(cfg),
        "servers": names,
        "blob": {k: {str(c): [asdict(r) for r in v] for c, v in d.items()}
                 for k, d in res.blob.items()},
        "wrk": {k: {str(c): [asdict(r) for r in v] for c, v in d.items()}
                for k, d in res.wrk.items()},
        "push": {k: [asdict(r) for r in v] for k, v in res.push.items()},
    }  # fmt: skip


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _online_cpus() -> set[int]:
    return os.sched_getaffinity(0)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; servers stopped and temp files removed", file=sys.stderr)
        sys.exit(130)
