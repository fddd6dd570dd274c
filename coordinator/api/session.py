"""Browser login as Harbor's portal does it: ``POST /c/login`` (form fields ``principal``
and ``password``) sets the ``sid`` cookie and answers the CSRF token in
``X-Harbor-CSRF-Token``; ``GET /c/log_out`` ends the session."""

from __future__ import annotations

from quart import Blueprint, Response, request

from coordinator.api.http import APIError, empty
from coordinator.api.services import Services
from coordinator.audit import AuditEntry
from coordinator.auth import sessions
from coordinator.errors import Unauthorized

__all__ = ["CSRF_HEADER", "blueprint"]

CSRF_HEADER = "X-Harbor-CSRF-Token"


def blueprint(services: Services) -> Blueprint:
    bp = Blueprint("session", __name__)
    db = services.db

    @bp.post("/c/login")
    async def login() -> Response:
        form = await request.form
        username, password = form.get("principal", ""), form.get("password", "")
        if not username or not password:
            raise APIError(400, "principal and password are required")
        try:
            caller = await services.authenticator.basic(username, password)
        except Unauthorized:
            await services.audit.record(AuditEntry(username, "login", "user", username, False))
            raise
        if caller.user_id is None or caller.kind != "user":
            raise APIError(401, "only users can sign in")
        if old := request.cookies.get(sessions.SESSION_COOKIE):
            await db.run(sessions.end, old)
        sid, csrf = await db.run(sessions.create, caller.user_id, services.config.session_ttl)
        await services.audit.record(AuditEntry(username, "login", "user", username, True))
        response = empty(200, headers={CSRF_HEADER: csrf})
        response.set_cookie(
            sessions.SESSION_COOKIE,
            sid,
            max_age=int(services.config.session_ttl),
            httponly=True,
            samesite="Lax",
            secure=services.config.url.startswith("https://"),
            path="/",
        )
        return response

    @bp.get("/c/log_out")
    async def log_out() -> Response:
        sid = request.cookies.get(sessions.SESSION_COOKIE)
        if sid:
            await db.run(sessions.end, sid)
        response = empty(200)
        response.delete_cookie(sessions.SESSION_COOKIE, path="/")
        return response

    return bp
