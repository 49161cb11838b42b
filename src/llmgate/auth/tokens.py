"""JWT sessions: issuing access/refresh tokens and revoking them in Redis.

The revocation list is a Redis key per token id, living exactly as long as the token would
have, so it is shared by every process and never grows beyond the live tokens.
"""
from __future__ import annotations

import time
from typing import Any

from flask_jwt_extended import create_access_token, create_refresh_token, decode_token

from ..errors import Unauthorized
from ..extensions import get_redis
from ..models.user import User
from . import principal_cache
from .principal import Principal

REVOKED_PREFIX = "llmgate:auth:revoked:"


def issue_tokens(*, user: User) -> dict[str, str]:
    """A fresh access token and a refresh token for ``user`` (after a password check)."""
    return {
        "access_token": create_access_token(identity=user, fresh=True),
        "refresh_token": create_refresh_token(identity=user),
    }


def refresh_access_token(*, user_id: int, issued_at: float | None = None) -> str:
    """A new, not fresh, access token for the holder of a valid refresh token."""
    cached = principal_cache.for_user_id(user_id)
    principal = cached.principal
    if principal is None or _issued_before_password_change(issued_at, cached.password_changed_at):
        raise Unauthorized("The session is no longer valid; log in again.", code="token_invalid")
    return create_access_token(identity=_Identity(principal.user_id, principal.role), fresh=False)


def revoke(*, claims: dict[str, Any]) -> None:
    """Refuse the token with these decoded ``claims`` from now on, in every process."""
    remaining = int(claims.get("exp", time.time() + 86400) - time.time()) + 1
    if remaining > 0:
        get_redis().set(REVOKED_PREFIX + claims["jti"], "1", ex=remaining)


def is_revoked(claims: dict[str, Any]) -> bool:
    return bool(get_redis().exists(REVOKED_PREFIX + str(claims.get("jti"))))


def principal_for_claims(claims: dict[str, Any]) -> Principal:
    """The principal of a verified token's user; refuses inactive users and tokens issued
    before the user's last password change."""
    try:
        user_id = int(claims["sub"])
    except (KeyError, TypeError, ValueError):
        raise Unauthorized("The token names no user.", code="token_invalid") from None
    cached = principal_cache.for_user_id(user_id)
    if cached.principal is None:
        raise Unauthorized("The account is unknown or deactivated.", code="token_invalid")
    if _issued_before_password_change(claims.get("iat"), cached.password_changed_at):
        raise Unauthorized("The password changed since this token was issued; log in again.", code="token_invalid")
    return cached.principal


def principal_for_access_token(token: str) -> Principal:
    """Verify an encoded access token (signature, expiry, type, revocation) → its principal.

    Used by /v1, where flask_jwt_extended's request machinery is not in play.
    """
    import jwt as pyjwt
    from flask_jwt_extended.exceptions import JWTExtendedException

    try:
        claims = decode_token(token)
    except (pyjwt.PyJWTError, JWTExtendedException):
        raise Unauthorized("Invalid or expired token.", code="invalid_api_key") from None
    if claims.get("type") != "access":
        raise Unauthorized("Only access tokens are accepted here.", code="invalid_api_key")
    if is_revoked(claims):
        raise Unauthorized("The token has been revoked.", code="invalid_api_key")
    return principal_for_claims(claims)


def _issued_before_password_change(issued_at: Any, changed_at: float | None) -> bool:
    # JWT iat has one-second resolution: compare whole seconds, so a login in the same second
    # as the change still counts as after it.
    return issued_at is not None and changed_at is not None and int(issued_at) < int(changed_at)


class _Identity:
    """What ``create_access_token`` is given when no User row is at hand (refresh)."""

    def __init__(self, user_id: int, role: str):
        self.id = user_id
        self.role = role
