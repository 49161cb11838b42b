"""Password hashing with argon2id (argon2-cffi), and the rules a new password must meet.

Parameters are argon2-cffi's defaults (RFC 9106 "low memory": t=3, m=64 MiB, p=4) in every
environment except ``TESTING``, where a deliberately cheap profile keeps the suite fast; hashes
made with other parameters are upgraded on the next successful login (``needs_rehash``).
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app

from ..errors import ValidationError

MIN_PASSWORD_LENGTH = 8
# argon2 accepts any length, but hashing megabytes on request would be a cheap denial of service.
MAX_PASSWORD_LENGTH = 256
_HASHER_KEY = "llmgate.password_hasher"

# Test-only profile: argon2id with minimal cost. Never used unless TESTING is set.
_TESTING_PARAMETERS = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}

T = TypeVar("T")


def _hasher() -> PasswordHasher:
    hasher = current_app.extensions.get(_HASHER_KEY)
    if hasher is None:
        hasher = PasswordHasher(**_TESTING_PARAMETERS) if current_app.config.get("TESTING") else PasswordHasher()
        current_app.extensions[_HASHER_KEY] = hasher
    return hasher


def check_password_rules(password: object, *, field: str = "password") -> str:
    """Return ``password`` if acceptable, else raise ``ValidationError`` naming ``field``."""
    if not isinstance(password, str):
        raise ValidationError("The password must be a string.", details={field: "must be a string"})
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError("The password is too short.",
                              details={field: f"must be at least {MIN_PASSWORD_LENGTH} characters"})
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationError("The password is too long.",
                              details={field: f"must be at most {MAX_PASSWORD_LENGTH} characters"})
    return password


def _off_the_loop(call: Callable[..., T], *args: object) -> T:
    """Run ``call`` on gevent's thread pool when the worker is a gevent one.

    argon2 spends tens of ms of CPU per hash with the GIL released (argon2-cffi's C call): on a
    pool thread a sign-in no longer freezes every other request of its worker meanwhile, which
    is what lets ``llmgate serve`` run one gevent worker per core. Elsewhere, a plain call.
    """
    if "gevent.monkey" in sys.modules:
        from gevent import get_hub, monkey

        if monkey.is_module_patched("threading"):
            return get_hub().threadpool.apply(call, args)
    return call(*args)


def hash_password(password: str) -> str:
    return _off_the_loop(_hasher().hash, password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches; a malformed stored hash counts as a mismatch."""
    try:
        return _off_the_loop(_hasher().verify, password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    try:
        return _hasher().check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def burn_verification_time(password: str) -> None:
    """Spend what a real verification costs, so a login for an unknown email takes as long."""
    verify_password(_dummy_hash(), password)


def _dummy_hash() -> str:
    key = _HASHER_KEY + ".dummy"
    value = current_app.extensions.get(key)
    if value is None:
        value = current_app.extensions[key] = hash_password("llmgate-timing-equaliser")
    return value
