"""The coordinator's REST API under ``/api/v2.0``, shaped like Harbor's v2.0.

One blueprint module per resource (``users``, ``projects``, ``metadata``, ``members``,
``system``, ``session``), each exposing ``blueprint(services) -> Blueprint``; handlers are
thin: parse (``http``), check access (``access``), call a domain function through
``services.db.run``, render. Shared request machinery - principal resolution, CSRF,
``X-Request-Id``, error rendering, the audit hook - is installed once by
``coordinator.app.create_app``.

To add a resource: write ``coordinator/domain/<thing>.py`` (functions over ``conn``),
``coordinator/api/<thing>.py`` (``blueprint(services)``), list it in ``app.BLUEPRINTS``,
add its rows to ``auth.rbac`` and decorate mutating handlers with ``http.audited``.
"""
