"""What the dashboard adds around its views: session loading, CSRF, HTML error pages, headers.

The rest of llmgate answers errors as JSON; under /dashboard a person is reading, so errors
are pages that say what happened and what to do next.
"""
from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, current_app, g, render_template, request
from werkzeug.exceptions import HTTPException

from ..errors import LLMGateError
from . import csrf, formatting, session as dashboard_session
from .blueprint import bp as dashboard_bp

log = logging.getLogger(__name__)

# No inline scripts or styles anywhere in the dashboard, so the policy can be strict.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def _before_request() -> None:
    if request.endpoint == "dashboard.static":
        return
    view = current_app.view_functions.get(request.endpoint or "")
    dashboard_session.load_user(passive=bool(getattr(view, "dashboard_passive", False)))
    csrf.protect()


def _after_request(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "dashboard.static":
        # Pages show keys, spend and other people's names: never keep them in shared caches.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _wants_json() -> bool:
    return request.path.endswith(".json") or request.headers.get("X-Requested-With") == "fetch"


def _error_page(status: int, title: str, message: str, headers: dict[str, str] | None = None):
    if _wants_json():
        return {"message": message, "code": title.lower().replace(" ", "_")}, status, headers or {}
    return render_template("error.html", status=status, title=title, message=message), status, headers or {}


def _http_error(error: HTTPException):
    status = error.code or 500
    return _error_page(status, error.name, error.description or error.name)


def _domain_error(error: LLMGateError):
    message = error.message
    if error.details:
        message += " " + "; ".join(f"{field}: {why}" for field, why in error.details.items())
    return _error_page(error.status, error.code.replace("_", " ").capitalize(), message, error.headers)


def _unexpected(error: Exception):
    log.exception("dashboard error", extra={"error_type": type(error).__name__})
    return _error_page(500, "Internal server error",
                       "Something went wrong on our side. Try again; if it keeps happening, tell an administrator.")


def _register(bp: Blueprint) -> None:
    bp.before_request(_before_request)
    bp.after_request(_after_request)
    bp.register_error_handler(HTTPException, _http_error)
    bp.register_error_handler(LLMGateError, _domain_error)
    bp.register_error_handler(Exception, _unexpected)
    bp.add_app_template_global(csrf.csrf_token, "csrf_token")
    bp.add_app_template_global(lambda: g.get("user"), "current_user")
    formatting.register(bp)


# The blueprint object is shared by every app built in this process (tests build many), so it
# is set up once, here, before any app registers it.
_register(dashboard_bp)


def install(app: Flask) -> None:
    """Per-app part: the session cookie that knows about https."""
    app.session_interface = dashboard_session.DashboardSessionInterface()
