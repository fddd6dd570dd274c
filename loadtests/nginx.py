"""nginx in front of a Portmesh node, with the site config shipped in deploy/nginx; and
nginx as a bare forwarding hop in front of any registry.

``command`` writes a main config (pid file, logs and temp dirs in the server's own work
dir, access log off like the other servers) that includes ``deploy/nginx/portmesh.conf``
with its three site-specific values swapped for the benchmark's, and returns the command
that runs nginx in the foreground. The node must run with ``ACCEL_REDIRECT`` set.
``forwarder`` does the same for a server that only passes requests and responses on
(``proxy_buffering off``: every response goes out as it arrives, through 1 MiB buffers),
the cheapest hop a pull-through cache could be: it caches, hashes and stores nothing.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

ACCEL_REDIRECT = "/_portmesh_blobs/"
SITE_CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "nginx" / "portmesh.conf"

_MAIN_CONFIG = """\
{user}worker_processes {workers};
error_log {root}/error.log error;
events {{
    worker_connections 4096;
}}
http {{
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path {root}/temp/body;
    proxy_temp_path {root}/temp/proxy;
    fastcgi_temp_path {root}/temp/fastcgi;
    uwsgi_temp_path {root}/temp/uwsgi;
    scgi_temp_path {root}/temp/scgi;
    include {site};
}}
"""


def node_config(path: Path) -> Path:
    """Write the node's TOML config that turns on ``X-Accel-Redirect``; return ``path``."""
    path.write_text(f'[node]\naccel_redirect = "{ACCEL_REDIRECT}"\n')
    return path


def _swap(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise RuntimeError(f"{SITE_CONFIG} should contain {old!r} exactly once")
    return text.replace(old, new)


_FORWARD_SITE = """\
server {{
    listen 127.0.0.1:{port};
    client_max_body_size 0;
    location / {{
        proxy_pass http://127.0.0.1:{upstream_port};
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        proxy_buffering off;
        proxy_request_buffering off;
        proxy_buffer_size 1m;
        proxy_buffers 4 1m;
        proxy_busy_buffers_size 2m;
    }}
}}
"""


def command(
    workdir: Path, port: int, node_port: int, data: Path, workers: str = "auto"
) -> list[str]:
    """Write nginx's configs under ``workdir`` (which must exist) for 127.0.0.1:``port``
    in front of the node on ``node_port`` with data dir ``data``; return the command.

    Run as root, the workers run as root too: the benchmark's temp dir is private.
    """
    root = workdir.resolve()
    (root / "temp").mkdir()
    site = _swap(SITE_CONFIG.read_text(), "listen 80;", f"listen 127.0.0.1:{port};")
    site = _swap(site, "server 127.0.0.1:5000;", f"server 127.0.0.1:{node_port};")
    site = _swap(site, "alias /var/lib/portmesh/node/blobs/blobs/;",
                 f"alias {data.resolve() / 'blobs' / 'blobs'}/;")  # fmt: skip
    (root / "portmesh.conf").write_text(site)
    return _main(root, root / "portmesh.conf", workers)


def forwarder(workdir: Path, port: int, upstream_port: int, workers: str = "auto") -> list[str]:
    """Write nginx's configs under ``workdir`` (which must exist) for 127.0.0.1:``port``
    passing everything on to 127.0.0.1:``upstream_port``; return the command."""
    root = workdir.resolve()
    (root / "temp").mkdir()
    site = root / "forward.conf"
    site.write_text(_FORWARD_SITE.format(port=port, upstream_port=upstream_port))
    return _main(root, site, workers)


def _main(root: Path, site: Path, workers: str) -> list[str]:
    user = f"user {pwd.getpwuid(0).pw_name};\n" if os.geteuid() == 0 else ""
    conf = root / "nginx.conf"
    conf.write_text(_MAIN_CONFIG.format(user=user, workers=workers, root=root, site=site))
    return ["nginx", "-p", str(root), "-e", str(root / "error.log"), "-c", str(conf),
            "-g", f"daemon off; master_process on; pid {root / 'nginx.pid'};"]  # fmt: skip
