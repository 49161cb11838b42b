"""Who is calling /v1: an API key or a JWT access token, without a database query.

``authenticate(request)`` is the contract the gateway calls for every request. Keys are looked
up by SHA-256 through the principal cache (in process ≤1 s → Redis → database); JWTs are
verified with Flask-JWT-Extended's ``decode_token`` plus the Redis revocation list.
"""
from __future__ import annotations

from flask import Request

from ..errors import Unauthorized
from . import keys, principal_cache, tokens
from .principal import Principal

MAX_CREDENTIAL_LENGTH = 4096


def credential_from(request: Request) -> str | None:
    """The secret in ``Authorization: Bearer …`` or ``x-api-key: …`` (None when neither)."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    api_key = request.headers.get("x-api-key", "").strip()
    return api_key or None


def authenticate(request: Request) -> Principal:
    """The principal behind ``request``'s credential; raises ``Unauthorized`` when there is none
    or it is unknown, revoked, expired, or its user is deactivated."""
    credential = credential_from(request)
    if credential is None:
        raise Unauthorized("Missing API key: send `Authorization: Bearer sk-lg-…` or `x-api-key`.",
                           code="missing_api_key")
    if len(credential) > MAX_CREDENTIAL_LENGTH:
        raise Unauthorized("Invalid API key.", code="invalid_api_key")
    if keys.looks_like_key(credential):
        return principal_for_key(credential)
    if credential.count(".") == 2:
        return tokens.principal_for_access_token(credential)
    raise Unauthorized("Invalid API key.", code="invalid_api_key")


def principal_for_key(plaintext: str) -> Principal:
    """The principal of an API key (also used by the /api decorators); records its use."""
    principal = principal_cache.for_key_hash(keys.hash_key(plaintext)).usable()
    if principal is None:
        # One message for unknown, revoked and expired keys: nothing to learn by probing.
        raise Unauthorized("Invalid, revoked or expired API key.", code="invalid_api_key")
    keys.record_use(principal.key_id)
    return principal
