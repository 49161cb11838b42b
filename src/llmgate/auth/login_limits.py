"""Login throttling in Redis: failed attempts per account, all attempts per client address.

Fixed windows (a counter whose TTL is the window) are enough here: they bound guessing to a
few tries per window per account, and per address across accounts. The account is keyed by
a hash of the email so Redis holds no addresses, and unknown emails are counted exactly like
known ones (a 429 must not reveal whether an account exists).
"""
from __future__ import annotations

import hashlib

from flask import current_app

from ..errors import RateLimited
from ..extensions import get_redis

ACCOUNT_PREFIX = "llmgate:auth:login:account:"
ADDRESS_PREFIX = "llmgate:auth:login:address:"


def _settings() -> tuple[int, int, int, int]:
    config = current_app.config
    return (int(config.get("AUTH_LOGIN_ACCOUNT_MAX_FAILURES", 5)), int(config.get("AUTH_LOGIN_ACCOUNT_WINDOW_S", 300)),
            int(config.get("AUTH_LOGIN_ADDRESS_MAX_ATTEMPTS", 30)), int(config.get("AUTH_LOGIN_ADDRESS_WINDOW_S", 60)))


def _account_key(account: str) -> str:
    return ACCOUNT_PREFIX + hashlib.sha256(account.encode("utf-8")).hexdigest()[:32]


def _refuse(redis_key: str, window: int, what: str) -> None:
    retry_after = get_redis().ttl(redis_key)
    retry_after = retry_after if retry_after and retry_after > 0 else window
    raise RateLimited(f"Too many login attempts {what}; try again in {retry_after} s.",
                      headers={"Retry-After": str(retry_after)}, code="too_many_login_attempts")


def check(*, account: str, client_address: str | None) -> None:
    """Count this attempt against the address; refuse when the address or account is over."""
    max_failures, account_window, max_attempts, address_window = _settings()
    redis = get_redis()
    address_key = ADDRESS_PREFIX + (client_address or "unknown")
    pipe = redis.pipeline()
    # SET NX EX then INCR: the window starts with the first attempt (EXPIRE NX needs Redis 7).
    pipe.set(address_key, 0, ex=address_window, nx=True)
    pipe.incr(address_key)
    pipe.get(_account_key(account))
    _, attempts, failures = pipe.execute()
    if attempts > max_attempts:
        _refuse(address_key, address_window, "from this address")
    if failures is not None and int(failures) >= max_failures:
        _refuse(_account_key(account), account_window, "for this account")


def record_failure(*, account: str) -> None:
    _, account_window, _, _ = _settings()
    pipe = get_redis().pipeline()
    pipe.set(_account_key(account), 0, ex=account_window, nx=True)
    pipe.incr(_account_key(account))
    pipe.execute()


def record_success(*, account: str) -> None:
    get_redis().delete(_account_key(account))
