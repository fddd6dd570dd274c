"""Per-request metrics and one structured log line per request, as ASGI middleware.

Wrapping the ASGI app (rather than framework hooks) sees the real status and the bytes
actually sent, including streamed blob bodies, and the full duration of the response.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["Metrics", "ObserveMiddleware", "route_of"]

log = logging.getLogger("portmesh.access")

_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^/v2/?$"), "base"),
    (re.compile(r"^/v2/_catalog$"), "catalog"),
    (re.compile(r"^/v2/.+/blobs/uploads/"), "upload"),
    (re.compile(r"^/v2/.+/blobs/"), "blob"),
    (re.compile(r"^/v2/.+/manifests/"), "manifest"),
    (re.compile(r"^/v2/.+/tags/list$"), "tags"),
    (re.compile(r"^/v2/.+/referrers/"), "referrers"),
    (re.compile(r"^/metrics$"), "metrics"),
    (re.compile(r"^/healthz$"), "healthz"),
]


def route_of(path: str) -> str:
    for pattern, name in _ROUTES:
        if pattern.match(path):
            return name
    return "other"


class Metrics:
    """The node's Prometheus metrics, in a registry of their own.

    With several worker processes, ``PROMETHEUS_MULTIPROC_DIR`` is set by the launcher
    and ``render`` aggregates every process's values.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "portmesh_http_requests", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "portmesh_http_request_duration_seconds",
            "Time from request to the end of the response",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60),
            registry=r,
        )
        self.bytes_in = Counter(
            "portmesh_http_received_bytes", "Request body bytes", ["route"], registry=r
        )
        self.bytes_out = Counter(
            "portmesh_http_sent_bytes", "Response body bytes", ["route"], registry=r
        )
        self.ratelimit_limit = Gauge(
            "portmesh_upstream_ratelimit_limit",
            "Pulls the upstream allows per window (Docker Hub's ratelimit-limit)",
            ["upstream"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.ratelimit_remaining = Gauge(
            "portmesh_upstream_ratelimit_remaining",
            "Pulls left in the upstream's window (Docker Hub's ratelimit-remaining)",
            ["upstream"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.storage = Gauge(
            "portmesh_storage_blob_bytes",
            "Bytes held by committed blobs",
            registry=r,
            multiprocess_mode="mostrecent",
        )

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)


class ObserveMiddleware:
    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = {"status": 500, "in": 0, "out": 0}

        async def counting_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                state["in"] += len(message.get("body", b""))
            return message

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            elif message["type"] == "http.response.body":
                state["out"] += len(message.get("body", b""))
            elif message["type"] == "http.response.zerocopysend":  # the server sends a file
                state["out"] += message.get("count") or 0
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            self._record(scope, state, time.perf_counter() - started)

    def _record(self, scope: dict[str, Any], state: dict[str, int], elapsed: float) -> None:
        path, method = scope["path"], scope["method"]
        route = route_of(path)
        m = self.metrics
        m.requests.labels(route, method, str(state["status"])).inc()
        m.latency.labels(route, method).observe(elapsed)
        if state["in"]:
            m.bytes_in.labels(route).inc(state["in"])
        if state["out"]:
            m.bytes_out.labels(route).inc(state["out"])
        if log.isEnabledFor(logging.INFO):
            client = scope.get("client") or ("", 0)
            log.info(
                json.dumps(
                    {
                        "method": method,
                        "path": path,
                        "route": route,
                        "status": state["status"],
                        "in": state["in"],
                        "out": state["out"],
                        "ms": round(elapsed * 1000, 2),
                        "client": client[0],
                    },
                    separators=(",", ":"),
                )
            )
