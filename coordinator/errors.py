"""Domain errors of the coordinator, raised below the HTTP layer.

Each error has a ``status`` (Harbor's HTTP status for it); ``coordinator.api.http`` turns
any ``CoordinatorError`` into an ``APIError`` in one place. Domain modules raise these,
never HTTP types.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "CoordinatorError",
    "Forbidden",
    "Invalid",
    "NotFound",
    "PreconditionFailed",
    "Unauthorized",
]


class CoordinatorError(Exception):
    """Base of domain errors; ``str(exc)`` is the message shown to the client."""

    status = 500


class Invalid(CoordinatorError):
    """The request is malformed or breaks a rule (400 BAD_REQUEST)."""

    status = 400


class Unauthorized(CoordinatorError):
    """No or wrong credentials (401 UNAUTHORIZED)."""

    status = 401


class Forbidden(CoordinatorError):
    """Authenticated, but not allowed (403 FORBIDDEN)."""

    status = 403


class NotFound(CoordinatorError):
    """The resource does not exist or is invisible to the caller (404 NOT_FOUND)."""

    status = 404


class Conflict(CoordinatorError):
    """The resource already exists (409 CONFLICT)."""

    status = 409


class PreconditionFailed(CoordinatorError):
    """The resource is in a state that forbids the change (412 PRECONDITION)."""

    status = 412
