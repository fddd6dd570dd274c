"""The ``portmesh`` command."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from functools import partial
from pathlib import Path

import trio
from hypercorn.config import Sockets

from node.config import ConfigError, NodeConfig, load_config

__all__ = ["main"]

log = logging.getLogger("portmesh")


class JsonFormatter(logging.Formatter):
    """One JSON object per line; the access log's message is a JSON object already."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == "portmesh.access":
            return record.getMessage()
        entry = {
            "ts": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _node_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", help="HOST:PORT to serve on (default 127.0.0.1:5000)")
    parser.add_argument("--data", type=Path, help="data directory")
    parser.add_argument("--config", type=Path, help="TOML config file ([node] table)")
    parser.add_argument(
        "--no-auth",
        action="store_true",
        default=None,
        help="serve without authentication (only sensible on a trusted network)",
    )
    parser.add_argument("--workers", type=int, help="worker processes (default 1)")
    parser.add_argument("--log-level", help="debug, info, warning, error")
    # A worker of `--workers N` serves the listening socket its launcher passed down.
    parser.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portmesh", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    node_parser = sub.add_parser("node", help="run a registry node")
    _node_args(node_parser)
    up_parser = sub.add_parser("up", help="run Portmesh on embedded defaults (./portmesh-data)")
    _node_args(up_parser)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)

    overrides = {
        "listen": args.listen,
        "data": args.data,
        "no_auth": args.no_auth,
        "workers": args.workers,
        "log_level": args.log_level,
    }
    if args.command == "up":
        # Until a coordinator runs beside it, `up` is a local, loopback-only node.
        overrides["data"] = args.data or Path("portmesh-data") / "node"
        overrides["listen"] = args.listen or "127.0.0.1:5000"
        overrides["no_auth"] = True
    try:
        config = load_config(args.config, **overrides)
        host, _port = config.host_port
    except ConfigError as exc:
        print(f"portmesh: {exc}", file=sys.stderr)
        return 2
    _setup_logging(config.log_level)
    if not config.no_auth:
        print(
            "portmesh: no coordinator is configured, so this node has no way to authenticate "
            "clients; pass --no-auth to serve without authentication",
            file=sys.stderr,
        )
        return 2
    if not _is_loopback(host) and args.listen_fd is None:
        log.warning("serving WITHOUT authentication on %s, which is not a loopback address", host)
    if args.command == "up" and args.listen_fd is None:
        print(
            f"Portmesh node on http://{config.listen} (data in {config.data}).\n"
            f"  skopeo copy --dest-tls-verify=false oci:DIR:TAG "
            f"docker://{config.listen}/REPO:TAG\n"
            f"  podman pull --tls-verify=false {config.listen}/REPO:TAG",
            file=sys.stderr,
        )
    return run_node(config, argv, args.listen_fd)


def run_node(config: NodeConfig, argv: list[str], listen_fd: int | None = None) -> int:
    if config.workers > 1 and listen_fd is None:
        return _run_workers(config, argv)
    sockets = None
    if listen_fd is not None:
        sockets = Sockets([], [socket.socket(fileno=listen_fd)], [])
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(_serve_until_signal, config, sockets)
    return 0


async def _serve_until_signal(config: NodeConfig, sockets: Sockets | None) -> None:
    from node.app import serve

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve, config, sockets=sockets))
            async for _ in signals:
                log.info("shutting down")
                nursery.cancel_scope.cancel()
                break


def _run_workers(config: NodeConfig, argv: list[str]) -> int:
    """Run ``config.workers`` processes, each on a listening socket of its own.

    The sockets share the port with ``SO_REUSEPORT``, so the kernel spreads connections
    evenly over the workers (one shared socket lets whichever worker wakes first take
    them all). The launcher only binds and supervises: it imports none of the node, so it
    costs a few MiB. Each worker is this command again, told which socket to serve.
    """
    host, port = config.host_port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks = []
    for _ in range(config.workers):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(1024)
        port = sock.getsockname()[1]
        socks.append(sock)
    metrics_dir = config.data / ".metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    base = [sys.executable, "-m", "portmesh.cli", *argv, "--listen-fd"]
    procs = [
        subprocess.Popen([*base, str(sock.fileno())], pass_fds=[sock.fileno()], env=env)
        for sock in socks
    ]
    for sock in socks:
        sock.close()
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    for proc in procs:
        proc.wait()
        if proc.returncode and not stopping:
            code = proc.returncode
            stop(signal.SIGTERM, None)
    return code


if __name__ == "__main__":
    sys.exit(main())
