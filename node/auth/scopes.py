"""Which access a registry request needs: the ``/v2`` route table as token scopes.

Reads need ``pull``; uploads and manifest PUTs need ``push`` (a cross-repository mount
also ``pull`` on the repository it mounts from); DELETEs need ``delete``; the catalog
needs ``registry:catalog:*``. ``/v2/`` and routes that name no repository need only a
valid token (an empty requirement).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs

from portmesh.tokens import Access

__all__ = ["required_access"]

# The same splits the handlers' routes make: the repository name is everything before a
# fixed tail that ends in exactly one path segment.
_ROUTES = (
    re.compile(r"^/v2/(?P<name>.+)/(?P<kind>blobs/uploads)/[^/]*\Z"),
    re.compile(r"^/v2/(?P<name>.+)/(?P<kind>manifests|blobs|referrers)/[^/]+\Z"),
    re.compile(r"^/v2/(?P<name>.+)/(?P<kind>tags)/list\Z"),
)
_READ = ("GET", "HEAD")


def required_access(method: str, path: str, query: bytes = b"") -> list[Access] | None:
    """The access a ``/v2`` request needs; None for paths outside ``/v2`` (not guarded)."""
    if path != "/v2" and not path.startswith("/v2/"):
        return None
    if path in ("/v2", "/v2/"):
        return []
    if path == "/v2/_catalog":
        return [Access("registry", "catalog", ("*",))]
    match = next((m for m in (r.match(path) for r in _ROUTES) if m is not None), None)
    if match is None:
        return []
    name, kind = match["name"], match["kind"]
    if method == "DELETE" and kind in ("manifests", "blobs"):
        return [Access("repository", name, ("delete",))]
    if kind == "blobs/uploads" or (kind == "manifests" and method not in _READ):
        needed = [Access("repository", name, ("push",))]
        if method == "POST":
            args = parse_qs(query.decode("latin-1"))
            source = (args.get("from") or [""])[0]
            if args.get("mount") and source and source != name:
                needed.append(Access("repository", source, ("pull",)))
        return needed
    return [Access("repository", name, ("pull",))]
