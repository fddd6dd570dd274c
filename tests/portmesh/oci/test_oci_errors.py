"""The error type and its code table."""

from __future__ import annotations

import json

import pytest

from portmesh.oci.errors import CODES, OCIError


def test_status_and_message_come_from_the_table() -> None:
    error = OCIError("BLOB_UNKNOWN", detail={"digest": "sha256:x"})
    assert error.status == 404
    assert error.message == CODES["BLOB_UNKNOWN"][1]
    assert json.loads(error.body()) == {
        "errors": [
            {"code": "BLOB_UNKNOWN", "message": error.message, "detail": {"digest": "sha256:x"}}
        ]
    }


def test_overrides() -> None:
    error = OCIError("SIZE_INVALID", "too small", status=416, headers={"Range": "0-9"})
    assert (error.status, error.message, error.headers) == (416, "too small", {"Range": "0-9"})
    assert "detail" not in json.loads(error.body())["errors"][0]


def test_unknown_code_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        OCIError("NO_SUCH_CODE")
