"""Listing routes: tags, the catalog and the referrers API."""

from __future__ import annotations

import json

from quart import Blueprint, request

from node.api.http import Response, page_args, paged
from node.proxy.cache import ProxyCache
from node.proxy.router import Router
from node.registry import Registry
from node.storage.base import Referrer
from portmesh.oci.digest import parse_digest
from portmesh.oci.mediatypes import OCI_INDEX
from portmesh.oci.names import check_name

__all__ = ["blueprint"]


def blueprint(
    registry: Registry, router: Router | None = None, proxy: ProxyCache | None = None
) -> Blueprint:
    bp = Blueprint("listing", __name__)

    @bp.route("/v2/<path:name>/tags/list", methods=["GET"])
    async def tags(name: str) -> Response:
        repo = check_name(name)
        n, last = page_args(request)
        route = router.route(repo, request.args.get("ns")) if router else None
        if route is not None and proxy is not None:
            found = await proxy.tags(route, None if n is None else n + 1, last)
        else:
            found = await registry.tags(repo, None if n is None else n + 1, last)
        page, link = paged(f"/v2/{repo}/tags/list", found, n)
        return _json({"name": repo, "tags": page}, link)

    @bp.route("/v2/_catalog", methods=["GET"])
    async def catalog() -> Response:
        n, last = page_args(request)
        found = await registry.catalog(None if n is None else n + 1, last)
        page, link = paged("/v2/_catalog", found, n)
        return _json({"repositories": page}, link)

    @bp.route("/v2/<path:name>/referrers/<digest>", methods=["GET"])
    async def referrers(name: str, digest: str) -> Response:
        repo, subject = check_name(name), parse_digest(digest)
        artifact_type = request.args.get("artifactType") or None
        route = router.route(repo, request.args.get("ns")) if router else None
        body = None
        if route is not None and proxy is not None:
            body = await proxy.referrers(route, subject, artifact_type)
            repo = route.local
        if body is None:
            found = await registry.referrers(repo, subject, artifact_type)
            body = json.dumps(_index(found)).encode()
        response = Response(body, status=200, content_type=OCI_INDEX)
        if artifact_type is not None:
            response.headers["OCI-Filters-Applied"] = "artifactType"
        return response

    return bp


def _index(found: list[Referrer]) -> dict[str, object]:
    manifests = []
    for ref in found:
        entry: dict[str, object] = {
            "mediaType": ref.media_type,
            "digest": str(ref.digest),
            "size": ref.size,
        }
        if ref.artifact_type:
            entry["artifactType"] = ref.artifact_type
        if ref.annotations:
            entry["annotations"] = ref.annotations
        manifests.append(entry)
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}


def _json(doc: object, link: str | None, content_type: str = "application/json") -> Response:
    response = Response(json.dumps(doc), status=200, content_type=content_type)
    if link is not None:
        response.headers["Link"] = link
    return response
