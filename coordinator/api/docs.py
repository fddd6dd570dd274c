"""The API's own documentation: the OpenAPI document and Swagger UI (no login needed).

- ``GET /api/v2.0/swagger.json`` and ``GET /swagger.json`` (where Harbor's portal serves
  it): the OpenAPI 3.0 document of every ``/api/v2.0`` route, built from the app's route
  table on first request (``coordinator.openapi``).
- ``GET /devcenter`` and ``GET /devcenter-api-2.0`` (Harbor's path): Swagger UI on that
  document; its scripts and styles come from the ``swagger-ui-bundle`` package under
  ``/devcenter/<file>``, so the page needs no other site.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

import trio
from quart import Blueprint, Response, current_app
from swagger_ui_bundle import swagger_ui_path

from coordinator.api.http import API_PREFIX, APIError, json_response
from coordinator.api.services import Services
from coordinator.openapi import build_document

__all__ = ["DOCUMENT_PATH", "UI_PATH", "blueprint"]

DOCUMENT_PATH = f"{API_PREFIX}/swagger.json"
UI_PATH = "/devcenter"
API_VERSION = "2.0"

#: the files of the swagger-ui-bundle package the page loads
_ASSETS = frozenset(
    {
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "favicon-16x16.png",
        "favicon-32x32.png",
        "oauth2-redirect.html",
    }
)

_PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<title>Portmesh coordinator API</title>
<link rel="stylesheet" type="text/css" href="{UI_PATH}/swagger-ui.css">
<link rel="icon" type="image/png" href="{UI_PATH}/favicon-32x32.png" sizes="32x32">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{UI_PATH}/swagger-ui-bundle.js" charset="UTF-8"></script>
<script src="{UI_PATH}/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
<script src="{UI_PATH}/init.js" charset="UTF-8"></script>
</body>
</html>
"""

_INIT = f"""window.onload = function () {{
  window.ui = SwaggerUIBundle({{
    url: "{DOCUMENT_PATH}",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout"
  }});
}};
"""


def blueprint(services: Services) -> Blueprint:
    bp = Blueprint("docs", __name__)
    built: dict[str, dict[str, Any]] = {}
    assets = Path(swagger_ui_path)

    @bp.get(DOCUMENT_PATH)
    @bp.get("/swagger.json")
    async def document() -> Response:
        # The route table is complete once the app serves, so one build is enough.
        if "doc" not in built:
            built["doc"] = build_document(current_app.url_map, version=API_VERSION)
        return json_response(built["doc"])

    @bp.get(UI_PATH)
    @bp.get("/devcenter-api-2.0")
    async def page() -> Response:
        return Response(_PAGE, content_type="text/html; charset=utf-8")

    @bp.get(f"{UI_PATH}/init.js")
    async def init_script() -> Response:
        return Response(_INIT, content_type="text/javascript; charset=utf-8")

    @bp.get(f"{UI_PATH}/<name>")
    async def asset(name: str) -> Response:
        if name not in _ASSETS:
            raise APIError(404, f"{name} not found")
        data = await trio.Path(assets / name).read_bytes()
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Response(data, content_type=kind, headers={"Cache-Control": "max-age=3600"})

    return bp
