"""``portmesh up``: a coordinator and one node joined to it, in one process.

The coordinator listens on ``--coordinator-listen`` (127.0.0.1:8080) with its data in
``<data>/coordinator``; the node on ``--listen`` (127.0.0.1:5000) with its data in
``<data>/node``. On the first start a join token is made directly in the coordinator's
database and the node joins with it; later starts reuse the node's identity. The node
enforces tokens (its realm is its own ``/service/token``, which passes user logins on to
the coordinator). Both stop on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from functools import partial
from pathlib import Path

import trio

__all__ = ["add_arguments", "find_error", "run_up"]

log = logging.getLogger("portmesh")

JOIN_TTL = 600
NODE_NAME = "local"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", default="127.0.0.1:5000", help="HOST:PORT of the node")
    parser.add_argument(
        "--coordinator-listen", default="127.0.0.1:8080", help="HOST:PORT of the coordinator"
    )
    parser.add_argument(
        "--data", type=Path, default=Path("portmesh-data"), help="data directory of both"
    )
    parser.add_argument("--log-level", default="info", help="debug, info, warning, error")


async def _join_token(db_url: str) -> str:
    from coordinator import nodes
    from coordinator.db.engine import Database

    db = Database(db_url)
    try:
        made = await db.run(
            nodes.create_join_token, "admin", ttl=JOIN_TTL, description="portmesh up"
        )
    finally:
        db.close()
    return made.token


def _host(listen: str) -> str:
    host = listen.rpartition(":")[0].strip("[]")
    return "127.0.0.1" if host in ("", "0.0.0.0") else host


async def _up(args: argparse.Namespace) -> None:
    from coordinator.app import serve as serve_coordinator
    from coordinator.config import CoordinatorConfig
    from node.app import serve as serve_node
    from node.config import AuthConfig, NodeConfig
    from node.sync.identity import load_identity, sync_dir

    root: Path = args.data
    coordinator = CoordinatorConfig.from_env(root / "coordinator", args.coordinator_listen)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_coordinator, coordinator)
            coordinator_url = f"http://{_host(args.coordinator_listen)}:{port}"
            node_data = root / "node"
            token = ""
            if load_identity(sync_dir(node_data)) is None:
                token = await _join_token(coordinator.db_url)
            node = NodeConfig(
                data=node_data,
                listen=args.listen,
                log_level=args.log_level,
                auth=AuthConfig(coordinator_url=coordinator_url, join_token=token, name=NODE_NAME),
            )
            node_port = await nursery.start(partial(serve_node, node))
            registry = f"{_host(args.listen)}:{node_port}"
            print(
                f"Portmesh is up (data in {root}).\n"
                f"  API:      {coordinator_url}/api/v2.0  (user admin; its password was "
                "printed once at the first start, or is PORTMESH_ADMIN_PASSWORD)\n"
                f"  registry: {registry}\n"
                f"    podman login --tls-verify=false {registry}\n"
                f"    skopeo login --tls-verify=false {registry}\n"
                f"    skopeo copy --dest-tls-verify=false oci:DIR:TAG "
                f"docker://{registry}/PROJECT/REPO:TAG\n"
                "  Ctrl-C stops both.",
                file=sys.stderr,
                flush=True,
            )
            async for _ in signals:
                log.info("shutting down")
                nursery.cancel_scope.cancel()
                break


def find_error(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of ``kinds`` in ``exc`` or, for a group, among its leaves."""
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find_error(inner, kinds)
            if found is not None:
                return found
    return None


def run_up(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM; 2 for a configuration error."""
    from coordinator.config import ConfigError as CoordinatorConfigError
    from node.config import ConfigError
    from node.sync.identity import JoinError
    from portmesh.policy import PolicyError

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per policy poll
    try:
        trio.run(_up, args)
    except KeyboardInterrupt:
        pass
    except BaseException as exc:
        found = find_error(exc, (ConfigError, CoordinatorConfigError, JoinError, PolicyError))
        if found is None:
            raise
        print(f"portmesh: {found}", file=sys.stderr)
        return 2
    return 0
