"""The OpenAPI document and Swagger UI: the document covers exactly the app's ``/api/v2.0``
routes, is a valid OpenAPI 3.0 document, its hand-written schemas match Harbor's models,
and Swagger UI is served from the package's files, pointed at the document."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from coordinator_fixtures import Coordinator
from harborapi import models as harbor
from openapi_spec_validator import validate
from pydantic import BaseModel
from swagger_ui_bundle import swagger_ui_path

from coordinator.app import create_app
from coordinator.config import CoordinatorConfig
from coordinator.db.engine import Database
from coordinator.openapi import build_document, openapi_path
from coordinator.openapi.document import API_PREFIX, documented_methods
from coordinator.openapi.operations import OPERATIONS
from coordinator.openapi.schemas import SCHEMAS


@pytest.fixture
def app_and_doc(tmp_path: Path) -> Any:
    config = CoordinatorConfig(data=tmp_path, listen="127.0.0.1:0", admin_password="x" * 12)
    db = Database(config.db_url)
    app = create_app(config, db)
    try:
        yield app, build_document(app.url_map, version="2.0")
    finally:
        db.close()


def _routes(app: Any) -> set[tuple[str, str]]:
    return {
        (openapi_path(rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(API_PREFIX + "/")
        for method in documented_methods(rule)
    }


def _operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, item in doc["paths"].items() for method in item}


def test_document_covers_every_api_route_and_nothing_else(app_and_doc: Any) -> None:
    app, doc = app_and_doc
    routes = _routes(app)
    assert len(routes) > 40
    assert _operations(doc) == routes
    assert ("/projects", "head") in routes  # HEAD with a handler of its own
    assert ("/projects/{project_name_or_id}", "head") not in routes  # GET's implicit HEAD
    # every path variable of the route is a documented path parameter
    for path, item in doc["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        for method, operation in item.items():
            declared = {p["name"] for p in operation["parameters"] if p.get("in") == "path"}
            assert declared == names, (path, method)


def test_every_endpoint_has_written_documentation(app_and_doc: Any) -> None:
    """Routes without an entry are still documented, but every current one has one."""
    app, _ = app_and_doc
    endpoints = {
        rule.endpoint for rule in app.url_map.iter_rules() if rule.rule.startswith(API_PREFIX)
    }
    assert endpoints - set(OPERATIONS) == set()
    assert set(OPERATIONS) - endpoints == set(), "entries for handlers that no longer exist"


def test_document_is_valid_openapi_with_harbor_conventions(app_and_doc: Any) -> None:
    _, doc = app_and_doc
    validate(doc)
    assert doc["servers"] == [{"url": "/api/v2.0"}]
    assert doc["components"]["securitySchemes"]["basic"] == {"type": "http", "scheme": "basic"}
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    projects = doc["paths"]["/projects"]
    assert projects["get"]["operationId"] == "listProjects"
    names = {p.get("$ref", "").rsplit("/", 1)[-1] for p in projects["get"]["parameters"]}
    assert {"query", "sort", "page", "pageSize", "requestId"} <= names
    assert projects["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ProjectReq"
    }
    assert set(projects["post"]["responses"]) >= {"201", "400", "401", "409", "500"}
    member = doc["paths"]["/projects/{project_name_or_id}/members/{mid}"]["get"]
    params = {p.get("name") or p["$ref"].rsplit("/", 1)[-1] for p in member["parameters"]}
    assert {"project_name_or_id", "mid", "isResourceName"} <= params
    assert doc["components"]["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Errors"
    }


# Our schema name -> harborapi's model of the same Harbor definition.
HARBOR_MODELS: dict[str, type[BaseModel]] = {
    "Errors": harbor.Errors,
    "Error": harbor.Error,
    "Project": harbor.Project,
    "ProjectReq": harbor.ProjectReq,
    "ProjectMetadata": harbor.ProjectMetadata,
    "ProjectSummary": harbor.ProjectSummary,
    "UserResp": harbor.UserResp,
    "UserCreationReq": harbor.UserCreationReq,
    "UserProfile": harbor.UserProfile,
    "PasswordReq": harbor.PasswordReq,
    "UserSysAdminFlag": harbor.UserSysAdminFlag,
    "UserSearchRespItem": harbor.UserSearchRespItem,
    "Permission": harbor.Permission,
    "ProjectMember": harbor.ProjectMember,
    "ProjectMemberEntity": harbor.ProjectMemberEntity,
    "RoleRequest": harbor.RoleRequest,
    "AuditLog": harbor.AuditLog,
    "Repository": harbor.Repository,
    "Tag": harbor.Tag,
    "Registry": harbor.Registry,
    "RegistryUpdate": harbor.RegistryUpdate,
    "RegistryPing": harbor.RegistryPing,
    "RegistryInfo": harbor.RegistryInfo,
    "GeneralInfo": harbor.GeneralInfo,
    "Statistic": harbor.Statistic,
    "OverallHealthStatus": harbor.OverallHealthStatus,
    "Robot": harbor.Robot,
    "RobotCreate": harbor.RobotCreate,
    "RobotCreated": harbor.RobotCreated,
    "RobotSec": harbor.RobotSec,
    "RobotPermission": harbor.RobotPermission,
    "Access": harbor.Access,
}
# Fields the coordinator writes beyond harborapi's model: one older Harbor releases had,
# and Portmesh's adapter capabilities.
EXTRA_FIELDS = {("GeneralInfo", "with_notary"), ("RegistryInfo", "capabilities")}


@pytest.mark.parametrize("name", sorted(HARBOR_MODELS))
def test_schema_fields_are_harbors(name: str) -> None:
    harbor_fields = set(HARBOR_MODELS[name].model_fields)
    ours = set(SCHEMAS[name]["properties"])
    extra = {field for model, field in EXTRA_FIELDS if model == name}
    assert ours - harbor_fields - extra == set(), f"{name} has fields Harbor's {name} lacks"


async def test_document_and_swagger_ui_are_served(coordinator: Coordinator) -> None:
    async with httpx.AsyncClient(base_url=coordinator.url, timeout=30) as client:
        api_doc = await client.get("/api/v2.0/swagger.json")  # anonymous
        assert api_doc.status_code == 200
        doc = api_doc.json()
        assert doc["openapi"] == "3.0.3"
        assert "/swagger.json" in doc["paths"]
        assert (await client.get("/swagger.json")).json() == doc
        for path in ("/devcenter", "/devcenter-api-2.0"):
            page = await client.get(path)
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            assert "http://" not in page.text and "https://" not in page.text
            scripts = re.findall(r'(?:src|href)="([^"]+)"', page.text)
            assert "/devcenter/swagger-ui-bundle.js" in scripts
            for asset in scripts:
                got = await client.get(asset)
                assert got.status_code == 200, asset
        init = await client.get("/devcenter/init.js")
        assert '"/api/v2.0/swagger.json"' in init.text
        bundle = await client.get("/devcenter/swagger-ui-bundle.js")
        assert bundle.content == (Path(swagger_ui_path) / "swagger-ui-bundle.js").read_bytes()
        missing = await client.get("/devcenter/index.j2")
        assert missing.status_code == 404
        assert missing.json()["errors"][0]["code"] == "NOT_FOUND"
        assert (await client.get("/devcenter/..%2Fpyproject.toml")).status_code == 404
