"""JWT configuration: role as a claim, revocation checked in Redis by every process, and every
JWT failure answered as JSON in llmgate's ``/api`` error shape (never a 500)."""
from __future__ import annotations

from typing import Any

from flask import Flask

from ..errors import error_response
from ..extensions import jwt
from . import tokens


def _identity(user: Any) -> str:
    # PyJWT requires "sub" to be a string.
    return str(user.id if hasattr(user, "id") else user)


def _claims(user: Any) -> dict[str, Any]:
    role = getattr(user, "role", None)
    return {"role": role} if role else {}


def _unauthorized(message: str, code: str = "unauthorized"):
    return error_response(401, message, code=code, headers={"WWW-Authenticate": "Bearer"})


def init_app(app: Flask) -> None:
    """Set up JWT handling: claims, the Redis blocklist and JSON errors."""
    jwt.user_identity_loader(_identity)
    jwt.additional_claims_loader(_claims)
    jwt.token_in_blocklist_loader(lambda _header, payload: tokens.is_revoked(payload))

    jwt.unauthorized_loader(lambda reason: _unauthorized(
        "Authentication required: send `Authorization: Bearer <token>`.", "authorization_required"))
    # Tampered, malformed or wrong-type tokens: 401 (Flask-JWT-Extended defaults to 422).
    jwt.invalid_token_loader(lambda reason: _unauthorized(f"Invalid token: {reason}.", "token_invalid"))
    jwt.expired_token_loader(lambda _h, _p: _unauthorized("The token has expired.", "token_expired"))
    jwt.revoked_token_loader(lambda _h, _p: _unauthorized("The token has been revoked.", "token_revoked"))
    jwt.needs_fresh_token_loader(lambda _h, _p: _unauthorized(
        "This needs a fresh token: log in again with your password.", "fresh_token_required"))
    jwt.user_lookup_error_loader(lambda _h, _p: _unauthorized("The account is unknown or deactivated.", "token_invalid"))
    jwt.token_verification_failed_loader(lambda _h, _p: error_response(
        422, "The token's claims failed verification.", code="token_claims_invalid"))
