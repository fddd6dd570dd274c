"""The coordinator's OpenAPI document: generated from the app's route table
(``document``), with the bodies and parameters the table cannot tell written down once
(``operations``, ``schemas``). ``coordinator.api.docs`` serves it with Swagger UI."""

from coordinator.openapi.document import build_document, openapi_path

__all__ = ["build_document", "openapi_path"]
