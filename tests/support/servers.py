"""Real servers and clients for integration tests: a Portmesh node, docker-registry, podman.

Each server runs as a subprocess on a free loopback port and is ready when ``GET /v2/``
answers 200. Its output goes to a log file under the test's temp dir, whose tail is shown
when it fails to start. Leaving the context terminates it (SIGTERM, then SIGKILL after a
grace period).

A missing external program (docker-registry, skopeo, podman) skips the test with the
reason, except under CI (``CI=true``), where it fails: CI must have installed it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest
import trio

from support.tls import TLSFiles

__all__ = [
    "REPO_ROOT",
    "Server",
    "free_port",
    "podman_env",
    "require_binary",
    "run_docker_registry",
    "run_node",
    "run_server",
    "run_tool",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
STOP_GRACE = 10.0
TOOL_TIMEOUT = 300.0


@dataclass(frozen=True)
class Server:
    """A registry under test. ``address`` is ``HOST:PORT`` as image references use it."""

    kind: str  # "portmesh" or "docker-registry"
    host: str
    port: int
    log: Path
    scheme: str = "http"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}"

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines the server wrote (stdout and stderr)."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_binary(name: str) -> str:
    """The path of program ``name``; skips the test when it is missing (fails under CI)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (./test.sh installs it as root)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _open_log(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("ab")


async def _stop(process: trio.Process) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    with trio.move_on_after(STOP_GRACE) as scope:
        await process.wait()
    if scope.cancelled_caught:
        process.kill()
        await process.wait()


async def _wait_ready(
    server: Server, process: trio.Process, ready: int = 200, ca: Path | None = None
) -> None:
    """Poll ``GET /v2/`` until it answers ``ready`` (401 for a registry that wants a login);
    fail with the log tail if the process dies or time runs out. ``ca``: the CA file that
    an HTTPS server's certificate is checked against."""
    verify = ssl.create_default_context(cafile=str(ca)) if ca else True
    async with httpx.AsyncClient(timeout=2.0, verify=verify) as client:
        with trio.move_on_after(START_TIMEOUT):
            while True:
                if process.returncode is not None:
                    pytest.fail(
                        f"{server.kind} exited with {process.returncode} before it was ready;"
                        f" its log:\n{server.log_tail()}"
                    )
                try:
                    response = await client.get(f"{server.url}/v2/")
                    if response.status_code == ready:
                        return
                except httpx.TransportError:
                    pass
                await trio.sleep(0.1)
    pytest.fail(
        f"{server.kind} on {server.address} did not answer GET /v2/ with {ready} within"
        f" {START_TIMEOUT:.0f}s; its log:\n{server.log_tail()}"
    )


@asynccontextmanager
async def run_server(
    kind: str,
    command: Sequence[str],
    port: int,
    log: Path,
    env: dict[str, str] | None = None,
    ready: int = 200,
    ca: Path | None = None,
) -> AsyncIterator[Server]:
    """Run ``command``, a server that will listen on 127.0.0.1:``port``, until the block ends.

    Its stdout and stderr go to ``log``. Fails the test if ``GET /v2/`` does not answer 200
    within ``START_TIMEOUT`` seconds; the process is stopped on the way out in any case.
    With ``ca`` the server speaks HTTPS with a certificate that CA signed.
    """
    server = Server(kind, "127.0.0.1", port, log, "https" if ca else "http")
    with _open_log(log) as log_file:
        process = await trio.lowlevel.open_process(
            list(command), stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=env
        )
    try:
        await _wait_ready(server, process, ready, ca)
        yield server
    finally:
        with trio.CancelScope(shield=True):
            await _stop(process)


def portmesh_command() -> list[str]:
    """How to run the ``portmesh`` console script of this checkout's venv."""
    script = Path(sys.executable).parent / "portmesh"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "portmesh.cli"]


@asynccontextmanager
async def run_node(workdir: Path, *extra_args: str) -> AsyncIterator[Server]:
    """Run ``portmesh node --no-auth`` with its data in ``workdir/data``."""
    port = free_port()
    command = [
        *portmesh_command(),
        "node",
        "--listen",
        f"127.0.0.1:{port}",
        "--data",
        str(workdir / "data"),
        "--no-auth",
        *extra_args,
    ]
    async with run_server("portmesh", command, port, workdir / "node.log") as server:
        yield server


