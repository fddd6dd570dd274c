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
from typing import TYPE_CHECKING

import trio

from node.config import ConfigError, NodeConfig, load_config
from portmesh import up

if TYPE_CHECKING:
    from coordinator.config import CoordinatorConfig

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
    parser.add_argument("--coordinator-url", help="coordinator base URL (user logins, policy)")
    parser.add_argument("--coordinator", help="the same as --coordinator-url")
    parser.add_argument(
        "--join-token",
        help="join the coordinator with this token on the first start (or PORTMESH_JOIN_TOKEN)",
    )
    parser.add_argument("--name", help="this node's name at the coordinator (default: host name)")
    parser.add_argument("--service", help="this node's token audience (default: the policy's)")
    parser.add_argument("--external-url", help="URL clients reach this node at (token realm)")
    parser.add_argument("--policy-file", help="policy snapshot to serve from (codec or JSON)")
    parser.add_argument("--workers", type=int, help="worker processes (default 1)")
    parser.add_argument("--log-level", help="debug, info, warning, error")
    # A worker of `--workers N` serves the listening socket its launcher passed down.
    parser.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portmesh", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    node_parser = sub.add_parser("node", help="run a registry node")
    _node_args(node_parser)
    up_parser = sub.add_parser(
        "up", help="run a coordinator and a node joined to it on embedded defaults"
    )
    up.add_arguments(up_parser)
    coordinator_parser = sub.add_parser("coordinator", help="run the coordinator (control plane)")
    _coordinator_args(coordinator_parser)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if args.command == "coordinator":
        return run_coordinator(args)
    if args.command == "up":
        _setup_logging(args.log_level)
        return up.run_up(args)

    overrides = {
        "listen": args.listen,
        "data": args.data,
        "no_auth": args.no_auth,
        "workers": args.workers,
        "log_level": args.log_level,
    }
    auth = {
        "coordinator_url": args.coordinator_url or args.coordinator,
        "join_token": args.join_token or os.environ.get("PORTMESH_JOIN_TOKEN") or None,
        "name": args.name,
        "service": args.service,
        "external_url": args.external_url,
        "policy_file": args.policy_file,
    }
    try:
        config = load_config(args.config, auth, **overrides)
        host, _port = config.host_port
    except ConfigError as exc:
        print(f"portmesh: {exc}", file=sys.stderr)
        return 2
    _setup_logging(config.log_level)
    if config.no_auth and config.auth.enabled:
        print(
            "portmesh: --no-auth conflicts with the configured authentication "
            "(coordinator_url or policy_file); use one or the other",
            file=sys.stderr,
        )
        return 2
    if not config.no_auth and not config.auth.enabled:
        print(
            "portmesh: no coordinator is configured, so this node has no way to authenticate "
            "clients; set --coordinator-url or --policy-file, or pass --no-auth to serve "
            "without authentication",
            file=sys.stderr,
        )
        return 2
    if config.auth.policy_file:
        from portmesh.policy import PolicyError, load_policy_file

        try:
            load_policy_file(Path(config.auth.policy_file))
        except PolicyError as exc:
            print(f"portmesh: {exc}", file=sys.stderr)
            return 2
    if config.no_auth and not _is_loopback(host) and args.listen_fd is None:
        log.warning("serving WITHOUT authentication on %s, which is not a loopback address", host)
    return run_node(config, argv, args.listen_fd)


def _coordinator_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT to serve on")
    parser.add_argument("--data", type=Path, required=True, help="data directory")
    parser.add_argument(
        "--database",
        help="SQLAlchemy database URL (default: SQLite at DATA/coordinator.db; "
        "PostgreSQL: postgresql+psycopg://USER@HOST:PORT/DB)",
    )
    parser.add_argument("--external-url", help="URL clients use to reach the API")
    parser.add_argument("--log-level", default="info", help="debug, info, warning, error")


def run_coordinator(args: argparse.Namespace) -> int:
    """``portmesh coordinator``: serve the API until SIGTERM/SIGINT. The admin password of
    a first start comes from PORTMESH_ADMIN_PASSWORD (or is generated and printed once)."""
    from coordinator.config import ConfigError as CoordinatorConfigError
    from coordinator.config import CoordinatorConfig

    try:
        config = CoordinatorConfig.from_env(
            args.data, args.listen, args.database, external_url=args.external_url
        )
    except CoordinatorConfigError as exc:
        print(f"portmesh: {exc}", file=sys.stderr)
        return 2
    _setup_logging(args.log_level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            trio.run(_serve_coordinator_until_signal, config)
    except CoordinatorConfigError as exc:
        print(f"portmesh: {exc}", file=sys.stderr)
        return 2
    return 0


async def _serve_coordinator_until_signal(config: CoordinatorConfig) -> None:
    from coordinator.app import serve

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve, config))
            async for _ in signals:
                log.info("shutting down")
                nursery.cancel_scope.cancel()
                break


def run_node(config: NodeConfig, argv: list[str], listen_fd: int | None = None) -> int:
    if config.workers > 1 and listen_fd is None:
        return _run_workers(config, argv)
    sockets = None
    if listen_fd is not None:
        sockets = [socket.socket(fileno=listen_fd)]
    from node.auth.sealing import SealError
    from node.sync.identity import JoinError

    try:
        with contextlib.suppress(KeyboardInterrupt):
            trio.run(_serve_until_signal, config, sockets)
    except BaseException as exc:
        found = up.find_error(exc, (JoinError, SealError))
        if found is None:
            raise
        print(f"portmesh: {found}", file=sys.stderr)
        return 2
    return 0


async def _serve_until_signal(config: NodeConfig, sockets: list[socket.socket] | None) -> None:
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
    costs a few MiB. Each worker is this command again, told which socket to serve; it
    starts listening on it once it serves (``node.server.serve``), so a connection never
    waits in the queue of a worker still starting while another one is ready.
    """
    host, port = config.host_port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks = []
    for _ in range(config.workers):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
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
