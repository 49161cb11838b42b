"""Authentication for ``/api`` resources.

``login_required`` accepts a JWT access token or an API key; ``fresh_login_required`` only a
fresh JWT (issued by a password login); ``admin_required`` adds the admin role. The principal
(always read through the cache, so deactivation and role changes count within a second) is
then available from :func:`current_principal`.
"""
from __future__ import annotations

from functools import wraps
from typing import Any, Callable, TypeVar

from flask import g, request
from flask_jwt_extended import get_jwt, verify_jwt_in_request

from ..errors import Forbidden, Unauthorized
from . import keys, tokens, v1
from .principal import Principal

F = TypeVar("F", bound=Callable[..., Any])
_G_KEY = "llmgate_principal"
_G_FRESH = "llmgate_fresh_token"


def _authenticate(*, fresh: bool, allow_api_key: bool) -> Principal:
    credential = v1.credential_from(request)
    if credential is not None and keys.looks_like_key(credential):
        if not allow_api_key:
            raise Unauthorized("This needs a fresh token from /api/auth/login, not an API key.",
                               code="fresh_token_required")
        principal = v1.principal_for_key(credential)
        setattr(g, _G_FRESH, False)
    else:
        # Raises Flask-JWT-Extended's errors, which the loaders in auth.jwt turn into JSON 401s.
        verify_jwt_in_request(fresh=fresh)
        claims = get_jwt()
        principal = tokens.principal_for_claims(claims)
        setattr(g, _G_FRESH, bool(claims.get("fresh")))
    setattr(g, _G_KEY, principal)
    return principal


def login_required(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _authenticate(fresh=False, allow_api_key=True)
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def fresh_login_required(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _authenticate(fresh=True, allow_api_key=False)
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def admin_required(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _authenticate(fresh=False, allow_api_key=True).is_admin:
            raise Forbidden("This needs an admin account.")
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def current_principal() -> Principal:
    """The principal a ``*_required`` decorator authenticated for this request."""
    principal = getattr(g, _G_KEY, None)
    if principal is None:
        raise Unauthorized("Authentication required.")
    return principal


def require_fresh_token() -> None:
    """Inside a ``*_required`` view: refuse unless this request carries a fresh JWT (for
    operations that only sometimes need one, e.g. a PATCH that changes a password)."""
    if not getattr(g, _G_FRESH, False):
        raise Unauthorized("This needs a fresh token: log in again with your password.",
                           code="fresh_token_required")
