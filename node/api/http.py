"""HTTP helpers shared by the OCI handlers: error bodies, ranges, pagination, bodies."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import urlencode

from quart import Request
from quart import Response as QuartResponse

from portmesh.oci.errors import OCIError

__all__ = [
    "MAX_PAGE",
    "Response",
    "body_chunks",
    "content_length",
    "error_response",
    "page_args",
    "paged",
    "parse_content_range",
    "parse_range",
]

MAX_PAGE = 10_000
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)\Z")
_CONTENT_RANGE = re.compile(r"^(?:bytes )?(\d+)-(\d+)(?:/(?:\d+|\*))?\Z")


class Response(QuartResponse):
    """A response with no default Content-Type: empty 201/202/204 answers carry none."""

    default_mimetype: str | None = None  # type: ignore[assignment]


def error_response(exc: OCIError) -> Response:
    response = Response(exc.body(), status=exc.status, content_type="application/json")
    for name, value in exc.headers.items():
        response.headers[name] = value
    return response


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A ``Range: bytes=a-b`` request header -> inclusive (start, end), or None for all.

    Unsatisfiable or malformed single ranges raise RANGE_INVALID (416) with
    ``Content-Range: bytes */size``; multiple ranges are answered whole (RFC 9110 allows it).
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        if header.strip().startswith("bytes=") and "," in header:
            return None
        raise _unsatisfiable(size)
    first, last = match.groups()
    if first == "":
        if last == "":
            raise _unsatisfiable(size)
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(size - suffix, 0), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or (last != "" and int(last) < start):
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> OCIError:
    return OCIError(
        "RANGE_INVALID",
        "requested range not satisfiable",
        {"size": size},
        headers={"Content-Range": f"bytes */{size}"},
    )


def parse_content_range(header: str | None) -> tuple[int, int] | None:
    """A PATCH ``Content-Range: start-end`` -> inclusive (start, end); malformed -> 416."""
    if header is None:
        return None
    match = _CONTENT_RANGE.match(header.strip())
    if match is None or int(match.group(2)) < int(match.group(1)):
        raise OCIError("RANGE_INVALID", f"invalid Content-Range {header[:100]!r}")
    return int(match.group(1)), int(match.group(2))


def content_length(request: Request) -> int | None:
    value = request.headers.get("Content-Length")
    if value is None:
        return None
    if not value.isdigit():
        raise OCIError("SIZE_INVALID", "invalid Content-Length")
    return int(value)


async def body_chunks(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives."""
    async for chunk in request.body:
        yield chunk


def page_args(request: Request) -> tuple[int | None, str | None]:
    """``n`` and ``last`` query parameters, validated."""
    n_text = request.args.get("n")
    n: int | None = None
    if n_text is not None:
        if not n_text.isdigit():
            raise OCIError("UNSUPPORTED", "n must be a non-negative integer", status=400)
        n = min(int(n_text), MAX_PAGE)
    return n, request.args.get("last") or None


def paged(path: str, items: list[str], n: int | None) -> tuple[list[str], str | None]:
    """Trim ``items`` (fetched with ``n + 1``) to the page and build the ``Link`` header
    pointing at the next page, when there is one."""
    if n is None or len(items) <= n:
        return items, None
    items = items[:n]
    if not items:
        return items, None
    return items, f'<{path}?{urlencode({"n": n, "last": items[-1]})}>; rel="next"'
