"""The dashboard's browser session: sign in and out, idle expiry, and who is looking.

The session is Flask's signed cookie (HttpOnly, SameSite=Lax; Secure in production or when the
request came over https). It holds the user id, when they signed in and when they were last
seen; every request reloads the user, so deactivation, a role change or a password change
takes effect at once, and a session idle for longer than ``DASHBOARD_IDLE_TIMEOUT_S`` ends.
"""
from __future__ import annotations

import time
from functools import wraps
from typing import Any, Callable

from flask import Flask, abort, current_app, flash, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface

from ..auth import principal_cache, users
from ..auth.principal import Principal
from ..errors import NotFound
from ..models.user import User
from . import csrf

USER_ID = "uid"
SIGNED_IN_AT = "login_at"
LAST_SEEN = "seen"

EXPIRED_MESSAGE = "Your session expired after {minutes} minutes without activity. Please sign in again."
DEACTIVATED_MESSAGE = "Your account has been deactivated. Ask an administrator if this is a mistake."
PASSWORD_CHANGED_MESSAGE = "Your password was changed since you signed in. Please sign in again."
SIGN_IN_FIRST_MESSAGE = "Please sign in to continue."


class DashboardSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, marked Secure whenever the request itself came over https.

    The ``/v1`` API never has one: its callers authenticate with keys, and opening a session
    (a serializer built and a cookie looked for) on every proxied call is wasted work.
    """

    sessionless_prefixes = ("/v1/",)

    def open_session(self, app: Flask, request: Any) -> Any:
        if request.path.startswith(self.sessionless_prefixes):
            return self.make_null_session(app)
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def sign_in(user: User) -> None:
    """Start a session for ``user`` (already verified): a new session, a new CSRF token."""
    session.clear()
    now = time.time()
    session[USER_ID] = user.id
    session[SIGNED_IN_AT] = now
    session[LAST_SEEN] = now
    csrf.rotate()


def sign_out() -> None:
    session.clear()


def _end(message: str) -> None:
    session.clear()
    flash(message, "error")


def load_user(*, passive: bool = False) -> User | None:
    """The signed-in user for this request (also on ``g.user``), or None.

    Ends the session — leaving a message for the sign-in page — when it has been idle too long,
    or the user is gone, deactivated or changed their password. ``passive`` requests (progress
    polling) read the session without counting as activity, so an open tab does not keep a
    session alive forever.
    """
    g.user = None
    user_id = session.get(USER_ID)
    if user_id is None:
        return None
    now = time.time()
    idle_limit = int(current_app.config.get("DASHBOARD_IDLE_TIMEOUT_S", 1800))
    if now - float(session.get(LAST_SEEN, 0)) > idle_limit:
        _end(EXPIRED_MESSAGE.format(minutes=max(1, round(idle_limit / 60))))
        g.session_ended = True
        return None
    try:
        user = users.get_user(user_id=int(user_id))
    except NotFound:
        user = None
    if user is None or not user.active:
        _end(DEACTIVATED_MESSAGE)
        g.session_ended = True
        return None
    if user.password_changed_at.timestamp() > float(session.get(SIGNED_IN_AT, 0)) + 1:
        _end(PASSWORD_CHANGED_MESSAGE)
        g.session_ended = True
        return None
    if not passive:
        session[LAST_SEEN] = now
    g.user = user
    return user


def viewer() -> Principal:
    """The signed-in user as the services' ``Principal`` (what scoped service calls take)."""
    user = g.user
    cached = principal_cache.for_user_id(user.id).usable()
    return cached if cached is not None else Principal(user_id=user.id, email=user.email, role=user.role)


def _wants_json() -> bool:
    return request.path.endswith(".json") or request.accept_mimetypes.best == "application/json" \
        or request.headers.get("X-Requested-With") == "fetch"


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Signed-in users only; others go to the sign-in page (JSON callers get a 401 body)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if g.get("user") is None:
            if _wants_json():
                message = "Your session has expired. Please sign in again." if g.get("session_ended") \
                    else SIGN_IN_FIRST_MESSAGE
                return {"message": message, "code": "session_expired"}, 401
            if not g.get("session_ended"):
                flash(SIGN_IN_FIRST_MESSAGE, "info")
            target = request.full_path if request.method == "GET" else None
            return redirect(url_for("dashboard.sign_in", next=target))
        return view(*args, **kwargs)

    return wrapper


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Administrators only: members get a 403 page, not a redirect."""

    @login_required
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not g.user.is_admin:
            abort(403, description="This page is for administrators only.")
        return view(*args, **kwargs)

    return wrapper


def safe_next(target: str | None) -> str:
    """Where to go after signing in: only a path inside the dashboard, never another site."""
    if target and target.startswith("/dashboard") and not target.startswith("//") and "\\" not in target:
        return target.rstrip("?")
    return url_for("dashboard.overview")
