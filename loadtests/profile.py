"""Profile a Portmesh node under one kind of load with py-spy and print its hot spots.

    .venv/bin/pip install py-spy
    .venv/bin/python -m loadtests.profile manifest|blob|push [--seconds 8] [--workers 1]

Starts a node on 127.0.0.1 in a temp dir, loads an image, attaches ``py-spy record`` to
one serving process (the only one with ``--workers 1``, else the first worker) while
wrk / curl / skopeo put load on it, then prints the functions with the most samples,
inclusive and self. The raw collapsed stacks are kept with ``--raw FILE`` (flamegraph.pl
or speedscope read them). Everything started is stopped and the temp dir removed.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests import image, measure, proctree, servers

_LINE = re.compile(r":\d+\)")


def summarize(raw: Path, top: int) -> str:
    """Top functions by inclusive and by self samples from py-spy's raw (collapsed) output."""
    incl: collections.Counter[str] = collections.Counter()
    self_: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_LINE.sub(")", f) for f in stack.split(";") if f]
        for f in set(frames):
            incl[f] += n
        if frames:
            self_[frames[-1]] += n
    out = [f"{total} samples", "== inclusive"]
    out += [f"{100 * n / total:5.1f}%  {k}" for k, n in incl.most_common(top)]
    out += ["== self"]
    out += [f"{100 * n / total:5.1f}%  {k}" for k, n in self_.most_common(top)]
    return "\n".join(out)


def _py_spy() -> str:
    exe = Path(sys.executable).with_name("py-spy")
    found = str(exe) if exe.exists() else shutil.which("py-spy")
    if not found:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="loadtests.profile")
    p.add_argument("load", choices=["manifest", "blob", "push"])
    p.add_argument("--seconds", type=float, default=8.0, help="length of the load (8)")
    p.add_argument("--workers", type=int, default=1, help="node worker processes (1)")
    p.add_argument("--size-mib", type=int, default=256, help="layer size for blob/push (256)")
    p.add_argument("--top", type=int, default=30, help="functions to list (30)")
    p.add_argument("--raw", help="keep py-spy's collapsed stacks in this file")
    a = p.parse_args(argv)
    spy_bin = _py_spy()
    signal.signal(signal.SIGTERM, lambda s, _f: sys.exit(128 + s))
    with tempfile.TemporaryDirectory(prefix="portmesh-profile-") as d:
        tmp = Path(d)
        raw = Path(a.raw) if a.raw else tmp / "stacks.txt"
        srv = servers.start("portmesh", "Portmesh", tmp / "node", workers=a.workers,
                            node_log_level="error")  # fmt: skip
        try:
            size = (a.size_mib if a.load != "manifest" else 1) << 20
            lay = image.make_layout(tmp / "image", size)
            measure.push(srv, lay, "bench/load")
            pushes = []
            if a.load == "push":  # images made before sampling starts
                pushes = [image.make_layout(tmp / f"push{i}", size) for i in range(2)]
            pids = proctree.tree(srv.pid)
            workers = [q for q in pids[1:] if b"spawn_main" in _cmdline(q)]
            target = workers[0] if workers else srv.pid
            spy = subprocess.Popen(
                [spy_bin, "record", "-p", str(target), "-r", "200", "-f", "raw",
                 "-o", str(raw), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                time.sleep(0.5)
                _load(a.load, srv, lay, pushes, a.seconds)
            finally:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=30)
        finally:
            servers.stop(srv)
        print(summarize(raw, a.top))
    return 0


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _load(
    kind: str, srv: servers.Server, lay: image.Layout, pushes: list[image.Layout], secs: float
) -> None:
    if kind == "manifest":
        w = measure.manifest_get(srv, "bench/load", lay.tag, 16, secs)
        print(f"manifest GET: {w.rps:,.0f} req/s, {w.cpu_us_per_req:.0f} CPU-us/req")
    elif kind == "blob":
        end = time.monotonic() + secs
        while time.monotonic() < end:
            b = measure.blob_get(srv, "bench/load", lay.layer_digest, lay.layer_size, 4)
            print(f"blob GET x4: {b.mib_s:,.0f} MiB/s, {b.cpu_per_gib:.2f} CPU-s/GiB")
    else:
        for i, lp in enumerate(pushes):
            r = measure.push(srv, lp, f"bench/push{i}")
            print(f"push: {r.wall_s:.2f} s, {r.cpu_s:.2f} CPU-s")


if __name__ == "__main__":
    sys.exit(main())