DOCKER_REGISTRY_CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
"""


HTPASSWD_CONFIG = """\
auth:
  htpasswd:
    realm: portmesh-tests
    path: {htpasswd}
"""


@asynccontextmanager
async def run_docker_registry(
    workdir: Path,
    users: dict[str, str] | None = None,
    *,
    storage: Path | None = None,
    tls: TLSFiles | None = None,
) -> AsyncIterator[Server]:
    """Run docker-registry (CNCF distribution) with filesystem storage in ``workdir`` (or
    ``storage``: another registry's, to serve its content); with ``users`` (name ->
    password) it requires HTTP Basic (htpasswd, bcrypt); with ``tls`` it speaks HTTPS."""
    binary = require_binary("docker-registry")
    port = free_port()
    text = DOCKER_REGISTRY_CONFIG.format(root=storage or workdir / "storage", port=port)
    if tls is not None:
        text += tls.registry_config()
    if users:
        import bcrypt

        lines = [
            f"{name}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
            for name, pw in users.items()
        ]
        htpasswd = _write_file(workdir / "htpasswd", "".join(lines))
        text += HTPASSWD_CONFIG.format(htpasswd=htpasswd)
    config = _write_file(workdir / "config.yml", text)
    command = [binary, "serve", str(config)]
    ready = 401 if users else 200
    ca = tls.ca if tls else None
    async with run_server(
        "docker-registry", command, port, workdir / "registry.log", ready=ready, ca=ca
    ) as server:
        yield server


async def run_tool(args: Sequence[str], *, env: dict[str, str] | None = None) -> bytes:
    """Run a client program to completion and return its stdout.

    Fails the test, showing the command, exit status and output, if it exits non-zero
    or runs longer than ``TOOL_TIMEOUT`` seconds.
    """
    with trio.fail_after(TOOL_TIMEOUT):
        result = await trio.run_process(
            list(args), capture_stdout=True, capture_stderr=True, check=False, env=env
        )
    if result.returncode != 0:
        stdout = result.stdout.decode(errors="replace")
        stderr = result.stderr.decode(errors="replace")
        pytest.fail(
            f"{' '.join(args)} exited with {result.returncode}\n"
            f"stdout:\n{stdout[-4000:]}\nstderr:\n{stderr[-4000:]}"
        )
    return bytes(result.stdout)


CONTAINERS_CONF = """\
[containers]
netns = "host"
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{root}/events.log"
runtime = "runc"
tmp_dir = "{root}/tmp"
"""

STORAGE_CONF = """\
[storage]
driver = "vfs"
graphroot = "{root}/graph"
runroot = "{root}/run"
"""

REGISTRIES_CONF = """\
unqualified-search-registries = []
short-name-mode = "disabled"
{entries}
"""

REGISTRY_ENTRY = """\
[[registry]]
location = "{address}"
insecure = true
"""


def podman_env(workdir: Path, insecure_registries: Sequence[str]) -> dict[str, str]:
    """Write podman's config files under ``workdir`` and return the environment to run it.

    Storage (vfs), run state, events and temp files all stay under ``workdir``; each
    address in ``insecure_registries`` (``HOST:PORT``) is reachable over plain HTTP.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    root = workdir.resolve()
    files = {
        "containers.conf": CONTAINERS_CONF.format(root=root),
        "storage.conf": STORAGE_CONF.format(root=root),
        "registries.conf": REGISTRIES_CONF.format(
            entries="\n".join(REGISTRY_ENTRY.format(address=a) for a in insecure_registries)
        ),
    }
    for name, text in files.items():
        (workdir / name).write_text(text)
    env = dict(os.environ)
    env.update(
        CONTAINERS_CONF=str(root / "containers.conf"),
        CONTAINERS_STORAGE_CONF=str(root / "storage.conf"),
        CONTAINERS_REGISTRIES_CONF=str(root / "registries.conf"),
    )
    return env
