"""A real nginx in front of a Portmesh node, configured by the shipped deploy/nginx config.

``site_config`` takes ``deploy/nginx/portmesh.conf`` and swaps its three site-specific
values (listen address, node address, blob directory) for the test's; ``run_nginx`` runs
nginx in the foreground (``daemon off``) with a generated main config whose pid file,
logs and temp directories all live under the test's ``workdir``. Nothing touches
/etc/nginx, /var/log/nginx or the system service.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from .servers import REPO_ROOT, Server, free_port, require_binary, run_server

__all__ = ["SITE_CONFIG", "run_nginx", "site_config"]

SITE_CONFIG = REPO_ROOT / "deploy" / "nginx" / "portmesh.conf"

#: The shipped config's site-specific values, each of which must occur exactly once.
LISTEN = "listen 80;"
UPSTREAM = "server 127.0.0.1:5000;"
BLOB_ROOT = "alias /var/lib/portmesh/node/blobs/blobs/;"

MAIN_CONFIG = """\
{user}worker_processes {workers};
error_log {root}/error.log info;
events {{
    worker_connections 1024;
}}
http {{
    default_type application/octet-stream;
    log_format portmesh '$request $status $body_bytes_sent '
                        'upstream=$upstream_addr upstream_status=$upstream_status';
    access_log {root}/access.log portmesh;
    client_body_temp_path {root}/temp/body;
    proxy_temp_path {root}/temp/proxy;
    fastcgi_temp_path {root}/temp/fastcgi;
    uwsgi_temp_path {root}/temp/uwsgi;
    scgi_temp_path {root}/temp/scgi;
    include {site};
}}
"""


def _replace_once(text: str, old: str, new: str) -> str:
    count = text.count(old)
    if count != 1:
        raise ValueError(f"{SITE_CONFIG} should contain {old!r} once, found {count}")
    return text.replace(old, new)


def site_config(*, listen_port: int, node_port: int, data: Path) -> str:
    """The shipped site config for nginx on 127.0.0.1:``listen_port`` in front of a node
    on 127.0.0.1:``node_port`` whose ``--data`` directory is ``data``.

    Raises:
        ValueError: the shipped config no longer has one of the values swapped here.
    """
    text = SITE_CONFIG.read_text()
    text = _replace_once(text, LISTEN, f"listen 127.0.0.1:{listen_port};")
    text = _replace_once(text, UPSTREAM, f"server 127.0.0.1:{node_port};")
    blobs = data.resolve() / "blobs" / "blobs"
    return _replace_once(text, BLOB_ROOT, f"alias {blobs}/;")


def _write_config(binary: str, workdir: Path, port: int, node: Server, data: Path) -> list[str]:
    """Write the site and main configs under ``workdir``; return the command that runs nginx."""
    root = workdir.resolve()
    (root / "temp").mkdir(parents=True, exist_ok=True)
    site = root / "portmesh.conf"
    site.write_text(site_config(listen_port=port, node_port=node.port, data=data))
    user = ""
    if os.geteuid() == 0:
        user = f"user {pwd.getpwuid(0).pw_name};\n"
    conf = root / "nginx.conf"
    conf.write_text(MAIN_CONFIG.format(user=user, workers=1, root=root, site=site))
    return [
        binary,
        "-p", str(root),
        "-e", str(root / "error.log"),
        "-c", str(conf),
        "-g", f"daemon off; master_process on; pid {root / 'nginx.pid'};",
    ]  # fmt: skip


@asynccontextmanager
async def run_nginx(workdir: Path, node: Server, data: Path) -> AsyncIterator[Server]:
    """Run nginx with the shipped site config in front of ``node`` (data dir ``data``).

    Ready when ``GET /v2/`` through nginx answers 200. Its error log, access log
    (``$request $status $body_bytes_sent upstream=... upstream_status=...``), pid file and
    temp files are under ``workdir``; its stderr goes to ``workdir/nginx.log``. Run as
    root, workers run as root too so that they can read the test's private temp dir.
    """
    binary = require_binary("nginx")
    port = free_port()
    command = _write_config(binary, workdir, port, node, data)
    async with run_server("nginx", command, port, workdir / "nginx.log") as server:
        yield server
