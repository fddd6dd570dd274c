"""CPU time and resident memory of a server process together with all its descendants.

Everything is read from ``/proc``: a server's tree is the process and every live process
whose parent chain leads to it (hypercorn worker processes are children of the node).
Every function takes one or more roots: a server made of several processes that are not
each other's children (nginx and the node behind it) is measured as the union of trees.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_TICKS = os.sysconf("SC_CLK_TCK")


def _ppids() -> dict[int, int]:
    """Map every live pid to its parent pid (processes that vanish meanwhile are skipped)."""
    out: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        out[int(entry.name)] = int(fields[1])
    return out


def tree(*roots: int) -> list[int]:
    """Return the ``roots`` and all their live descendants (each pid once)."""
    children: dict[int, list[int]] = {}
    for child, parent in _ppids().items():
        children.setdefault(parent, []).append(child)
    result: list[int] = []
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        result.append(p)
        todo.extend(children.get(p, []))
    return result


def _cpu_of(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(b")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def cpu_seconds(*roots: int) -> float:
    """utime + stime in seconds, summed over the live process trees of ``roots``."""
    return sum(_cpu_of(p) for p in tree(*roots))


def _rss_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss_bytes(pids: list[int]) -> int:
    """Sum of VmRSS of ``pids`` in bytes (vanished processes count 0)."""
    return sum(_rss_of(p) for p in pids)


class PeakRss:
    """The highest summed VmRSS of a process tree seen while sampling; see ``sample_peak_rss``."""

    def __init__(self) -> None:
        self.peak = 0
        self.samples = 0


@contextmanager
def sample_peak_rss(*roots: int, interval: float = 0.05) -> Iterator[PeakRss]:
    """Sample the trees' summed VmRSS every ``interval`` seconds in a thread while the block runs.

    The tree's membership is refreshed every 20 samples (scanning /proc costs more than
    reading a few status files). The thread is joined before the block's exit completes.
    """
    result = PeakRss()
    stop = threading.Event()

    def loop() -> None:
        pids = tree(*roots)
        n = 0
        while True:
            result.peak = max(result.peak, rss_bytes(pids))
            result.samples += 1
            n += 1
            if n % 20 == 0:
                pids = tree(*roots)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=loop, name="rss-sampler", daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        result.peak = max(result.peak, rss_bytes(tree(*roots)))


def pin(cpus: set[int], *roots: int) -> None:
    """Bind every thread of the trees of ``roots`` to ``cpus`` (threads they start later
    inherit it from the thread that starts them)."""
    for pid in tree(*roots):
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            with contextlib.suppress(OSError):  # gone meanwhile
                os.sched_setaffinity(int(task), cpus)
