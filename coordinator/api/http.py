"""HTTP conventions shared by every handler.

- Errors: raise ``APIError(status, message)`` (or let a ``coordinator.errors`` domain
  error propagate); ``render_error`` is the one place that writes Harbor's body
  ``{"errors": [{"code": "NOT_FOUND", "message": "..."}]}``.
- JSON in: ``await read_json()`` (400 unless the body is a JSON object).
- JSON out: ``json_response(data, status, headers)``; lists: ``paged(items, total, query)``
  sets ``X-Total-Count`` and ``Link: <...>; rel="prev" , <...>; rel="next"``.
- Listing parameters: ``list_query()`` reads ``q``, ``sort``, ``page``, ``page_size``.
- Caller: ``principal()`` is the request's ``Principal`` (resolved before the handler).
- Audit: decorate mutating handlers with ``@audited("project")``; refine what was
  touched with ``audit_resource(name, project_id)``; the app records the outcome.
- Routes: ``<int:x>`` is ``IdConverter`` (installed by the app): a number beyond
  ``ID_MAX``, which no stored id reaches, is a 404.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlencode

from quart import Response, g, request
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from coordinator.auth.principal import Principal
from coordinator.db.schema import ID_MAX
from coordinator.errors import CoordinatorError
from coordinator.query import Condition, ListQuery, parse_page, parse_q, parse_sort

__all__ = [
    "API_PREFIX",
    "CODES",
    "APIError",
    "AuditTarget",
    "IdConverter",
    "audit_resource",
    "audited",
    "empty",
    "json_response",
    "list_query",
    "paged",
    "principal",
    "read_json",
    "render_error",
]

API_PREFIX = "/api/v2.0"

CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    412: "PRECONDITION",
    413: "BAD_REQUEST",
    415: "UNSUPPORTED_MEDIA_TYPE",
    500: "UNKNOWN",
}

P = ParamSpec("P")
R = TypeVar("R")


class IdConverter(IntegerConverter):
    """``<int:x>`` for database ids: a number beyond ``ID_MAX`` names nothing (404, for
    every method: a plain ``max`` would let the router answer 405 for some)."""

    def to_python(self, value: str) -> Any:
        number = super().to_python(value)
        if number > ID_MAX:
            raise NotFound()
        return number


class APIError(Exception):
    """An error answer: HTTP ``status``, Harbor ``code`` (derived from the status unless
    given) and a human ``message``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "UNKNOWN")
        self.message = message
        self.headers = dict(headers or {})

    @classmethod
    def from_domain(cls, exc: CoordinatorError) -> APIError:
        return cls(exc.status, str(exc))


def render_error(exc: APIError) -> Response:
    body = json.dumps({"errors": [{"code": exc.code, "message": exc.message}]})
    response = Response(body, status=exc.status, content_type="application/json")
    response.headers.update(exc.headers)
    return response


def empty(status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A response without a body (and without a Content-Type)."""
    response = Response(b"", status=status, headers=dict(headers or {}))
    del response.headers["Content-Type"]
    return response


def json_response(
    data: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    response = Response(json.dumps(data), status=status, content_type="application/json")
    if headers:
        response.headers.update(headers)
    return response


async def read_json() -> dict[str, Any]:
    """The request body as a JSON object; 400 otherwise."""
    raw = await request.get_data(as_text=False)
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(400, "the request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object")
    return body


def principal() -> Principal:
    """The caller of the current request."""
    caller: Principal = g.principal
    return caller


def list_query(*extra: Condition) -> ListQuery:
    """The listing parameters of the current request, plus ``extra`` conditions."""
    args = request.args
    page, page_size = parse_page(args.get("page"), args.get("page_size"))
    return ListQuery(
        conditions=parse_q(args.get("q")) + tuple(extra),
        sort=parse_sort(args.get("sort")),
        page=page,
        page_size=page_size,
    )


def _link(page: int, size: int) -> str:
    params = [(k, v) for k, v in request.args.items(multi=True) if k not in ("page", "page_size")]
    params += [("page", str(page)), ("page_size", str(size))]
    return f"<{request.path}?{urlencode(params)}>"


def paged(items: list[Any], total: int, query: ListQuery) -> Response:
    """A JSON list with Harbor's pagination headers."""
    headers = {"X-Total-Count": str(total)}
    links = []
    if query.page > 1:
        links.append(f'{_link(query.page - 1, query.page_size)}; rel="prev"')
    if query.page * query.page_size < total:
        links.append(f'{_link(query.page + 1, query.page_size)}; rel="next"')
    if links:
        headers["Link"] = " , ".join(links)
    return json_response(items, headers=headers)


@dataclass
class AuditTarget:
    resource_type: str
    resource: str
    project_id: int | None = None


def audited(
    resource_type: str,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Mark a mutating handler: its request is recorded by the audit hook, whatever the
    outcome. The resource defaults to the route's arguments joined by ``/``."""

    def decorate(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @wraps(handler)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            resource = "/".join(str(v) for v in kwargs.values())
            g.audit = AuditTarget(resource_type, resource)
            return await handler(*args, **kwargs)

        return wrapper

    return decorate


def audit_resource(resource: str, project_id: int | None = None) -> None:
    """Name what the current audited request touched."""
    target: AuditTarget | None = g.get("audit")
    if target is not None:
        target.resource = resource
        if project_id is not None:
            target.project_id = project_id
