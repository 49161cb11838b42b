"""Cross-site request forgery protection for the dashboard: one random token per session.

Every state-changing request to the dashboard (any method but GET/HEAD/OPTIONS) must carry the
session's token, as the form field ``csrf_token`` or the ``X-CSRF-Token`` header (the
dashboard's own ``fetch`` calls). A per-session token compared in constant time is all that
Flask-WTF's CSRFProtect would give us here (we use no WTForms), so it is written out in a few
lines instead of adding two dependencies; SameSite=Lax on the cookie is the second layer.
"""
from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session

SESSION_KEY = "csrf"
FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token() -> str:
    """This session's token, created on first use (templates call it as ``csrf_token()``)."""
    token = session.get(SESSION_KEY)
    if not token:
        token = session[SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def rotate() -> None:
    """A fresh token, so one seen before signing in is worthless after it (session fixation)."""
    session[SESSION_KEY] = secrets.token_urlsafe(32)


def protect() -> None:
    """``before_request`` hook: refuse an unsafe request whose token is missing or wrong (400)."""
    if request.method in SAFE_METHODS:
        return
    expected = session.get(SESSION_KEY)
    given = request.headers.get(HEADER) or request.form.get(FORM_FIELD) or ""
    if not expected or not hmac.compare_digest(str(expected), str(given)):
        abort(400, description="The form was stale or did not come from this site (CSRF token "
                               "missing or wrong). Reload the page and try again.")
