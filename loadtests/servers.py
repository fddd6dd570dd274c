"""Start and stop the servers under test on 127.0.0.1, each in its own session.

Every server runs in a new session (process group) so that ``stop`` can end it and any
worker processes it forked by signalling that group, and only that group. Output goes to
a log file in the server's own temp dir; ``tail_log`` shows it when something fails.
Kind ``portmesh-nginx`` is two servers: nginx (the one clients talk to) and, as its
backend, a Portmesh node with ``accel_redirect`` set; ``pids`` names both trees.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from loadtests import nginx, proctree

KINDS = ("portmesh", "registry", "portmesh-nginx")
_NAMES = {
    "portmesh": "Portmesh",
    "registry": "docker-registry",
    "portmesh-nginx": "Portmesh+nginx",
    "limit": "sendfile limit",
}

#: docker-registry's config; ``no_access_log`` is "true" except where requests are counted
REGISTRY_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: {no_access_log}
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:{port}
  secret: loadtests-not-secret
"""


@dataclass
class Server:
    """A running server: ``pid`` is the root of its process tree."""

    kind: str
    label: str
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)
    #: servers this one forwards to (the node behind nginx); stopped with it
    backends: list[Server] = field(default_factory=list)
    #: the CA file of its certificate, when it speaks HTTPS
    ca: Path | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def pids(self) -> list[int]:
        """Roots of every process tree that does this server's work (its own and backends')."""
        return [self.pid, *(p for b in self.backends for p in b.pids)]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{'https' if self.ca else 'http'}://{self.host}"

    def tail_log(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def display_name(kind: str) -> str:
    return _NAMES[kind]


def _portmesh_bin() -> str:
    exe = Path(sys.executable).with_name("portmesh")
    if exe.exists():
        return str(exe)
    return str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "portmesh")


def start(
    kind: str,
    label: str,
    workdir: Path,
    *,
    workers: int = 1,
    node_log_level: str = "error",
    file: Path | None = None,
    accel: bool = False,
) -> Server:
    """Start a server of ``kind`` with its data under ``workdir`` and wait until ``GET /v2/``
    answers 200 (at most 30 s). Raises RuntimeError with the log's tail if it does not.
    Kind ``limit`` is ``loadtests.limit_server`` answering every blob GET with ``file``;
    ``accel`` starts a ``portmesh`` node with ``accel_redirect`` set (for nginx).
    """
    workdir.mkdir(parents=True)
    data = workdir / "data"
    data.mkdir()
    port = free_port()
    log_path = workdir / "server.log"
    backends: list[Server] = []
    if kind == "portmesh-nginx":
        node = start("portmesh", f"{label} (node)", workdir / "node", workers=workers,
                     node_log_level=node_log_level, accel=True)  # fmt: skip
        backends.append(node)
        try:
            argv = nginx.command(workdir, port, node.port, node.workdir / "data")
        except BaseException:
            stop(node)
            raise
    elif kind == "registry":
        config = workdir / "config.yml"
        config.write_text(REGISTRY_CONFIG.format(root=data, port=port, no_access_log="true"))
        argv = ["docker-registry", "serve", str(config)]
    elif kind == "portmesh":
        argv = [
            _portmesh_bin(), "node", "--listen", f"127.0.0.1:{port}", "--data", str(data),
            "--no-auth", "--workers", str(workers), "--log-level", node_log_level,
        ]  # fmt: skip
        if accel:
            argv += ["--config", str(nginx.node_config(workdir / "node.toml"))]
    elif kind == "limit" and file is not None:
        argv = [sys.executable, "-m", "loadtests.limit_server", "--port", str(port),
                "--file", str(file)]  # fmt: skip
    else:
        raise ValueError(f"unknown server kind {kind!r} (or no file for limit)")
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=Path(__file__).resolve().parent.parent,
            )  # fmt: skip
    except BaseException:
        for backend in backends:
            stop(backend)
        raise
    server = Server(kind, label, port, proc, workdir, log_path, backends=backends)
    try:
        _wait_ready(server, timeout=30.0)
    except BaseException:
        stop(server)
        raise
    return server


def _wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.label} exited with {server.proc.returncode}:\n{server.tail_log()}"
            )
        try:
            context = ssl.create_default_context(cafile=str(server.ca)) if server.ca else None
            with urllib.request.urlopen(
                server.base_url + "/v2/", timeout=2, context=context
            ) as resp:
                if resp.status == 200:
                    _wait_settled(server, deadline)
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{server.label} not ready after {timeout:.0f} s:\n{server.tail_log()}")


def _wait_settled(server: Server, deadline: float, quiet: float = 0.2) -> None:
    """Wait (until ``deadline``) for ``server``'s processes to use no CPU for ``quiet``
    seconds: one worker answering does not mean that the others have finished starting,
    and a worker still starting would take CPU from what is measured next."""
    last = proctree.cpu_seconds(*server.pids)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = proctree.cpu_seconds(*server.pids)
        if now - last < 0.02:
            return
        last = now


def stop(server: Server, grace: float = 10.0) -> None:
    """End the server's process group: SIGTERM, then SIGKILL after ``grace`` seconds;
    then its backends the same way. Safe to call twice.
    """
    try:
        _stop_group(server, grace)
    finally:
        for backend in server.backends:
            stop(backend, grace)


def _stop_group(server: Server, grace: float) -> None:
    pgid = server.proc.pid  # start_new_session made the server its group's leader
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        try:
            server.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; make sure no worker of its group lingers.
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.proc.wait(timeout=1)
