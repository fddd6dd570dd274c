"""Paired A/B of Portmesh revisions on the cold pull of ``loadtests.proxy``.

    .venv/bin/python -m loadtests.ab [--reps 12] [--size-mib 256] [--workers 2] [--pin] REV...

Changes to the fill path move a cold pull by a few per cent, less than a busy two-core
machine drifts between two runs of the benchmark. This measures them side by side instead:
every ``REV`` (a git revision) is exported with ``git archive`` to a temp dir, and its
nodes run the code there (a ``sitecustomize`` on their ``PYTHONPATH`` takes the editable
install's finder out, so every worker process imports the export). Each repetition pulls
the image once straight from the upstream and once through a fresh node of every
revision, in shuffled order; the table gives, per revision, the median over repetitions
of its pull's time over the direct pull's of the same repetition, the quartiles of that
ratio, and the node's CPU seconds per pull. ``--pin`` binds skopeo to the first CPU and
the servers to the others (a client on a machine of its own).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import quantiles

if __package__ in (None, ""):  # run as a script: python loadtests/ab.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests import image, measure, proctree, proxy, proxy_measure, servers
from loadtests.report import median, paired_ratios

ROOT = Path(__file__).resolve().parent.parent
#: imported at start-up by every process whose PYTHONPATH holds it: the editable
#: install's finder would otherwise import the checkout's code, not the export's
_SITECUSTOMIZE = """\
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in repr(f)]
"""


def export(rev: str, into: Path) -> dict[str, str]:
    """``rev``'s tree in ``into``; the environment that runs a node from it."""
    tree = into / "tree"
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True,
                             check=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    (into / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    return {**os.environ, "PYTHONPATH": f"{into}:{tree}"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="loadtests.ab", description=__doc__.split("\n\n")[1])
    p.add_argument("revs", nargs="+", metavar="REV", help="git revisions to compare")
    p.add_argument("--reps", type=int, default=12, help="repetitions (12)")
    p.add_argument("--size-mib", type=int, default=256, help="layer size (256)")
    p.add_argument("--workers", type=int, default=2, help="node worker processes (2)")
    p.add_argument("--pin", action="store_true", help="skopeo on CPU 0, servers on the rest")
    a = p.parse_args(argv)
    cfg = proxy.Settings(a.size_mib, a.reps, [1], 1, 1, 1.0, a.workers, 60.0, None)
    cpus = sorted(os.sched_getaffinity(0))
    client = {cpus[0]} if a.pin and len(cpus) > 1 else None
    on = set(cpus[1:]) if client else set(cpus)
    with tempfile.TemporaryDirectory(prefix="portmesh-ab-") as d:
        tmp = Path(d)
        envs = {rev: export(rev, tmp / f"rev{i}") for i, rev in enumerate(a.revs)}
        upstream = proxy.start_registry("upstream", tmp / "upstream")
        try:
            layout = image.make_layout(tmp / "image", a.size_mib << 20)
            measure.push(upstream, layout, proxy.REPO)
            shutil.rmtree(layout.path)
            proctree.pin(on, *upstream.pids)
            tag = layout.tag

            def pull(srv: servers.Server, repo: str) -> float:
                dest = tmp / "pull"
                return proxy_measure.pull(f"{srv.host}/{repo}:{tag}", tag, dest, cpus=client)

            pull(upstream, proxy.REPO)  # the upstream's page cache
            times: dict[str, list[float]] = {rev: [] for rev in ["direct", *a.revs]}
            cpu: dict[str, list[float]] = {rev: [] for rev in a.revs}
            for rep in range(a.reps):
                for rev in random.sample(list(times), len(times)):
                    if rev == "direct":
                        times[rev].append(pull(upstream, proxy.REPO))
                        continue
                    work = tmp / f"node{rep}-{a.revs.index(rev)}"
                    srv = proxy.start_node(rev, work, upstream, cfg, env=envs[rev])
                    try:
                        proctree.pin(on, *srv.pids)
                        cpu0 = proctree.cpu_seconds(*srv.pids)
                        times[rev].append(pull(srv, f"{proxy.PROJECT}/{proxy.REPO}"))
                        cpu[rev].append(proctree.cpu_seconds(*srv.pids) - cpu0)
                    finally:
                        servers.stop(srv)
                        shutil.rmtree(work, ignore_errors=True)
                proxy.log(f"rep {rep + 1}: " + ", ".join(f"{r} {t[-1]:.2f} s"
                                                         for r, t in times.items()))  # fmt: skip
        finally:
            servers.stop(upstream)
    direct = times.pop("direct")
    pinned = ", skopeo pinned apart" if client else ""
    print(f"# {a.reps} paired repetitions, {a.size_mib} MiB layer, {a.workers} workers"
          f"{pinned}; direct pull median {median(direct):.3f} s")  # fmt: skip
    print(
        f"{'revision':<24} {'time/direct':>11} {'quartiles':>13} {'pull s':>7} {'node CPU-s':>10}"
    )
    for rev, t in times.items():
        ratios = paired_ratios(t, direct)
        q1, _, q3 = quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
        print(f"{rev:<24} {median(ratios):>11.3f} {q1:>6.3f}-{q3:.3f} {median(t):>7.2f} "
              f"{median(cpu[rev]):>10.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
