"""The OpenAPI 3.0 document of ``/api/v2.0``, built from the app's route table.

Every rule under ``/api/v2.0`` becomes a path (``<ref>`` -> ``{project_name_or_id}`` as
Harbor names it, ``<int:x>`` -> an integer parameter) with one operation per method
(``HEAD`` only where it has its own handler; ``OPTIONS`` never). What the route table
cannot tell - bodies, extra query parameters, Harbor's operationIds - comes from
``operations.OPERATIONS``; a route without an entry is documented from the table alone.
Every operation documents Harbor's ``Errors`` body for 400, 401, 403, 404 and 500 (any
request may carry bad credentials, parameters or a missing resource) and 413 where it
takes a body. Security: HTTP Basic, or none (anonymous).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from werkzeug.routing import Map, Rule

from coordinator.db.schema import ID_MAX
from coordinator.openapi.operations import OPERATIONS, Op, QueryParam
from coordinator.openapi.schemas import SCHEMAS, ref

__all__ = ["API_PREFIX", "PATH_NAMES", "build_document", "documented_methods", "openapi_path"]

API_PREFIX = "/api/v2.0"
DOCUMENTED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")

#: route variable -> Harbor's parameter name
PATH_NAMES = {
    "ref": "project_name_or_id",
    "repo": "repository_name",
    "mid": "mid",
}
_PATH_DOCS = {
    "project_name_or_id": "The name or id of the project (see X-Is-Resource-Name)",
    "repository_name": "The repository name without the project; a/b is sent as a%252Fb",
    "reference": "The reference of the artifact: a digest or a tag",
}
_VARIABLE = re.compile(r"<(?:(?P<converter>[a-zA-Z_]\w*)(?:\([^)]*\))?:)?(?P<name>\w+)>")
_ERRORS = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    500: "Internal server error",
}
_STATUS_TEXT = {200: "Success", 201: "Created", 202: "Accepted", 204: "No content"}
_REQUEST_ID: dict[str, Any] = {
    "X-Request-Id": {
        "description": "The ID of the request (echoed or generated)",
        "schema": {"type": "string"},
    }
}


def openapi_path(rule: str) -> str:
    """``/api/v2.0/projects/<ref>/members/<int:mid>`` -> ``/projects/{project_name_or_id}/
    members/{mid}`` (relative to the server URL ``/api/v2.0``)."""
    path = rule.removeprefix(API_PREFIX)
    return _VARIABLE.sub(lambda m: "{" + PATH_NAMES.get(m["name"], m["name"]) + "}", path)


def documented_methods(rule: Rule) -> list[str]:
    """The methods a rule is documented with: its own, without OPTIONS, and without the
    HEAD werkzeug adds to every GET."""
    methods = set(rule.methods or ())
    if "GET" in methods:
        methods.discard("HEAD")
    return [m for m in DOCUMENTED_METHODS if m in methods]


def _path_parameters(rule: str) -> list[dict[str, Any]]:
    params = []
    for match in _VARIABLE.finditer(rule):
        name = PATH_NAMES.get(match["name"], match["name"])
        schema: dict[str, Any] = {"type": "string"}
        if match["converter"] == "int":
            schema = {"type": "integer", "minimum": 0, "maximum": ID_MAX}
        elif match["converter"] in (None, "string"):
            schema = {"type": "string", "pattern": "^[^/]+$"}
        param = {"name": name, "in": "path", "required": True, "schema": schema}
        if name in _PATH_DOCS:
            param["description"] = _PATH_DOCS[name]
        params.append(param)
    return params


def _query(param: QueryParam) -> dict[str, Any]:
    return {
        "name": param.name,
        "in": "query",
        "required": param.required,
        "description": param.description,
        "schema": param.schema,
    }


def _parameters(rule: Rule, op: Op | None) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [{"$ref": "#/components/parameters/requestId"}]
    params += _path_parameters(rule.rule)
    if any(PATH_NAMES.get(a) == "project_name_or_id" for a in rule.arguments):
        params.append({"$ref": "#/components/parameters/isResourceName"})
    if op is not None:
        if op.listing:
            params += [
                {"$ref": f"#/components/parameters/{name}"}
                for name in ("query", "sort", "page", "pageSize")
            ]
        params += [_query(q) for q in op.query]
    return params


def _success(method: str, op: Op | None) -> tuple[str, dict[str, Any]]:
    if op is None:
        status = 201 if method == "POST" else 200
        return str(status), {"description": _STATUS_TEXT[status], "headers": _REQUEST_ID}
    response: dict[str, Any] = {
        "description": _STATUS_TEXT.get(op.status, "Success"),
        "headers": dict(_REQUEST_ID),
    }
    if op.status == 201:
        response["headers"]["Location"] = {
            "description": "The location of the resource",
            "schema": {"type": "string"},
        }
    if op.listing:
        response["headers"]["X-Total-Count"] = {
            "description": "The total count of matching resources",
            "schema": {"type": "integer"},
        }
        response["headers"]["Link"] = {
            "description": "Links to the previous and next page",
            "schema": {"type": "string"},
        }
    if op.out is not None and method != "HEAD":
        response["content"] = {op.media_type: {"schema": op.out}}
    return str(op.status), response


def _operation(rule: Rule, method: str, operation_id: str) -> dict[str, Any]:
    op = OPERATIONS.get(rule.endpoint)
    tag = op.tag if op else rule.endpoint.partition(".")[0]
    doc: dict[str, Any] = {
        "operationId": operation_id,
        "summary": op.summary if op else rule.endpoint.replace("_", " ").replace(".", ": "),
        "tags": [tag],
        "parameters": _parameters(rule, op),
    }
    status, success = _success(method, op)
    responses: dict[str, Any] = {status: success}
    for code, text in (op.also if op else {}).items():
        entry: dict[str, Any] = {"description": text, "headers": _REQUEST_ID}
        if code >= 400:
            entry = {"$ref": f"#/components/responses/{code}"}
        responses[str(code)] = entry
    statuses = dict(_ERRORS)
    if method in ("POST", "PUT", "PATCH"):
        statuses[413] = "Request body too large"
    for code, text in statuses.items():
        if method == "HEAD":  # a HEAD answer has no body
            responses.setdefault(str(code), {"description": text, "headers": _REQUEST_ID})
        responses.setdefault(str(code), {"$ref": f"#/components/responses/{code}"})
    doc["responses"] = dict(sorted(responses.items()))
    if op is not None and op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(op.body)}},
        }
    return doc


def _operation_id(rule: Rule, method: str, taken: set[str]) -> str:
    op = OPERATIONS.get(rule.endpoint)
    base = op.operation_id if op else rule.endpoint.replace(".", "_")
    if method == "HEAD" and not op:
        base = f"head_{base}"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}{n}", n + 1
    taken.add(candidate)
    return candidate


def _components(extra_errors: Iterable[int]) -> dict[str, Any]:
    error_text = dict(_ERRORS)
    error_text.update({409: "Conflict", 412: "Precondition failed", 413: "Too large"})
    error_text.update({415: "Unsupported media type", 503: "Unavailable"})
    codes = sorted(set(error_text) | set(extra_errors))
    return {
        "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}},
        "schemas": SCHEMAS,
        "responses": {
            str(code): {
                "description": error_text.get(code, "Error"),
                "headers": _REQUEST_ID,
                "content": {"application/json": {"schema": ref("Errors")}},
            }
            for code in codes
        },
        "parameters": _SHARED_PARAMETERS,
    }


_SHARED_PARAMETERS: dict[str, Any] = {
    "requestId": {
        "name": "X-Request-Id",
        "in": "header",
        "required": False,
        "description": "A unique ID for the request",
        "schema": {"type": "string", "minLength": 1, "pattern": "^[\\x21-\\x7e]+$"},
    },
    "isResourceName": {
        "name": "X-Is-Resource-Name",
        "in": "header",
        "required": False,
        "description": "true: the project parameter in the path is a name, never an id",
        "schema": {"type": "boolean", "default": False},
    },
    "query": {
        "name": "q",
        "in": "query",
        "required": False,
        "description": (
            "Conditions, comma-separated: k=v (exact), k=~v (fuzzy), k=[min~max] (range),"
            " k={v1 v2} (any of), k=(v1 v2) (all of)"
        ),
        "schema": {"type": "string"},
    },
    "sort": {
        "name": "sort",
        "in": "query",
        "required": False,
        "description": "Sort keys, comma-separated; a leading - for descending",
        "schema": {"type": "string"},
    },
    "page": {
        "name": "page",
        "in": "query",
        "required": False,
        "description": "The page number",
        "schema": {"type": "integer", "minimum": 1, "default": 1},
    },
    "pageSize": {
        "name": "page_size",
        "in": "query",
        "required": False,
        "description": "The size of a page",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
    },
}


def build_document(url_map: Map, *, version: str, server_url: str = API_PREFIX) -> dict[str, Any]:
    """The OpenAPI 3.0 document of every ``/api/v2.0`` rule in ``url_map``."""
    paths: dict[str, dict[str, Any]] = {}
    taken: set[str] = set()
    extra_errors: set[int] = set()
    rules = sorted(
        (r for r in url_map.iter_rules() if r.rule.startswith(API_PREFIX + "/")),
        key=lambda r: (r.rule, r.endpoint),
    )
    for rule in rules:
        item = paths.setdefault(openapi_path(rule.rule), {})
        for method in documented_methods(rule):
            operation_id = _operation_id(rule, method, taken)
            item[method.lower()] = _operation(rule, method, operation_id)
        op = OPERATIONS.get(rule.endpoint)
        extra_errors.update(code for code in (op.also if op else {}) if code >= 400)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Portmesh coordinator API",
            "description": "The coordinator's REST API, shaped like Harbor's API v2.0.",
            "version": version,
        },
        "servers": [{"url": server_url}],
        "security": [{"basic": []}, {}],
        "paths": paths,
        "components": _components(extra_errors),
    }
